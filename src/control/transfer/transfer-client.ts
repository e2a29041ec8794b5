import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
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
      window.push(
        c.call(`${o.prefix}.chunk`, { uploadId, offset, data: buf.toString('base64') }, 120_000).then(() => {
          o.onProgress?.(sent, size);
        }),
      );
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
