import { randomBytes } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import { BinaryReply, type CallContext, defineMethod, type RpcMethod } from '../rpc/method.js';
import { findImage, type ImageCatalogueHooks, imageFileSchema } from './image-files.js';
import { imageHash } from './image-hash.js';

/**
 * `image.download.begin|chunk|end`: the reverse of upload, for moving an image to another host.
 * begin opens the file and names its size and sha256; chunks are read at any offset (so a client
 * may keep several in flight); the client checks the sha256 of what it wrote. A disk a running VM
 * writes to is refused: its copy would not match any moment of the disk.
 */
export const MAX_DOWNLOAD_CHUNK = 4 << 20;
/** A base64 reply must fit the client's line limit comfortably. */
const MAX_BASE64_CHUNK = 2 << 20;

interface OpenDownload {
  fh: FileHandle;
  size: number;
  timer: NodeJS.Timeout | undefined;
}

export interface DownloadOptions extends ImageCatalogueHooks {
  imageDirs: () => readonly string[];
  /** Open downloads per channel (default 2). */
  maxPerConnection?: number;
  idleMs?: () => number;
}

const idSchema = z.string().regex(/^[0-9a-f]{32}$/, 'must be an id from begin');

export function imageDownloadMethods(opts: DownloadOptions): RpcMethod[] {
  const key = 'kvmux.downloads';
  const idleMs = opts.idleMs ?? (() => 300_000);
  const end = async (table: Map<string, OpenDownload>, id: string) => {
    const d = table.get(id);
    if (!d) return;
    table.delete(id);
    clearTimeout(d.timer);
    await d.fh.close().catch(() => undefined);
  };
  const tableOf = (ctx: CallContext) => {
    let map = ctx.connection.get(key) as Map<string, OpenDownload> | undefined;
    if (!map) {
      const m = new Map<string, OpenDownload>();
      map = m;
      ctx.connection.set(key, m);
      ctx.onSessionEnd(() => {
        for (const id of [...m.keys()]) void end(m, id);
        ctx.connection.delete(key);
      });
    }
    return map;
  };
  const find = (ctx: CallContext, id: string) => {
    const table = tableOf(ctx);
    const d = table.get(id);
    if (!d) throw new RpcError(RpcCode.notFound, `image.download: no open download "${id}" on this channel`);
    clearTimeout(d.timer);
    d.timer = setTimeout(() => void end(table, id), idleMs());
    d.timer.unref();
    return d;
  };
  return [
    defineMethod({
      name: 'image.download.begin',
      params: z.strictObject({ name: imageFileSchema }),
      summary: 'open an image for download; returns {downloadId, size, sha256}',
      async handler(p, ctx) {
        const table = tableOf(ctx);
        const max = opts.maxPerConnection ?? 2;
        if (table.size >= max)
          throw new RpcError(
            RpcCode.tooManyRequests,
            `image.download: at most ${max} open downloads per channel`,
          );
        const img = await findImage(opts.imageDirs(), p.name);
        const busy = (await opts.users?.(img.real))?.filter(
          (u) => u.state !== 'stopped' && u.state !== 'crashed',
        );
        if (busy && busy.length > 0)
          throw new RpcError(
            RpcCode.conflict,
            `image "${p.name}" is in use by running VM "${busy[0]?.name}": stop it to download a consistent copy`,
          );
        const fh = await open(img.real, 'r');
        try {
          const st = await fh.stat();
          const sha256 = await imageHash(img.real);
          if ((await fh.stat()).mtimeMs !== st.mtimeMs)
            throw new RpcError(RpcCode.conflict, `image "${p.name}" changed while it was hashed; try again`);
          const downloadId = randomBytes(16).toString('hex');
          table.set(downloadId, { fh, size: st.size, timer: undefined });
          find(ctx, downloadId);
          return { downloadId, size: st.size, sha256 };
        } catch (err) {
          await fh.close();
          throw err;
        }
      },
    }),
    defineMethod({
      name: 'image.download.chunk',
      bulk: true,
      params: z.strictObject({
        downloadId: idSchema,
        offset: z.number().int().min(0),
        length: z.number().int().min(1).max(MAX_DOWNLOAD_CHUNK),
        /** Reply with a `#bin N` attachment instead of base64 `data`. */
        binary: z.boolean().default(false),
      }),
      summary: 'read length bytes at offset: {data} (base64), or a #bin attachment with binary: true',
      async handler(p, ctx) {
        const d = find(ctx, p.downloadId);
        if (!p.binary && p.length > MAX_BASE64_CHUNK)
          throw new RpcError(
            RpcCode.invalidParams,
            `invalid params: length: at most ${MAX_BASE64_CHUNK} as base64`,
          );
        if (p.offset > d.size)
          throw new RpcError(RpcCode.invalidParams, `invalid params: offset: past the end (${d.size} bytes)`);
        const buf = Buffer.allocUnsafe(Math.min(p.length, d.size - p.offset));
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await d.fh.read(buf, got, buf.length - got, p.offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        const data = buf.subarray(0, got);
        if (p.binary) return new BinaryReply({ offset: p.offset, length: got }, data);
        return { offset: p.offset, length: got, data: data.toString('base64') };
      },
    }),
    defineMethod({
      name: 'image.download.end',
      params: z.strictObject({ downloadId: idSchema }),
      summary: 'close an open download',
      async handler(p, ctx) {
        find(ctx, p.downloadId);
        await end(tableOf(ctx), p.downloadId);
        return { ended: true };
      },
    }),
  ];
}
