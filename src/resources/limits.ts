import type { Resources } from '../config/schema.js';

/**
 * Resources → the cgroup files to write, pure. Every knob is always written (an absent one as
 * "no limit"), so a live change that drops a limit really drops it. v2 (unified hierarchy) is the
 * design; v1 is the fallback for hybrid hosts whose controllers are still bound to v1 mounts.
 */
export type CgroupMode = 'v2' | 'v1';

export interface CgroupWrite {
  /** v1: the controller's hierarchy (cpu, cpuset, memory, blkio); v2: null (one hierarchy). */
  readonly controller: string | null;
  readonly file: string;
  readonly value: string;
  /** Some kernels lack the file (blkio.weight without BFQ, memsw without swap accounting). */
  readonly optional?: boolean;
}

/** What "no cpuset limit" means on this host: the parent's CPUs and memory nodes. */
export interface CpusetDefaults {
  readonly cpus: string;
  readonly mems: string;
}

export const CFS_PERIOD_US = 100_000;

const MiB = 1024 * 1024;

/** cpuQuota in CPUs → microseconds per period (at least the kernel's 1 ms minimum). */
export function quotaUs(cpuQuota: number, periodUs = CFS_PERIOD_US): number {
  return Math.max(1000, Math.round(cpuQuota * periodUs));
}

/** v2's io.weight (1..10000, default 100) on v1's blkio.weight scale (10..1000, default 500). */
export function blkioWeight(ioWeight: number): number {
  return Math.min(1000, Math.max(10, Math.round(ioWeight * 5)));
}

function v2Writes(r: Resources, d: CpusetDefaults): CgroupWrite[] {
  const mem = r.memoryMaxMiB === undefined ? 'max' : String(r.memoryMaxMiB * MiB);
  return [
    {
      controller: null,
      file: 'cpu.max',
      value: r.cpuQuota === undefined ? `max ${CFS_PERIOD_US}` : `${quotaUs(r.cpuQuota)} ${CFS_PERIOD_US}`,
    },
    { controller: null, file: 'cpuset.cpus', value: r.cpuset ?? d.cpus },
    { controller: null, file: 'memory.max', value: mem },
    // the ceiling must hold: no escape into swap
    {
      controller: null,
      file: 'memory.swap.max',
      value: r.memoryMaxMiB === undefined ? 'max' : '0',
      optional: true,
    },
    { controller: null, file: 'io.weight', value: `default ${r.ioWeight ?? 100}`, optional: true },
  ];
}

function v1Writes(r: Resources, d: CpusetDefaults): CgroupWrite[] {
  const mem = r.memoryMaxMiB === undefined ? '-1' : String(r.memoryMaxMiB * MiB);
  const memWrites: CgroupWrite[] = [
    { controller: 'memory', file: 'memory.limit_in_bytes', value: mem },
    { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: mem, optional: true },
  ];
  return [
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: String(CFS_PERIOD_US) },
    {
      controller: 'cpu',
      file: 'cpu.cfs_quota_us',
      value: r.cpuQuota === undefined ? '-1' : String(quotaUs(r.cpuQuota)),
    },
    // v1 cpusets start empty: both must be set before a task can join
    { controller: 'cpuset', file: 'cpuset.mems', value: d.mems },
    { controller: 'cpuset', file: 'cpuset.cpus', value: r.cpuset ?? d.cpus },
    // memsw must stay >= limit: lowering writes limit first, raising writes memsw first
    ...(r.memoryMaxMiB === undefined ? memWrites.reverse() : memWrites),
    {
      controller: 'blkio',
      file: 'blkio.weight',
      value: String(blkioWeight(r.ioWeight ?? 100)),
      optional: true,
    },
  ];
}

export function cgroupWrites(mode: CgroupMode, r: Resources, d: CpusetDefaults): CgroupWrite[] {
  return mode === 'v2' ? v2Writes(r, d) : v1Writes(r, d);
}

/** v1 hierarchies a VM joins (one directory each); v2 has one. */
export const V1_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'blkio', 'freezer'] as const;

/** Controllers kvmux enables for its subtree on v2. */
export const V2_CONTROLLERS = ['cpu', 'cpuset', 'memory', 'io'] as const;

/** Read back from the cgroup files: what the kernel actually enforces (for vm.resources). */
export interface AppliedResources {
  readonly cpuQuota: number | null;
  readonly cpuset: string | null;
  readonly memoryMaxMiB: number | null;
  readonly ioWeight: number | null;
}

/** Parse the values `readCgroup` found back into Resources terms; unlimited reads as null. */
export function parseApplied(mode: CgroupMode, files: Readonly<Record<string, string>>): AppliedResources {
  const num = (s: string | undefined) => (s === undefined || s === '' ? Number.NaN : Number(s));
  const orNull = (n: number) => (Number.isFinite(n) ? n : null);
  if (mode === 'v2') {
    const [quota, period] = (files['cpu.max'] ?? '').split(' ');
    const mem = num(files['memory.max']);
    const io = /default (\d+)/.exec(files['io.weight'] ?? '');
    return {
      cpuQuota: quota === 'max' ? null : orNull(num(quota) / num(period)),
      cpuset: files['cpuset.cpus'] || null,
      memoryMaxMiB: orNull(Math.floor(mem / MiB)),
      ioWeight: io ? Number(io[1]) : null,
    };
  }
  const quota = num(files['cpu.cfs_quota_us']);
  const mem = num(files['memory.limit_in_bytes']);
  const weight = num(files['blkio.weight']);
  return {
    cpuQuota: quota > 0 ? quota / num(files['cpu.cfs_period_us']) : null,
    cpuset: files['cpuset.cpus'] || null,
    // the kernel reports "unlimited" as a page-rounded LONG_MAX
    memoryMaxMiB: mem > 0 && mem < 2 ** 62 ? Math.floor(mem / MiB) : null,
    ioWeight: Number.isFinite(weight) ? Math.round(weight / 5) : null,
  };
}
