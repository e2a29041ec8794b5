import { setTimeout as sleep } from 'node:timers/promises';
import type { QmpClient } from '../qmp.js';
import { type JobView, progressOf, type QueryMigrate } from './job.js';

/**
 * QEMU's migration stream over QMP: send (migrate), receive (migrate-incoming) and watch
 * (query-migrate until completed or failed). The stream itself is QEMU's; kvmux only steers it.
 */
export interface StreamOptions {
  /** max-bandwidth in MiB/s; absent = effectively unlimited (a local file or a LAN). */
  readonly bandwidthMiB?: number | undefined;
  readonly pollMs?: number;
  readonly onProgress?: (job: JobView) => void;
  /**
   * A live migration to another host: the receiver's load result comes back (setReturnPath). Off
   * for anything else (a file has no way back), also after an earlier migration of this QEMU.
   */
  readonly returnPath?: boolean;
}

const UNLIMITED_MIB = 1 << 20;

export async function setBandwidth(qmp: QmpClient, bandwidthMiB: number | undefined): Promise<void> {
  const bytes = (bandwidthMiB ?? UNLIMITED_MIB) * 1024 * 1024;
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': bytes });
}

/**
 * QEMU's return path, for a live migration between two hosts (both ends set it before the stream):
 * without it the sender calls the stream completed once it has sent the last byte, and quits, even
 * when the receiver then fails to load it; the guest would be lost. With it, the receiver's load
 * result comes back and a failed load fails the sender's job, so the guest runs on there. Not for
 * a save to a file (exec:), which has no way back.
 */
export async function setReturnPath(qmp: QmpClient, on = true): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'return-path', state: on }],
  });
}

/** Poll query-migrate until the stream is done; the final view (completed or failed). */
export async function watchStream(qmp: QmpClient, job: JobView, opts: StreamOptions = {}): Promise<JobView> {
  let view = job;
  for (;;) {
    const q = await qmp.execute<QueryMigrate>('query-migrate');
    view = progressOf(view, q);
    opts.onProgress?.(view);
    if (view.status !== 'active') return view;
    await sleep(opts.pollMs ?? 50);
  }
}

/** Start sending the VM's state to `uri` and follow it to the end. */
export async function sendStream(
  qmp: QmpClient,
  uri: string,
  job: JobView,
  opts: StreamOptions = {},
): Promise<JobView> {
  await setBandwidth(qmp, opts.bandwidthMiB);
  await setReturnPath(qmp, opts.returnPath === true);
  await qmp.execute('migrate', { uri });
  return watchStream(qmp, job, opts);
}

/**
 * The receiving side: QEMU's run state leaves `inmigrate` when the stream ended (a failed load
 * makes QEMU 7.2 exit, which closes QMP and throws here).
 */
export async function watchIncoming(
  qmp: QmpClient,
  job: JobView,
  opts: StreamOptions = {},
): Promise<JobView> {
  let view = job;
  for (;;) {
    const { status } = await qmp.execute<{ status: string }>('query-status');
    const q = await qmp.execute<QueryMigrate>('query-migrate');
    view = progressOf(view, q);
    if (status !== 'inmigrate' && view.status === 'active')
      view = { ...view, status: 'completed', qemuStatus: 'completed', percent: 100 };
    opts.onProgress?.(view);
    if (view.status !== 'active') return view;
    await sleep(opts.pollMs ?? 50);
  }
}

/** A QEMU started with `-incoming defer`: take the stream from `uri` (listen, or read a file). */
export async function receiveStream(qmp: QmpClient, uri: string): Promise<void> {
  await qmp.execute('migrate-incoming', { uri });
}

/** After an incoming stream: run the guest unless it already runs (a saved VM was paused). */
export async function resumeGuest(qmp: QmpClient): Promise<string> {
  const { status } = await qmp.execute<{ status: string }>('query-status');
  if (status === 'paused' || status === 'postmigrate' || status === 'prelaunch') await qmp.execute('cont');
  return (await qmp.execute<{ status: string }>('query-status')).status;
}

/** A sender whose stream failed stays paused: let the guest go on. */
export async function resumeAfterFailure(qmp: QmpClient): Promise<void> {
  await resumeGuest(qmp).catch(() => {});
}
