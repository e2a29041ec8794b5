import { rmSync } from 'node:fs';
import { BackendError, errText } from '../../util/errors.js';
import type { VmHandle } from '../backends/backend.js';
import type { QmpClient } from '../qmp.js';
import { failedJob, type JobKind, type JobRecord, type JobView, newJob } from './job.js';
import {
  receiveStream,
  resumeAfterFailure,
  resumeGuest,
  sendStream,
  setReturnPath,
  watchIncoming,
} from './qemu-stream.js';
import {
  commitSaved,
  diskStamps,
  prepareSaveDir,
  restoreUri,
  type SavedMeta,
  saveUri,
} from './saved-state.js';
import { removeStreamKey, useNoStreamKey, useStreamKey, writeStreamKey } from './stream-key.js';

/**
 * The four jobs on one VM, as steps against its QMP: each records itself in the VM record first
 * (so a kvmux that dies half-way can finish or undo it, see adopt-job.ts) and clears that at the end.
 */
export interface JobHost {
  readonly name: string;
  readonly stateDir: string;
  /** Private folder (run dir) for a migration's stream key while the job runs. */
  readonly keyDir: string;
  handle(): VmHandle | null;
  /** The job as vm.list shows it; `record` (when given) is persisted in the VM record, null clears it. */
  setJob(view: JobView, record?: JobRecord | null): void;
}

export interface SaveInfo {
  readonly disks: readonly string[];
  readonly memoryMiB: number | null;
  readonly bandwidthMiB?: number | undefined;
}

async function qmpOf(host: JobHost): Promise<QmpClient> {
  const handle = host.handle();
  if (!handle) throw new BackendError(host.name, 'is not running');
  if (!handle.qmp) throw new BackendError(host.name, `its backend cannot save or migrate (only qemu can)`);
  const qmp = await handle.qmp();
  if (!qmp) throw new BackendError(host.name, 'QMP is not reachable');
  return qmp;
}

/** Ends QEMU once its state lives elsewhere (a file, another host): the exit is a clean stop. */
async function quit(host: JobHost, qmp: QmpClient): Promise<void> {
  const handle = host.handle();
  await qmp.execute('quit').catch(() => {});
  if (handle) await handle.exited;
}

/** Pause, stream the memory and devices to a gzip file, stamp the disks, quit. */
export async function saveVm(host: JobHost, info: SaveInfo): Promise<SavedMeta> {
  const qmp = await qmpOf(host);
  const paths = prepareSaveDir(host.stateDir, host.name);
  const job = newJob('save', paths.file, new Date());
  host.setJob(job, { kind: 'save', target: paths.file, partial: paths.partial, startedAt: job.startedAt });
  // paused first: the stream is one pass, and the disks stop changing before they are stamped
  await qmp.execute('stop');
  let end: JobView;
  try {
    // a file takes QEMU's plain one-way stream: a failed keyed migration before left its TLS set,
    // which waits on gzip forever, the guest paused (sendStream turns the return path off itself)
    await useNoStreamKey(qmp);
    end = await sendStream(qmp, saveUri(paths.partial), job, {
      bandwidthMiB: info.bandwidthMiB,
      onProgress: (v) => host.setJob(v),
    });
  } catch (err) {
    end = failedJob(job, errText(err));
  }
  if (end.status !== 'completed') {
    rmSync(paths.partial, { force: true });
    await resumeAfterFailure(qmp);
    host.setJob(end, null);
    throw new BackendError(host.name, `save failed: ${end.error ?? end.qemuStatus}`);
  }
  let meta: SavedMeta;
  try {
    meta = await commitSaved(host.stateDir, {
      vm: host.name,
      memoryMiB: info.memoryMiB,
      disks: diskStamps(info.disks),
    });
  } catch (err) {
    // the file never became whole: the guest goes on, nothing replaced the last good save
    rmSync(paths.partial, { force: true });
    await resumeAfterFailure(qmp);
    host.setJob(failedJob(end, errText(err)), null);
    throw new BackendError(host.name, `save failed: ${errText(err)}`);
  }
  host.setJob(end, null);
  await quit(host, qmp);
  return meta;
}

/**
 * Live-migrate to a kvmux that is receiving on `to`; the guest runs there, this QEMU quits. With
 * `key` the stream is TLS with that pre-shared key: only a receiver holding the same key takes it.
 */
export async function migrateVm(
  host: JobHost,
  to: string,
  opts: { bandwidthMiB?: number | undefined; key?: string | undefined } = {},
): Promise<JobView> {
  const qmp = await qmpOf(host);
  const keyed = opts.key !== undefined;
  const job = newJob('migrate', to, new Date(), keyed);
  host.setJob(job, { kind: 'migrate', target: to, startedAt: job.startedAt, ...(keyed ? { keyed } : {}) });
  let end: JobView;
  try {
    if (opts.key !== undefined) {
      writeStreamKey(host.keyDir, opts.key);
      await useStreamKey(qmp, host.keyDir, 'client', { fresh: true });
    } else await useNoStreamKey(qmp);
    end = await sendStream(qmp, to, job, {
      bandwidthMiB: opts.bandwidthMiB,
      returnPath: true,
      onProgress: (v) => host.setJob(v),
    });
  } catch (err) {
    end = failedJob(job, errText(err));
  } finally {
    removeStreamKey(host.keyDir);
  }
  host.setJob(end, null);
  if (end.status !== 'completed') {
    await resumeAfterFailure(qmp);
    throw new BackendError(host.name, `migration to ${to} failed: ${end.error ?? end.qemuStatus}`);
  }
  await quit(host, qmp);
  return end;
}

/**
 * A QEMU started with `-incoming defer`: take the stream (restore: from the saved file; receive:
 * listening on `uri`, with `key` only a sender holding the same key). Follow it, run the guest.
 * Resolves with the final view; failure throws.
 */
export async function takeIncoming(
  host: JobHost,
  incoming: { kind: JobKind; uri: string; target: string; key?: string | undefined },
  onListening: () => void = () => {},
): Promise<JobView> {
  const { kind, uri, target, key } = incoming;
  const qmp = await qmpOf(host);
  const keyed = key !== undefined;
  const job = newJob(kind, target, new Date(), keyed);
  host.setJob(job, { kind, target, startedAt: job.startedAt, ...(keyed ? { keyed } : {}) });
  let end: JobView;
  try {
    if (kind === 'receive') await setReturnPath(qmp);
    if (key !== undefined) {
      writeStreamKey(host.keyDir, key);
      await useStreamKey(qmp, host.keyDir, 'server', { fresh: true });
    }
    await receiveStream(qmp, uri);
    onListening();
    end = await watchIncoming(qmp, job, { onProgress: (v) => host.setJob(v) });
    if (end.status === 'completed') await resumeGuest(qmp);
  } catch (err) {
    end = failedJob(job, errText(err));
  }
  removeStreamKey(host.keyDir);
  host.setJob(end, null);
  if (end.status !== 'completed')
    throw new BackendError(host.name, `${kind} from ${target} failed: ${end.error ?? end.qemuStatus}`);
  return end;
}

export const restoreSource = (file: string) => restoreUri(file);
