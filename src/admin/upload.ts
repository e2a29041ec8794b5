import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { KvmuxError } from '../util/errors.js';
import type { AdminRpc } from './rpc.js';

/**
 * Chunked transfer from the admin's side (image upload, host update): sha256 first, then
 * `<prefix>.begin {…, size, sha256}`, base64 chunks at checked offsets, `<prefix>.commit`.
 */
export const CHUNK_BYTES = 1 << 20;
const IN_FLIGHT = 4;

export type Progress = (phase: 'hashing' | 'sending', done: number, total: number) => void;

export async function sha256File(
  path: string,
  progress?: Progress,
): Promise<{ sha256: string; size: number }> {
  const { size } = await stat(path);
  const h = createHash('sha256');
  let done = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) {
    h.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    progress?.('hashing', done, size);
  }
  return { sha256: h.digest('hex'), size };
}

export interface TransferSpec {
  /** `image.upload` or `host.update`. */
  readonly prefix: string;
  readonly path: string;
  /** Extra begin params, e.g. `{name}` for an image. */
  readonly begin: Record<string, unknown>;
}

/** Runs one transfer; the commit result is returned. Aborts the server side on local failure. */
export async function transferFile(rpc: AdminRpc, spec: TransferSpec, progress?: Progress): Promise<unknown> {
  const { sha256, size } = await sha256File(spec.path, progress);
  const begun = (await rpc.call(`${spec.prefix}.begin`, { ...spec.begin, size, sha256 })) as {
    uploadId?: unknown;
  };
  if (typeof begun?.uploadId !== 'string')
    throw new KvmuxError(`${spec.prefix}.begin: no uploadId in the reply`);
  const uploadId = begun.uploadId;
  const fh = await open(spec.path, 'r');
  try {
    // A few chunks in flight: one at a time waits a round trip per chunk and halves throughput.
    const window: Promise<unknown>[] = [];
    for (let offset = 0; offset < size; offset += CHUNK_BYTES) {
      const buf = Buffer.alloc(Math.min(CHUNK_BYTES, size - offset));
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      if (bytesRead !== buf.length)
        throw new KvmuxError(`${spec.path}: file shrank during upload at offset ${offset}`);
      const sent = offset + buf.length;
      const data = buf.toString('base64');
      window.push(
        rpc
          .call(`${spec.prefix}.chunk`, { uploadId, offset, data })
          .then(() => progress?.('sending', sent, size)),
      );
      if (window.length >= IN_FLIGHT) await window.shift();
    }
    await Promise.all(window);
    return await rpc.call(`${spec.prefix}.commit`, { uploadId });
  } catch (err) {
    await rpc.call(`${spec.prefix}.abort`, { uploadId }).catch(() => undefined);
    throw err;
  } finally {
    await fh.close();
  }
}
