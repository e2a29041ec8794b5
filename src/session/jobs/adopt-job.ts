import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errText } from '../../util/errors.js';
import type { QmpClient } from '../qmp.js';
import { type JobRecord, type JobView, newJob, type QueryMigrate } from './job.js';
import { resumeAfterFailure, resumeGuest, setReturnPath, watchIncoming, watchStream } from './qemu-stream.js';
import { commitSaved, diskStamps, dropSaved, restoreUri } from './saved-state.js';
import { removeStreamKey, useStreamKey } from './stream-key.js';
import type { JobHost, SaveInfo } from './vm-jobs.js';

/**
 * A kvmux that died mid-job left QEMU going on alone: the record says which job it was, QEMU says
 * how far it got. Pure decision first, then the steps: keep following a stream still running,
 * finish one that completed (commit the save, quit the sender), undo one that failed.
 *
 * Where each job ends (the guest runs at exactly one place, or waits in a saved file):
 * - save: completed → the state is committed and QEMU quits (VM stopped, saved); else the partial
 *   file goes and the guest runs on.
 * - migrate (sender): completed → QEMU quits, the guest runs at the receiver; failed or cancelled
 *   → the guest runs on here (QEMU restarts it itself; kvmux makes sure with `cont`).
 * - restore: completed → the guest runs and the saved state is spent (dropped); failed → QEMU
 *   quits, the saved state is kept for another vm.restore.
 * - receive: completed → the guest runs here; failed → QEMU quits (the sender runs it on).
 * - restore/receive whose stream never started (kvmux died between launching QEMU with
 *   `-incoming defer` and `migrate-incoming`): the stream is started again ('listen'), then followed.
 */
export type AdoptStep = 'follow' | 'finish' | 'undo' | 'listen';

const RUNNING_STREAM = new Set([
  'setup',
  'active',
  'device',
  'pre-switchover',
  'postcopy-active',
  'wait-unplug',
]);

export function adoptStep(job: JobRecord['kind'], migrate: string | undefined, run: string): AdoptStep {
  if (job === 'restore' || job === 'receive') {
    // an incoming QEMU shows no migration status before migrate-incoming (and while it listens)
    if (run === 'inmigrate') return migrate === undefined || migrate === 'none' ? 'listen' : 'follow';
    return migrate === 'failed' || migrate === 'cancelled' ? 'undo' : 'finish';
  }
  if (migrate && RUNNING_STREAM.has(migrate)) return 'follow';
  return migrate === 'completed' ? 'finish' : 'undo';
}

/**
 * migrate-incoming again; QEMU refuses a second one when the first got through: then it runs. A
 * keyed receive listens only with its key: a key that is gone (the run dir was lost) fails it
 * rather than taking whoever connects.
 */
async function listenAgain(qmp: QmpClient, rec: JobRecord, keyDir: string): Promise<void> {
  const uri = rec.kind === 'restore' ? restoreUri(rec.target) : rec.target;
  if (rec.kind === 'restore' && !existsSync(rec.target)) throw new Error(`${rec.target} is gone`);
  if (rec.kind === 'receive') await setReturnPath(qmp).catch(() => {}); // refused once the stream began
  if (rec.keyed) {
    if (!existsSync(join(keyDir, 'keys.psk')))
      throw new Error('the stream key is gone: not listening without it');
    await useStreamKey(qmp, keyDir, 'server', { fresh: false });
  }
  await qmp.execute('migrate-incoming', { uri }).catch((err: unknown) => {
    if (!/already been started/i.test(errText(err))) throw err;
  });
}

async function quit(host: JobHost, qmp: QmpClient): Promise<void> {
  const handle = host.handle();
  await qmp.execute('quit').catch(() => {});
  if (handle) await handle.exited;
}

/** Bring an adopted VM's recorded job to its end; resolves with the final view. */
export async function adoptJob(
  host: JobHost,
  qmp: QmpClient,
  rec: JobRecord,
  info: SaveInfo,
): Promise<JobView> {
  const q = await qmp.execute<QueryMigrate>('query-migrate');
  const { status: run } = await qmp.execute<{ status: string }>('query-status');
  let step = adoptStep(rec.kind, q.status, run);
  let view: JobView = {
    ...newJob(rec.kind, rec.target, new Date(rec.startedAt), rec.keyed === true),
    qemuStatus: q.status ?? run,
  };
  host.setJob(view);
  const incoming = rec.kind === 'restore' || rec.kind === 'receive';
  try {
    if (step === 'listen') {
      await listenAgain(qmp, rec, host.keyDir);
      step = 'follow';
    }
    if (step === 'follow') {
      view = await (incoming ? watchIncoming : watchStream)(qmp, view, { onProgress: (v) => host.setJob(v) });
      step = view.status === 'completed' ? 'finish' : 'undo';
    }
  } catch (err) {
    view = { ...view, status: 'failed', error: errText(err) };
    step = 'undo';
  }
  if (step === 'finish') view = { ...view, status: 'completed', percent: 100, qemuStatus: 'completed' };
  else
    view = {
      ...view,
      status: 'failed',
      error: view.error ?? `${rec.kind} did not complete (QEMU: ${q.status ?? run})`,
    };
  // the record keeps the job until its end is carried out: a kvmux dying here redoes the steps;
  // it shows as still active until then (a "completed" restore whose saved state is not yet spent,
  // or a "failed" migration whose guest is not yet resumed, would be seen half-done)
  host.setJob({ ...view, status: 'active' });
  if (rec.kind === 'save') {
    if (step === 'finish') {
      // kvmux may have died after the commit and before the quit
      if (!rec.partial || existsSync(rec.partial))
        await commitSaved(host.stateDir, {
          vm: host.name,
          memoryMiB: info.memoryMiB,
          disks: diskStamps(info.disks),
        });
      await quit(host, qmp);
    } else {
      if (rec.partial) rmSync(rec.partial, { force: true });
      await resumeAfterFailure(qmp);
    }
  } else if (rec.kind === 'migrate') {
    await (step === 'finish' ? quit(host, qmp) : resumeAfterFailure(qmp));
  } else if (step === 'finish') {
    await resumeGuest(qmp);
    // the guest runs on from the stream and writes its disk: the saved state is spent
    if (rec.kind === 'restore') dropSaved(host.stateDir, host.name);
  } else await quit(host, qmp);
  removeStreamKey(host.keyDir);
  host.setJob(view, null);
  return view;
}
