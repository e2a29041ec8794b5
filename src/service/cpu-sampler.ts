import { readProcStat } from '../util/proc.js';

/** Linux USER_HZ: /proc/PID/stat counts CPU time in these ticks on every mainstream architecture. */
const TICKS_PER_SECOND = 100;

/**
 * CPU use of VM processes between two looks (the admin screen polls `vm.list`): percent of one
 * core since the previous sample of the same pid; null on the first look or for a gone process.
 */
export class CpuSampler {
  private readonly last = new Map<number, { ticks: number; atMs: number }>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  percent(pid: number | null): number | null {
    if (pid === null) return null;
    const st = readProcStat(pid);
    if (!st) {
      this.last.delete(pid);
      return null;
    }
    const ticks = st.utime + st.stime;
    const atMs = this.now();
    const prev = this.last.get(pid);
    this.last.set(pid, { ticks, atMs });
    if (!prev || atMs - prev.atMs < 50) return null;
    const seconds = (atMs - prev.atMs) / 1000;
    return Number((((ticks - prev.ticks) / TICKS_PER_SECOND / seconds) * 100).toFixed(1));
  }

  /** Forget pids no longer listed (their numbers may be reused). */
  retain(pids: Iterable<number>): void {
    const keep = new Set(pids);
    for (const pid of this.last.keys()) if (!keep.has(pid)) this.last.delete(pid);
  }
}
