import { Worker } from 'node:worker_threads';
import { KvmuxError } from '../../util/errors.js';

/**
 * sha256 of a transfer, computed in order on one shared worker thread, so hashing (one core's
 * worth at upload rates) runs beside the event loop that reads the socket instead of inside it.
 * Chunks backed by a SharedArrayBuffer (the attachment pool's) reach the worker without a copy;
 * others are copied by postMessage. The worker is started on first use and does not keep the
 * process alive.
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

interface Waiter {
  resolve(digest: string | undefined): void;
  reject(err: Error): void;
}

let worker: Worker | null = null;
const waiting = new Map<number, Waiter>();
let seq = 0;
let nextId = 0;

function failAll(err: Error): void {
  worker = null;
  for (const w of waiting.values()) w.reject(err);
  waiting.clear();
}

function post(msg: Record<string, unknown>): Promise<string | undefined> {
  if (!worker) {
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.on('message', (m: { seq: number; digest?: string }) => {
      const waiter = waiting.get(m.seq);
      waiting.delete(m.seq);
      waiter?.resolve(m.digest);
    });
    w.on('error', (err) => failAll(new KvmuxError(`sha256 worker failed: ${err.message}`, { cause: err })));
    w.on('exit', (code) => {
      if (worker === w) failAll(new KvmuxError(`sha256 worker exited (code ${code})`));
    });
    // after the listeners: adding one refs the worker's port again
    w.unref();
    worker = w;
  }
  const s = ++seq;
  const w = worker;
  return new Promise((resolve, reject) => {
    waiting.set(s, { resolve, reject });
    w.postMessage({ ...msg, seq: s });
  });
}

/** One transfer's running sha256: `update` in arrival order, then `digest` once. */
export class OrderedHash {
  private readonly id = ++nextId;
  private ended = false;

  /** Resolves once the worker has hashed `data` (it must stay unchanged until then). */
  update(data: Buffer): Promise<void> {
    return post({ op: 'update', id: this.id, data }).then(() => undefined);
  }

  /** The hex digest of everything given to `update` before this call. */
  async digest(): Promise<string> {
    this.ended = true;
    const d = await post({ op: 'digest', id: this.id });
    if (d === undefined) throw new KvmuxError('sha256 worker gave no digest');
    return d;
  }

  /** Forget an unfinished hash (the transfer was aborted). */
  drop(): void {
    if (this.ended || !worker) return;
    this.ended = true;
    worker.postMessage({ op: 'drop', id: this.id });
  }
}
