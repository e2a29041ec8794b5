import { Worker } from 'node:worker_threads';
import { startUnpinned } from '../../util/affinity.js';
import { KvmuxError } from '../../util/errors.js';

/**
 * sha256 of a transfer, computed in order on one shared worker thread, beside the event loop that
 * reads the socket instead of inside it. That loop is kvmux's input thread (SCHED_RR, pinned to the
 * CPU of the X server on screen): hashing there put a core's worth of work per upload above every
 * X server and vCPU, and in front of the next key. The worker starts SCHED_OTHER (reset on fork)
 * on every CPU.
 *
 * Measured 2026-12-03 (bench upload, 256 MiB, 2 MiB chunks, 4 in flight, A = on the event loop,
 * B = here): with SHA extensions 694–751 MB/s against 834–886 when the page cache is warm (both
 * ~450 when it is not), the event loop's CPU 270–320 ms against 160–230 ms per 256 MiB; without
 * them (OPENSSL_ia32cap, sha256 ~570 MB/s on one core, as on CPUs without SHA-NI) 364–384 against
 * 475–511 MB/s. An earlier try of this (before attachments were read in place) measured no gain.
 *
 * Chunks backed by a SharedArrayBuffer (the attachment pool's) reach the worker without a copy;
 * others are copied by postMessage. The worker starts on first use and keeps the process alive
 * only while a hash is waited for. Its code is CommonJS, run without the process's node options (`--input-type=module` would
 * make it ESM, where `require` is undefined).
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'drop') return void open.delete(m.id);
  let h = open.get(m.id);
  if (!h) open.set(m.id, (h = createHash('sha256')));
  if (m.op === 'update') {
    h.update(m.data);
    parentPort.postMessage({ seq: m.seq });
  } else {
    open.delete(m.id);
    parentPort.postMessage({ seq: m.seq, digest: h.digest('hex') });
  }
});`;

/** The hashing thread failed (not the data): a transfer reports it as such, not as a write error. */
export class HashError extends KvmuxError {
  override name = 'HashError';
}

interface Waiter {
  resolve(digest: string | undefined): void;
  reject(err: Error): void;
}

let worker: Worker | null = null;
const waiting = new Map<number, Waiter>();
let seq = 0;
let nextId = 0;
/** Counts the workers started: a hash begun on one cannot go on in the next. */
let generation = 0;
/** Hashes begun (a first update) and not yet ended by `digest` or `drop`. */
const openHashes = new Set<number>();

/** Every hash in progress fails with `err`; the next update starts a new worker. */
function failAll(err: Error): void {
  worker = null;
  // their state went with the thread: they can only fail now, and hold nothing open
  openHashes.clear();
  const all = [...waiting.values()];
  waiting.clear();
  for (const w of all) w.reject(err);
}

function start(): Worker {
  // a worker thread inherits the creating thread's CPU pin: started with every CPU
  const w = startUnpinned(() => new Worker(WORKER_SOURCE, { eval: true, execArgv: [] }));
  generation++;
  w.on('message', (m: { seq: number; digest?: string }) => {
    const waiter = waiting.get(m.seq);
    waiting.delete(m.seq);
    // idle: the worker alone does not keep the process alive
    if (waiting.size === 0) w.unref();
    waiter?.resolve(m.digest);
  });
  w.on('error', (err) => {
    if (worker === w) failAll(new HashError(`sha256 worker failed: ${err.message}`, { cause: err }));
  });
  w.on('exit', (code) => {
    if (worker === w) failAll(new HashError(`sha256 worker exited (code ${code})`));
  });
  return w;
}

/** `gen`: the worker the hash began on (0: none yet); a different one has lost its state. */
function post(msg: Record<string, unknown>, gen: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    try {
      // checked before starting one: a hash whose worker is gone fails without a new thread
      if (gen !== 0 && (worker === null || gen !== generation))
        throw new Error('ended during this transfer (its hash went with it)');
      worker ??= start();
      const s = ++seq;
      worker.postMessage({ ...msg, seq: s });
      waiting.set(s, { resolve, reject });
      // a hash being waited for keeps the process alive until it is answered
      worker.ref();
    } catch (err) {
      // cannot start a thread (out of memory, thread limit): this transfer fails, not the service
      reject(new HashError(`sha256 worker: ${(err as Error).message}`, { cause: err }));
    }
  });
}

/** Stop the hashing thread (service shutdown); hashes in progress fail. Safe to call at any time. */
export async function stopHashWorker(): Promise<void> {
  const w = worker;
  if (!w) return;
  failAll(new HashError('sha256 worker stopped'));
  await w.terminate();
}

/**
 * Stop the hashing thread if no hash is open (begun and not ended), so that nothing is lost. Ending
 * it also lets go of every shared slab it still refers to (freed once its exit is complete). False
 * when a hash is open.
 */
export function stopHashWorkerIfIdle(): boolean {
  if (openHashes.size > 0 || waiting.size > 0) return false;
  // the next update starts a new thread at once: this one is forgotten before it has ended
  void stopHashWorker();
  return true;
}

/** Whether the hashing thread is running (tests). */
export const hashWorkerRunning = (): boolean => worker !== null;

/** One transfer's running sha256: `update` in arrival order, then `digest` once. */
export class OrderedHash {
  private readonly id = ++nextId;
  private ended = false;
  private gen = 0;

  /** Resolves once the worker has hashed `data` (it must stay unchanged until then). */
  update(data: Buffer): Promise<void> {
    if (!this.ended) openHashes.add(this.id);
    const sent = post({ op: 'update', id: this.id, data }, this.gen);
    this.gen ||= generation;
    return sent.then(() => undefined);
  }

  /** The hex digest of everything given to `update` before this call. */
  async digest(): Promise<string> {
    this.ended = true;
    openHashes.delete(this.id);
    const d = await post({ op: 'digest', id: this.id }, this.gen);
    if (d === undefined) throw new HashError('sha256 worker gave no digest');
    return d;
  }

  /** Forget an unfinished hash (the transfer was aborted). */
  drop(): void {
    if (this.ended) return;
    this.ended = true;
    openHashes.delete(this.id);
    // a later worker never had this hash
    if (worker && this.gen === generation) worker.postMessage({ op: 'drop', id: this.id });
  }
}
