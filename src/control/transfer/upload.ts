import { access, readdir, realpath, rm, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import type { Config } from '../../config/schema.js';
import { inspectImage } from '../../session/image-inspect.js';
import { bytesByVm, readOrigins, recordOrigin } from '../../session/image-origins.js';
import { errnoName, RpcCode, RpcError } from '../../util/errors.js';
import { type Logger, silentLogger } from '../../util/log.js';
import type { RpcMethod } from '../rpc/method.js';
import { sha256Schema, TEMP_PREFIX } from './chunked-file.js';
import { chunkedMethods } from './chunked-methods.js';
import type { ImageUser } from './image-files.js';
import { rememberHash } from './image-hash.js';
import { type Reservation, SpaceLedger } from './space-ledger.js';

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
  /** stateDir: where the origin of guest uploads is recorded (image-origins.json). */
  stateDir?: () => string;
  /** The config's imageDefaults (backing files, quota, margin, idle timeout). */
  imageDefaults?: () => Partial<Config['imageDefaults']>;
  /** Shared with image.import and downloads' neighbours: space promised to open uploads. */
  ledger?: SpaceLedger;
  /** Called with the final path after each commit (the lead wires image discovery here). */
  onImageAdded?: (path: string) => void | Promise<void>;
  /** True when a running VM uses this image (real path): `replace` is then refused. */
  inUse?: (path: string) => boolean | Promise<boolean>;
  /** The VMs using an image (real path): a guest may not replace a configured VM's disk. */
  users?: (realPath: string) => ImageUser[] | Promise<ImageUser[]>;
  /** Open uploads per channel (default 2). */
  maxPerConnection?: number;
  log?: Logger;
}

interface Meta {
  finalPath: string;
  replace: boolean;
  /** The uploading VM, or null for the local socket. */
  by: string | null;
  reservation: Reservation | null;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** The real path `path` has or would have (its folder resolved; the file itself if it exists). */
export async function realTarget(path: string): Promise<string> {
  return realpath(path).catch(async () => join(await realpath(dirname(path)), basename(path)));
}

/** Remove temp files left by uploads that never finished (a crash, a power cut): at start only. */
export async function sweepStaleUploads(
  dirs: readonly string[],
  log: Logger = silentLogger,
): Promise<number> {
  let n = 0;
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const f of names.filter((x) => x.startsWith(TEMP_PREFIX))) {
      await rm(join(dir, f), { force: true });
      n++;
    }
  }
  if (n > 0) log.info({ removed: n }, 'swept stale upload temp files');
  return n;
}

export function imageUploadMethods(opts: ImageUploadOptions): RpcMethod[] {
  const log = opts.log ?? silentLogger;
  const ledger = opts.ledger ?? new SpaceLedger();
  const defaults = () => opts.imageDefaults?.() ?? {};
  const inUse = async (path: string) => (await opts.inUse?.(await realTarget(path))) ?? false;
  return chunkedMethods<typeof beginParams, Meta>({
    prefix: 'image.upload',
    beginParams,
    maxPerConnection: opts.maxPerConnection ?? 2,
    idleMs: () => (defaults().transferIdleSeconds ?? 300) * 1000,
    async prepare(p, ctx) {
      const dir = opts.imageDirs()[0];
      if (!dir) throw new RpcError(RpcCode.notFound, 'no imageDirs configured: nowhere to put an upload');
      const finalPath = join(dir, p.name);
      if (!p.replace && (await exists(finalPath))) {
        throw new RpcError(
          RpcCode.conflict,
          `image "${p.name}" already exists in ${dir} (pass replace: true)`,
        );
      }
      if (p.replace && (await inUse(finalPath))) {
        throw new RpcError(RpcCode.conflict, `image "${p.name}" is in use by a running VM; stop it first`);
      }
      const by = ctx.caller.kind === 'guest' ? ctx.caller.vm : null;
      // the admin's VM config (autostart, guest channel) would then run what the guest wrote
      const owner =
        by && p.replace
          ? (await opts.users?.(await realTarget(finalPath)))?.find((u) => u.configured)
          : undefined;
      if (owner)
        throw new RpcError(
          RpcCode.conflict,
          `image "${p.name}" is the disk of configured VM "${owner.name}": a guest may not replace it`,
        );
      const reservation = await reserve(ledger, dir, p.size, by, opts, defaults());
      return {
        dir,
        size: p.size,
        sha256: p.sha256,
        meta: { finalPath, replace: p.replace, by, reservation },
      };
    },
    opened(meta, transfer) {
      if (meta.reservation) meta.reservation.received = () => transfer.bytesReceived;
    },
    released(meta) {
      if (meta.reservation) ledger.release(meta.reservation);
    },
    async finish(transfer, meta) {
      if (meta.replace && (await inUse(meta.finalPath))) {
        throw new RpcError(RpcCode.conflict, `${meta.finalPath}: in use by a running VM; not replaced`);
      }
      const stateDir = opts.stateDir?.();
      await transfer.commit(meta.finalPath, {
        replace: meta.replace,
        inspect: async (tmp) => {
          const bad = await inspectImage(tmp, {
            asName: meta.finalPath,
            allowBackingFiles: defaults().allowBackingFiles ?? false,
          });
          if (bad) throw new RpcError(RpcCode.invalidParams, `image "${basename(meta.finalPath)}" ${bad}`);
        },
        validate: async (tmp) => {
          // recorded before the file appears, so discovery never sees a guest's upload as the admin's
          if (stateDir)
            await recordOrigin(stateDir, await realTarget(meta.finalPath), await stat(tmp), meta.by);
        },
      });
      log.info({ path: meta.finalPath, size: transfer.size, by: meta.by ?? 'local' }, 'image uploaded');
      rememberHash(meta.finalPath, transfer.sha256);
      try {
        await opts.onImageAdded?.(meta.finalPath);
      } catch (err) {
        log.warn({ err, path: meta.finalPath }, 'onImageAdded hook failed');
      }
      return { path: meta.finalPath, size: transfer.size, sha256: transfer.sha256 };
    },
  });
}

/** Hold `size` bytes on `dir`'s filesystem for `by` (free space, margin, quota), or refuse. */
export async function reserve(
  ledger: SpaceLedger,
  dir: string,
  size: number,
  by: string | null,
  opts: Pick<ImageUploadOptions, 'stateDir'>,
  defaults: Partial<Config['imageDefaults']>,
): Promise<Reservation> {
  const [fs, st] = await Promise.all([statfs(dir), stat(dir)]).catch((err) => {
    throw new RpcError(RpcCode.notFound, `${dir}: cannot use image folder: ${errnoName(err)}`);
  });
  const r: Reservation = { fs: String(st.dev), owner: by, size, received: () => 0 };
  const stateDir = opts.stateDir?.();
  const quota = defaults.guestQuotaMiB;
  ledger.reserve(
    r,
    {
      freeBytes: fs.bavail * fs.bsize,
      marginBytes: (defaults.reserveMiB ?? 256) * MiB,
      ...(by !== null && quota !== undefined
        ? {
            quotaBytes: quota * MiB,
            storedBytes: stateDir ? (bytesByVm(readOrigins(stateDir)).get(by) ?? 0) : 0,
          }
        : {}),
    },
    (why) => new RpcError(RpcCode.invalidParams, `invalid params: size: ${why}`),
  );
  return r;
}

const MiB = 1 << 20;
