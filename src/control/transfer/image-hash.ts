import { createHash } from 'node:crypto';
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';

/**
 * sha256 of image files, cached by (real path, inode, size, mtime): image.list and
 * image.download.begin hash a multi-GiB disk once, not on every call. An upload's commit primes
 * the cache with the digest it already verified.
 */
interface Entry {
  key: string;
  sha256: string;
}

const cache = new Map<string, Entry>();
/** One hash per file at a time, shared by concurrent callers. */
const running = new Map<string, Promise<string>>();

const keyOf = (st: { dev: number; ino: number; size: number; mtimeMs: number }) =>
  `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;

export function rememberHash(path: string, sha256: string): void {
  try {
    const real = realpathSync(path);
    cache.set(real, { key: keyOf(statSync(real)), sha256 });
  } catch {
    // gone already: nothing to remember
  }
}

/** The cached digest if the file is unchanged since, else null (no I/O beyond stat). */
export async function cachedHash(path: string): Promise<string | null> {
  const real = await realpath(path);
  const st = await stat(real);
  const hit = cache.get(real) ?? cache.get(path);
  return hit && hit.key === keyOf(st) ? hit.sha256 : null;
}

export async function imageHash(path: string): Promise<string> {
  const real = await realpath(path);
  const st = await stat(real);
  const hit = cache.get(real) ?? cache.get(path);
  if (hit && hit.key === keyOf(st)) return hit.sha256;
  const inflight = running.get(real);
  if (inflight) return inflight;
  const job = (async () => {
    const h = createHash('sha256');
    for await (const chunk of createReadStream(real, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
    const sha256 = h.digest('hex');
    cache.set(real, { key: keyOf(st), sha256 });
    return sha256;
  })().finally(() => running.delete(real));
  running.set(real, job);
  return job;
}
