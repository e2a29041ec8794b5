import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { KvmuxError } from '../../util/errors.js';
import type { RpcClient } from '../rpc/client.js';

/**
 * Client side of chunked transfers: stream a local file through `<prefix>.begin|chunk|commit`,
 * keeping a few chunks in flight (one at a time halves the throughput: see bench/control.bench.ts).
 */
export interface SendFileOptions {
  /** "image.upload" or "host.update". */
  prefix: 'image.upload' | 'host.update';
  file: string;
  /** Extra begin params: {name, replace} for images, {version} for host updates. */
  begin?: Record<string, unknown>;
  chunkBytes?: number;
  inFlight?: number;
  /** Send chunks as `#bin` attachments (default) or as base64 `data` (any kvmux, any peer). */
  binary?: boolean;
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Upload `file`; resolves with the commit result. On any failure the transfer is aborted. */
export async function sendFile(c: RpcClient, o: SendFileOptions): Promise<unknown> {
  const size = (await stat(o.file)).size;
  const chunkBytes = o.chunkBytes ?? 2 << 20;
  const inFlight = o.inFlight ?? 4;
  const sha256 = await sha256File(o.file);
  const { uploadId } = await c.call<{ uploadId: string }>(`${o.prefix}.begin`, { ...o.begin, size, sha256 });
  const fh = await open(o.file, 'r');
  try {
    const window: Promise<unknown>[] = [];
    for (let offset = 0; offset < size; offset += chunkBytes) {
      o.signal?.throwIfAborted();
      const buf = Buffer.alloc(Math.min(chunkBytes, size - offset));
      await fh.read(buf, 0, buf.length, offset);
      const sent = offset + buf.length;
      const call =
        o.binary === false
          ? c.call(`${o.prefix}.chunk`, { uploadId, offset, data: buf.toString('base64') }, 120_000)
          : c.callBinary(`${o.prefix}.chunk`, { uploadId, offset }, buf, 120_000);
      window.push(call.then(() => o.onProgress?.(sent, size)));
      if (window.length >= inFlight) await window.shift();
    }
    await Promise.all(window);
    return await c.call(`${o.prefix}.commit`, { uploadId }, 600_000);
  } catch (err) {
    await c.call(`${o.prefix}.abort`, { uploadId }).catch(() => undefined);
    throw err;
  } finally {
    await fh.close();
  }
}

export interface ReceiveFileOptions {
  /** Image file name on the host. */
  name: string;
  /** Local file to write; it appears only once complete and its sha256 matched. */
  out: string;
  chunkBytes?: number;
  inFlight?: number;
  /** Chunks as `#bin` attachments (default) or base64. */
  binary?: boolean;
  onProgress?: (received: number, total: number) => void;
}

/**
 * Download image `name` into `out`: chunks in flight, written at their offsets, hashed in order;
 * the sha256 the host named at begin must match what was written, else nothing is kept.
 */
export async function receiveFile(
  c: RpcClient,
  o: ReceiveFileOptions,
): Promise<{ path: string; size: number; sha256: string }> {
  const begin = await c.call<{ downloadId: string; size: number; sha256: string }>('image.download.begin', {
    name: o.name,
  });
  const { downloadId, size } = begin;
  const binary = o.binary ?? true;
  // at most 8 MiB of replies in flight: the host drops a peer with 16 MiB of unread output
  const chunkBytes = o.chunkBytes ?? 2 << 20;
  const inFlight = o.inFlight ?? 4;
  const tmp = join(dirname(o.out), `.${basename(o.out)}.${randomBytes(4).toString('hex')}.part`);
  const fh = await open(tmp, 'wx', 0o600);
  const hash = createHash('sha256');
  try {
    const fetchChunk = async (offset: number): Promise<Buffer> => {
      const length = Math.min(chunkBytes, size - offset);
      if (binary) {
        const r = await c.callBinary(
          'image.download.chunk',
          { downloadId, offset, length, binary: true },
          undefined,
          120_000,
        );
        if (!r.binary) throw new KvmuxError(`image.download.chunk: no binary data at offset ${offset}`);
        return r.binary;
      }
      const r = await c.call<{ data: string }>(
        'image.download.chunk',
        { downloadId, offset, length },
        120_000,
      );
      return Buffer.from(r.data, 'base64');
    };
    const window: Array<{ offset: number; data: Promise<Buffer> }> = [];
    let next = 0;
    let done = 0;
    while (done < size) {
      while (next < size && window.length < inFlight) {
        window.push({ offset: next, data: fetchChunk(next) });
        next += Math.min(chunkBytes, size - next);
      }
      const head = window.shift() as { offset: number; data: Promise<Buffer> };
      const data = await head.data;
      if (data.length !== Math.min(chunkBytes, size - head.offset))
        throw new KvmuxError(`${o.name}: short chunk at offset ${head.offset} (the image changed?)`);
      hash.update(data);
      await fh.write(data, 0, data.length, head.offset);
      done += data.length;
      o.onProgress?.(done, size);
    }
    await fh.sync();
    const sha256 = hash.digest('hex');
    if (sha256 !== begin.sha256)
      throw new KvmuxError(
        `${o.name}: sha256 mismatch: host said ${begin.sha256}, received ${sha256}; nothing kept`,
      );
    await fh.close();
    await rename(tmp, o.out);
    return { path: o.out, size, sha256 };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await c.call('image.download.end', { downloadId }).catch(() => undefined);
  }
}
