import { attachmentPool } from '../rpc/buffer-pool.js';
import { stopHashWorker, stopHashWorkerIfIdle } from './hash-worker.js';

/**
 * The service's transfer memory, from its start: the attachment pool's quiet clear (a minute
 * after the last give-back) ends the idle hashing thread first. That thread may still refer to the
 * slabs, and only its end (or its rare garbage collection) frees them. A hash still open (a
 * transfer paused between chunks) or a digest in flight puts both off by another minute.
 *
 * Returns what service stop calls: end the hashing thread (hashes in progress fail) and empty the
 * pool.
 */
export function manageTransferMemory(): () => Promise<void> {
  attachmentPool.beforeQuietClear = stopHashWorkerIfIdle;
  return async () => {
    attachmentPool.beforeQuietClear = undefined;
    await stopHashWorker();
    attachmentPool.clear();
  };
}
