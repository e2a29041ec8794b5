import { attachmentPool } from '../rpc/buffer-pool.js';
import { stopHashWorker, stopHashWorkerIfIdle } from './hash-worker.js';

/**
 * The attachment pool's quiet clear (a minute after the last give-back) ends the idle hashing
 * thread first: that thread may still refer to the slabs, and only its end (or its rare garbage
 * collection) frees them. A hash still open (a transfer paused between chunks) or a digest in
 * flight puts both off by another minute.
 */
attachmentPool.beforeQuietClear = stopHashWorkerIfIdle;

/** Give an upload chunk's attachment back to the shared pool once nothing reads it. */
export function giveAttachment(buf: Buffer): void {
  attachmentPool.give(buf);
}

/** Service stop: end the hashing thread (hashes in progress fail) and empty the pool. */
export async function releaseTransferMemory(): Promise<void> {
  await stopHashWorker();
  attachmentPool.clear();
}
