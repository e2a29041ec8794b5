import { existsSync, rmSync } from 'node:fs';
import { errText } from '../../util/errors.js';
import type { QmpClient } from '../qmp.js';
import { type JobRecord, type JobView, newJob, type QueryMigrate } from './job.js';
import { resumeAfterFailure, resumeGuest, watchIncoming, watchStream } from './qemu-stream.js';
import { commitSaved, diskStamps } from './saved-state.js';
import type { JobHost, SaveInfo } from './vm-jobs.js';

/**
 * A kvmux that died mid-job left QEMU going on alone: the record says which job it was, QEMU says
 * how far it got. Pure decision first, then the steps: keep following a stream still running,
 * finish one that completed (commit the save, quit the sender), undo one that failed.
 */
export type AdoptStep = 'follow' | 'finish' | 'undo';

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
    if (run === 'inmigrate') return 'follow';
    return migrate === 'failed' ? 'undo' : 'finish';
  }
  if (migrate && RUNNING_STREAM.has(migrate)) return 'follow';
  return migrate === 'completed' ? 'finish' : 'undo';
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
    ...newJob(rec.kind, rec.target, new Date(rec.startedAt)),
    qemuStatus: q.status ?? run,
  };
  host.setJob(view);
  try {
    if (step === 'follow') {
      const incoming = rec.kind === 'restore' || rec.kind === 'receive';
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
  host.setJob(view, null);
  if (rec.kind === 'save') {
    if (step === 'finish') {
      // kvmux may have died after the commit and before the quit
      if (!rec.partial || existsSync(rec.partial))
        commitSaved(host.stateDir, {
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
  } else if (step === 'finish') await resumeGuest(qmp);
  return view;
}
