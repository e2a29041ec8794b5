import { realpathSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { z } from 'zod';
import { nameSchema, nicSchema } from '../config/schema.js';
import { defineMethod, type RpcMethod } from '../control/rpc/method.js';
import { RpcCode, RpcError } from '../util/errors.js';
import { checkGuestMemory } from './memory-bounds.js';
import { diskOf, type VmCatalogue } from './vm-catalogue.js';

const memoryMiB = z
  .number()
  .int()
  .min(16)
  .max(1 << 22);
const cpus = z.number().int().min(1).max(256);
const disk = z.string().min(1).max(4096);
const nics = z.array(nicSchema).max(16);

const createParams = z.strictObject({
  name: nameSchema,
  disk,
  backend: z.enum(['qemu', 'virtualbox']).optional(),
  memoryMiB: memoryMiB.optional(),
  cpus: cpus.optional(),
  nics: nics.optional(),
  guestChannel: z.boolean().optional(),
  autostart: z.boolean().optional(),
});

const updateParams = z.strictObject({
  name: nameSchema,
  memoryMiB: memoryMiB.optional(),
  cpus: cpus.optional(),
  disk: disk.optional(),
  nics: nics.optional(),
  autostart: z.boolean().optional(),
  guestChannel: z.boolean().optional(),
  blockedKeys: z.array(z.string().min(1).max(64)).max(64).optional(),
});

const within = (dir: string, path: string) => path === dir || path.startsWith(dir + sep);

/**
 * A disk named in a request: a file name in an image folder, or an absolute path. No `..`
 * anywhere; a guest may only name disks inside the image folders (never /dev/sda or host files).
 */
export function resolveDisk(raw: string, imageDirs: readonly string[], guest: boolean): string {
  if (raw.split(/[\\/]/).includes('..') || raw.includes('\0'))
    throw new RpcError(RpcCode.invalidParams, `disk: "${raw}" must not contain ".."`);
  const candidates = isAbsolute(raw) ? [normalize(raw)] : imageDirs.map((d) => join(resolve(d), raw));
  if (!isAbsolute(raw) && raw.includes('/'))
    throw new RpcError(
      RpcCode.invalidParams,
      `disk: "${raw}" must be an absolute path or a file name in an image folder`,
    );
  const found = candidates.find((p) => statSync(p, { throwIfNoEntry: false })?.isFile());
  if (!found) throw new RpcError(RpcCode.notFound, `disk: no image file "${raw}"`);
  const real = realpathSync(found);
  const inImages = imageDirs.some((d) => within(realpathSync.native(resolve(d)), real));
  if (guest && !inImages)
    throw new RpcError(
      RpcCode.forbidden,
      `disk: a guest may only use images in the image folders, not "${raw}"`,
    );
  return found;
}

/** vm.create, vm.update, vm.delete and config.get: configuration as state (see config-overlay.ts). */
export function configMethods(catalogue: VmCatalogue): RpcMethod[] {
  const imageDirs = () => catalogue.config.imageDirs;
  return [
    defineMethod({
      name: 'config.get',
      params: z.strictObject({}),
      summary: 'the read-only config file, kvmux own layer (stateDir/config.yaml) and the effective VMs',
      handler: () => catalogue.describe(),
    }),
    defineMethod({
      name: 'vm.create',
      params: createParams,
      summary:
        'a new VM from a disk image (file name in an image folder or absolute path); kept across restarts',
      handler: (p, ctx) => {
        const guest = ctx.caller.kind === 'guest';
        if (guest && p.memoryMiB !== undefined) checkGuestMemory(p.name, p.memoryMiB, undefined);
        return catalogue.create({ ...p, disk: resolveDisk(p.disk, imageDirs(), guest) });
      },
    }),
    defineMethod({
      name: 'vm.update',
      params: updateParams,
      summary:
        'change memory, cpus, disk, nics, autostart, guestChannel, blockedKeys: live where possible (live[]), else at next start (nextStart[])',
      handler: (p, ctx) => {
        const { name, ...patch } = p;
        const vm = catalogue.find(name);
        if (!vm) throw new RpcError(RpcCode.notFound, `no VM named "${name}"`);
        if (ctx.caller.kind === 'guest' && patch.memoryMiB !== undefined)
          checkGuestMemory(name, patch.memoryMiB, vm);
        const d =
          patch.disk === undefined
            ? {}
            : { disk: resolveDisk(patch.disk, imageDirs(), ctx.caller.kind === 'guest') };
        return catalogue.update(name, { ...patch, ...d });
      },
    }),
    defineMethod({
      name: 'vm.delete',
      params: z.strictObject({ name: nameSchema, deleteDisk: z.boolean().default(false) }),
      summary: 'remove a stopped VM; its disk is kept unless deleteDisk: true',
      async handler(p) {
        const vm = catalogue.find(p.name);
        if (!vm) throw new RpcError(RpcCode.notFound, `no VM named "${p.name}"`);
        const path = diskOf(vm);
        const shared = catalogue.vms.some(
          (v) => v.name !== p.name && path !== undefined && diskOf(v) === path,
        );
        if (p.deleteDisk && shared)
          throw new RpcError(RpcCode.conflict, `disk ${path} is used by another VM`);
        const r = await catalogue.delete(p.name);
        if (p.deleteDisk && path) {
          rmSync(path, { force: true });
          await catalogue.rescan();
        }
        return { ...r, diskDeleted: p.deleteDisk && path !== undefined };
      },
    }),
  ];
}
