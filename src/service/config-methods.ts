import { realpathSync, rmSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { z } from 'zod';
import { nameSchema, nicSchema } from '../config/schema.js';
import { type CallContext, defineMethod, type RpcMethod } from '../control/rpc/method.js';
import { inspectImage } from '../session/image-inspect.js';
import { IMAGE_PATTERN } from '../session/images.js';
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

/** The real path, or null when it cannot be resolved (gone, a component not a folder, no access). */
function real(path: string): string | null {
  try {
    return realpathSync.native(path);
  } catch {
    return null;
  }
}

/** The image folders that exist now (an unplugged USB disk must not break every request). */
const realImageDirs = (imageDirs: readonly string[]) => imageDirs.flatMap((d) => real(resolve(d)) ?? []);

const isGuest = (ctx: CallContext) => ctx.caller.kind === 'guest';

/**
 * A disk named in a request: a file name in an image folder, or an absolute path. No `..`
 * anywhere. A guest may only name disk images (by their extension, not dot files such as
 * `.kvmux-upload-*` temp files, not sidecars) that really lie inside the image folders, never
 * /dev/sda or host files.
 */
export function resolveDisk(raw: string, imageDirs: readonly string[], guest: boolean): string {
  if (raw.split(/[\\/]/).includes('..') || raw.includes('\0'))
    throw new RpcError(RpcCode.invalidParams, `disk: "${raw}" must not contain ".."`);
  if (!isAbsolute(raw) && raw.includes('/'))
    throw new RpcError(
      RpcCode.invalidParams,
      `disk: "${raw}" must be an absolute path or a file name in an image folder`,
    );
  if (guest && (!IMAGE_PATTERN.test(raw) || basename(raw).startsWith('.')))
    throw new RpcError(
      RpcCode.invalidParams,
      `disk: "${raw}" is not a disk image name (.qcow2, .raw, .img, .vdi or .vbox)`,
    );
  const candidates = isAbsolute(raw) ? [normalize(raw)] : imageDirs.map((d) => join(resolve(d), raw));
  const isFile = (p: string) => {
    try {
      return statSync(p, { throwIfNoEntry: false })?.isFile() === true;
    } catch {
      return false; // ENOTDIR, EACCES: not a usable disk either
    }
  };
  const found = candidates.find(isFile);
  if (!found) throw new RpcError(RpcCode.notFound, `disk: no image file "${raw}"`);
  const target = real(found);
  const inImages = target !== null && realImageDirs(imageDirs).some((d) => within(d, target));
  if (guest && !inImages)
    throw new RpcError(
      RpcCode.forbidden,
      `disk: a guest may only use images in the image folders, not "${raw}"`,
    );
  return found;
}

/**
 * What is inside the disk, as QEMU would open it: a qcow2 naming a backing file or data file (a
 * host file, another VM's disk, /dev/sda) is refused like an upload or a found image would be.
 */
async function checkContent(disk: string, allowBackingFiles: boolean): Promise<void> {
  if (/\.vbox$/i.test(disk)) return; // VirtualBox settings, not a disk QEMU opens
  const problem = await inspectImage(disk, { allowBackingFiles });
  if (problem) throw new RpcError(RpcCode.invalidParams, `disk: ${disk}: refused: ${problem}`);
}

/** The other VM whose disk is the same file as `disk` (real paths: symlinked folders count). */
function diskOwner(catalogue: VmCatalogue, disk: string, except: string): string | undefined {
  const target = real(disk) ?? resolve(disk);
  return catalogue.vms.find((v) => {
    const d = diskOf(v);
    return v.name !== except && d !== undefined && (real(d) ?? resolve(d)) === target;
  })?.name;
}

/**
 * A guest may not give a VM network interfaces: the MAC and pinned addresses are what the
 * anti-spoofing rules trust, so changing them would let a VM pose as another one or leave its pin.
 */
function refuseGuestNics(ctx: CallContext, nics: unknown): void {
  if (isGuest(ctx) && nics !== undefined)
    throw new RpcError(
      RpcCode.forbidden,
      'nics: only the console (admin screen or local socket) may change network interfaces',
    );
}

/** vm.create, vm.update, vm.delete and config.get: configuration as state (see config-overlay.ts). */
export function configMethods(catalogue: VmCatalogue): RpcMethod[] {
  const imageDirs = () => catalogue.config.imageDirs;
  return [
    defineMethod({
      name: 'config.get',
      params: z.strictObject({}),
      summary: 'the read-only config file, kvmux own layer (stateDir/config.yaml) and the effective VMs',
      // a guest gets the VMs only: the file holds the host phrase (the menu's proof), the policy
      // and the admin settings
      handler: (_p, ctx) => {
        const all = catalogue.describe();
        return isGuest(ctx) ? { vms: all.vms, found: all.found } : all;
      },
    }),
    defineMethod({
      name: 'vm.create',
      params: createParams,
      summary:
        'a new VM from a disk image (file name in an image folder or absolute path); kept across restarts',
      handler: async (p, ctx) => {
        const guest = isGuest(ctx);
        if (guest && p.memoryMiB !== undefined) checkGuestMemory(p.name, p.memoryMiB, undefined);
        refuseGuestNics(ctx, p.nics);
        const disk = resolveDisk(p.disk, imageDirs(), guest);
        await checkContent(disk, catalogue.config.imageDefaults.allowBackingFiles);
        return catalogue.create({ ...p, disk });
      },
    }),
    defineMethod({
      name: 'vm.update',
      params: updateParams,
      summary:
        'change memory, cpus, disk, nics, autostart, guestChannel, blockedKeys: live where possible (live[]), else at next start (nextStart[])',
      handler: async (p, ctx) => {
        const { name, ...patch } = p;
        const vm = catalogue.find(name);
        if (!vm) throw new RpcError(RpcCode.notFound, `no VM named "${name}"`);
        if (isGuest(ctx) && patch.memoryMiB !== undefined) checkGuestMemory(name, patch.memoryMiB, vm);
        refuseGuestNics(ctx, patch.nics);
        if (patch.disk === undefined) return catalogue.update(name, patch);
        const disk = resolveDisk(patch.disk, imageDirs(), isGuest(ctx));
        await checkContent(disk, catalogue.config.imageDefaults.allowBackingFiles);
        const owner = diskOwner(catalogue, disk, name);
        if (owner && catalogue.isConfigured(owner))
          throw new RpcError(RpcCode.conflict, `disk ${disk} is used by VM "${owner}"`);
        return catalogue.update(name, { ...patch, disk });
      },
    }),
    defineMethod({
      name: 'vm.delete',
      params: z.strictObject({ name: nameSchema, deleteDisk: z.boolean().default(false) }),
      summary: 'remove a stopped VM; its disk is kept unless deleteDisk: true',
      async handler(p, ctx) {
        const vm = catalogue.find(p.name);
        if (!vm) throw new RpcError(RpcCode.notFound, `no VM named "${p.name}"`);
        const path = diskOf(vm);
        if (p.deleteDisk && path !== undefined) {
          const owner = diskOwner(catalogue, path, p.name);
          if (owner) throw new RpcError(RpcCode.conflict, `disk ${path} is used by VM "${owner}"`);
          const target = real(path);
          // a guest deletes image files only, never a config disk elsewhere or a device node
          if (isGuest(ctx) && !(target && realImageDirs(imageDirs()).some((d) => within(d, target))))
            throw new RpcError(RpcCode.forbidden, `deleteDisk: ${path} is not in an image folder`);
        }
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
