import { rm } from 'node:fs/promises';
import { z } from 'zod';
import type { Config } from '../../config/schema.js';
import { forgetOrigin, readOrigins, uploadedBy } from '../../session/image-origins.js';
import { errnoName, RpcCode, RpcError } from '../../util/errors.js';
import { type Logger, silentLogger } from '../../util/log.js';
import { defineMethod, type RpcMethod } from '../rpc/method.js';
import { findImage, type ImageCatalogueHooks, imageFileSchema, listImageFiles } from './image-files.js';
import { cachedHash, imageHash } from './image-hash.js';
import { importImage, importParams } from './image-import.js';
import type { SpaceLedger } from './space-ledger.js';

/** `image.list`, `image.delete` and `image.import`. */
export interface ImageMethodsOptions extends ImageCatalogueHooks {
  imageDirs: () => readonly string[];
  stateDir?: () => string;
  imageDefaults?: () => Partial<Config['imageDefaults']>;
  ledger: SpaceLedger;
  /** After a delete or an import: rescan the folders. */
  onImagesChanged?: () => void | Promise<void>;
  log?: Logger;
}

const running = (state: string) => state !== 'stopped' && state !== 'crashed';

export function imageMethods(opts: ImageMethodsOptions): RpcMethod[] {
  const log = opts.log ?? silentLogger;
  const changed = async () => {
    try {
      await opts.onImagesChanged?.();
    } catch (err) {
      log.warn({ err: errnoName(err) }, 'image rescan after change failed');
    }
  };
  return [
    defineMethod({
      name: 'image.list',
      params: z.strictObject({ sha256: z.boolean().default(true) }),
      summary:
        'images in the image folders: name, size, sha256 (cached; sha256: false skips hashing), VMs using each, who uploaded it',
      async handler(p) {
        const origins = opts.stateDir ? readOrigins(opts.stateDir()) : {};
        const rows = [];
        for (const f of await listImageFiles(opts.imageDirs())) {
          const users = (await opts.users?.(f.real)) ?? [];
          rows.push({
            name: f.name,
            path: f.path,
            size: f.size,
            sha256: p.sha256 ? await imageHash(f.real) : await cachedHash(f.real),
            usedBy: users.map((u) => u.name),
            running: users.filter((u) => running(u.state)).map((u) => u.name),
            uploadedBy: uploadedBy(origins, f.real),
          });
        }
        return rows;
      },
    }),
    defineMethod({
      name: 'image.delete',
      params: z.strictObject({ name: imageFileSchema }),
      summary: 'delete an image file; refused (-32009) while a VM runs from it or a configured VM names it',
      async handler(p) {
        const img = await findImage(opts.imageDirs(), p.name);
        const users = (await opts.users?.(img.real)) ?? [];
        const blocking = users.filter((u) => running(u.state) || u.configured);
        if (blocking.length > 0) {
          const u = blocking[0] as (typeof blocking)[number];
          throw new RpcError(
            RpcCode.conflict,
            `image "${p.name}" is in use by VM "${u.name}" (${running(u.state) ? u.state : 'configured'}): ${running(u.state) ? 'stop it' : 'delete or change that VM'} first`,
          );
        }
        await rm(img.path);
        if (opts.stateDir) await forgetOrigin(opts.stateDir(), img.real).catch(() => undefined);
        log.info({ path: img.path }, 'image deleted');
        await changed();
        return { name: p.name, path: img.path, deleted: true };
      },
    }),
    defineMethod({
      name: 'image.import',
      params: importParams,
      summary:
        'copy a .qcow2/.raw/.img/.vdi disk, a .ova or a .vbox (with its disks) from a host path into the first image folder; local socket only',
      async handler(p, ctx) {
        if (ctx.caller.kind === 'guest')
          throw new RpcError(RpcCode.forbidden, 'image.import reads host paths: the local socket only');
        const dir = opts.imageDirs()[0];
        if (!dir) throw new RpcError(RpcCode.notFound, 'no imageDirs configured: nowhere to import to');
        const r = await importImage(p, {
          dir,
          ledger: opts.ledger,
          defaults: opts.imageDefaults?.() ?? {},
        });
        log.info({ from: p.path, to: r.paths }, 'image imported');
        await changed();
        return r;
      },
    }),
  ];
}
