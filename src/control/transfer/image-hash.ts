import { realpathSync, statSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { startUnpinned } from '../../util/affinity.js';

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
  const job = hashInWorker(real)
    .then((sha256) => {
      cache.set(real, { key: keyOf(st), sha256 });
      return sha256;
    })
    .finally(() => running.delete(real));
  running.set(real, job);
  return job;
}

/**
 * The hashing runs in a worker thread, not on the main thread: that thread is the input thread and
 * runs SCHED_RR (util/priority.ts), so a multi-GiB hash there would sit above every X server and
 * vCPU. A thread made after that call starts SCHED_OTHER (SCHED_RESET_ON_FORK). The worker's code
 * is inline (CommonJS, with the process's own node options left out: `--input-type=module` would make it
 * ESM) so it runs the same from src under the tests and from dist.
 */
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { createReadStream } = require('node:fs');
const h = createHash('sha256');
createReadStream(workerData, { highWaterMark: 1 << 20 })
  .on('data', (c) => h.update(c))
  .on('end', () => parentPort.postMessage({ sha256: h.digest('hex') }))
  .on('error', (e) => parentPort.postMessage({ error: e.message }));
`;

function hashInWorker(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // a worker thread inherits the creating thread's CPU pin: started unpinned
    const w = startUnpinned(() => new Worker(HASH_WORKER, { eval: true, execArgv: [], workerData: path }));
    let settled = false;
    w.once('message', (m: { sha256?: string; error?: string }) => {
      settled = true;
      if (m.sha256) resolve(m.sha256);
      else reject(new Error(`hashing ${path}: ${m.error ?? 'failed'}`));
      void w.terminate();
    });
    w.once('error', (e) => {
      settled = true;
      reject(e);
    });
    w.once('exit', (code) => {
      if (!settled) reject(new Error(`hashing ${path}: worker exited (${code})`));
    });
  });
}
