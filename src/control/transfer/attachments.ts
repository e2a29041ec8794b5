import { attachmentPool } from '../rpc/buffer-pool.js';
import { stopHashWorker, stopHashWorkerIfIdle } from './hash-worker.js';

/** A minute without a chunk given back: the pool's memory goes back to the system. */
const QUIET_MS = 60_000;
let quietTimer: NodeJS.Timeout | undefined;

/**
 * Give an upload chunk's attachment back to the shared pool. After a quiet minute the pool is
 * emptied and the idle hashing thread ended with it: that thread may still refer to the slabs, and
 * only its end (or its rare garbage collection) frees them. A hash still open (a transfer paused
 * between chunks) puts both off by another minute.
 */
export function giveAttachment(buf: Buffer): void {
  attachmentPool.give(buf);
  armQuietTimer();
}

function armQuietTimer(): void {
  clearTimeout(quietTimer);
  quietTimer = setTimeout(whenQuiet, QUIET_MS);
  quietTimer.unref();
}

function whenQuiet(): void {
  if (stopHashWorkerIfIdle()) attachmentPool.clear();
  else armQuietTimer();
}

/** Service stop: end the hashing thread (hashes in progress fail) and empty the pool. */
export async function releaseTransferMemory(): Promise<void> {
  clearTimeout(quietTimer);
  await stopHashWorker();
  attachmentPool.clear();
}
