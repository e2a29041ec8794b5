import { z } from 'zod';

/**
 * Long VM jobs driven by QEMU's own migration stream: save (to a compressed file), restore, migrate
 * (to another kvmux) and receive. Pure: the shapes, the URI rules and query-migrate → progress.
 */
export type JobKind = 'save' | 'restore' | 'migrate' | 'receive';
export type JobStatus = 'active' | 'completed' | 'failed';

/** What vm.list shows in `job` and the admin screen draws as a progress bar. */
export interface JobView {
  readonly kind: JobKind;
  readonly status: JobStatus;
  /** QEMU's own word: setup, active, device, completed, failed … (or listening on a receiver). */
  readonly qemuStatus: string;
  readonly percent: number | null;
  readonly transferredBytes: number;
  readonly totalBytes: number | null;
  /** Time the guest was paused at the switch-over (migrate, ms), from QEMU. */
  readonly downtimeMs: number | null;
  readonly totalMs: number | null;
  readonly startedAt: string;
  readonly error: string | null;
  /** The file (save/restore) or channel URI (migrate/receive). */
  readonly target: string;
  /** migrate/receive: the stream is authenticated and encrypted with the owners' key (TLS-PSK). */
  readonly keyed: boolean;
}

/** Kept in the VM record while a job runs, so a restarted kvmux can finish or undo it. */
export interface JobRecord {
  readonly kind: JobKind;
  readonly target: string;
  readonly startedAt: string;
  /** save: the partial stream file that becomes `target` on completion. */
  readonly partial?: string;
  /**
   * receive: only a stream with the owners' key (kept in the VM's run dir until the end) may load;
   * migrate: the stream went out keyed (what vm.list says of an adopted job).
   */
  readonly keyed?: boolean;
}

/**
 * A migration channel the owner chooses: tcp:HOST:PORT or unix:/abs/path. No exec: here, because
 * that would run a shell command on the host.
 */
export const channelSchema = z
  .string()
  .max(4096)
  .regex(
    /^(tcp:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}|unix:\/[^\0\s,]*)$/,
    'must be tcp:HOST:PORT or unix:/absolute/path',
  );

/** The part of QMP query-migrate kvmux reads. */
export interface QueryMigrate {
  readonly status?: string;
  readonly 'total-time'?: number;
  readonly downtime?: number;
  readonly 'error-desc'?: string;
  readonly ram?: { transferred?: number; total?: number; remaining?: number };
}

const DONE: Readonly<Record<string, JobStatus>> = {
  completed: 'completed',
  failed: 'failed',
  cancelled: 'failed',
};

export function jobStatusOf(qemuStatus: string): JobStatus {
  return DONE[qemuStatus] ?? 'active';
}

/** The next view of a job from one query-migrate answer. */
export function progressOf(prev: JobView, q: QueryMigrate): JobView {
  const qemuStatus = q.status ?? prev.qemuStatus;
  const status = jobStatusOf(qemuStatus);
  const total = q.ram?.total ?? prev.totalBytes;
  const transferred = q.ram?.transferred ?? prev.transferredBytes;
  const remaining = q.ram?.remaining;
  let percent: number | null = prev.percent;
  if (status === 'completed') percent = 100;
  else if (total && remaining !== undefined) percent = Math.round((1000 * (total - remaining)) / total) / 10;
  return {
    ...prev,
    qemuStatus,
    status,
    percent,
    transferredBytes: transferred,
    totalBytes: total ?? null,
    downtimeMs: q.downtime ?? prev.downtimeMs,
    totalMs: q['total-time'] ?? prev.totalMs,
    error: status === 'failed' ? (q['error-desc'] ?? `migration ${qemuStatus}`) : prev.error,
  };
}

export function newJob(kind: JobKind, target: string, now: Date, keyed = false): JobView {
  return {
    kind,
    status: 'active',
    qemuStatus: kind === 'receive' ? 'listening' : 'setup',
    percent: null,
    transferredBytes: 0,
    totalBytes: null,
    downtimeMs: null,
    totalMs: null,
    startedAt: now.toISOString(),
    error: null,
    target,
    keyed,
  };
}

/** A job that ended with an error of kvmux's own (not QEMU's). */
export function failedJob(job: JobView, error: string): JobView {
  return { ...job, status: 'failed', error };
}

/** The one-line text of a job for the admin screen: `migrate 42% active`, `save done`. */
export function jobText(job: JobView | null): string {
  if (!job) return '';
  if (job.status === 'completed') return `${job.kind} done`;
  if (job.status === 'failed') return `${job.kind} failed`;
  return `${job.kind} ${job.percent === null ? '…' : `${Math.floor(job.percent)}%`} ${job.qemuStatus}`;
}
