import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import { type Logger, silentLogger } from '../../util/log.js';
import type { RpcMethod } from '../rpc/method.js';
import { sha256Schema } from './chunked-file.js';
import { chunkedMethods } from './chunked-methods.js';

/**
 * `image.upload.begin|chunk|commit|abort`: a VM image arrives in base64 chunks and lands atomically
 * in the first imageDir. Names are plain file names with an image extension: no directories, no
 * dot files, no traversal.
 */
export const IMAGE_EXTENSIONS = ['qcow2', 'raw', 'img', 'vdi', 'iso'] as const;

const extPattern = IMAGE_EXTENSIONS.join('|');
export const imageNameSchema = z
  .string()
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a plain file name ([A-Za-z0-9._-], no "/" or leading ".")')
  .refine((n) => !n.includes('..'), 'must not contain ".."')
  .refine((n) => new RegExp(`\\.(${extPattern})$`).test(n), `must end in .${IMAGE_EXTENSIONS.join(', .')}`);

/** 1 TiB: larger than any image we expect, small enough that size arithmetic stays exact. */
export const MAX_IMAGE_BYTES = 2 ** 40;

const beginParams = z.strictObject({
  name: imageNameSchema,
  size: z.number().int().min(1).max(MAX_IMAGE_BYTES),
  sha256: sha256Schema,
  replace: z.boolean().default(false),
});

export interface ImageUploadOptions {
  /** Current imageDirs (a function so config reloads apply); uploads go to the first. */
  imageDirs: () => readonly string[];
  /** Called with the final path after each commit (the lead wires image discovery here). */
  onImageAdded?: (path: string) => void | Promise<void>;
  /** True when a running VM uses this image: `replace` is then refused. */
  inUse?: (path: string) => boolean | Promise<boolean>;
  /** Open uploads per channel (default 2). */
  maxPerConnection?: number;
  log?: Logger;
}

interface Meta {
  finalPath: string;
  replace: boolean;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export function imageUploadMethods(opts: ImageUploadOptions): RpcMethod[] {
  const log = opts.log ?? silentLogger;
  return chunkedMethods<typeof beginParams, Meta>({
    prefix: 'image.upload',
    beginParams,
    maxPerConnection: opts.maxPerConnection ?? 2,
    async prepare(p) {
      const dir = opts.imageDirs()[0];
      if (!dir) throw new RpcError(RpcCode.notFound, 'no imageDirs configured: nowhere to put an upload');
      const finalPath = join(dir, p.name);
      if (!p.replace && (await exists(finalPath))) {
        throw new RpcError(
          RpcCode.conflict,
          `image "${p.name}" already exists in ${dir} (pass replace: true)`,
        );
      }
      if (p.replace && (await opts.inUse?.(finalPath))) {
        throw new RpcError(RpcCode.conflict, `image "${p.name}" is in use by a running VM; stop it first`);
      }
      return { dir, size: p.size, sha256: p.sha256, meta: { finalPath, replace: p.replace } };
    },
    async finish(transfer, meta) {
      if (meta.replace && (await opts.inUse?.(meta.finalPath))) {
        throw new RpcError(RpcCode.conflict, `${meta.finalPath}: in use by a running VM; not replaced`);
      }
      await transfer.commit(meta.finalPath, { replace: meta.replace });
      log.info({ path: meta.finalPath, size: transfer.size }, 'image uploaded');
      try {
        await opts.onImageAdded?.(meta.finalPath);
      } catch (err) {
        log.warn({ err, path: meta.finalPath }, 'onImageAdded hook failed');
      }
      return { path: meta.finalPath, size: transfer.size, sha256: transfer.sha256 };
    },
  });
}
