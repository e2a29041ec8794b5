import { readdirSync, readFileSync } from 'node:fs';

/** What the benches read of other processes, from /proc. */
export const ticks = Number(process.env['CLK_TCK'] ?? 100);

/** The fields of /proc/PID/stat text after the command name: field N is at index N - 3. */
const statFields = (stat: string) => stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
const statOf = (pid: number) => statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));

export function procCpuTicks(pid: number): number {
  const f = statOf(pid);
  return Number(f[11]) + Number(f[12]);
}

/** Scheduling of a process's main thread, from /proc (policy 2 is SCHED_RR; cpus: its CPU affinity). */
export function schedOf(pid: number): { policy: string; rtPriority: number; nice: number; cpus: string } {
  const f = statOf(pid);
  const policy = ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR'][Number(f[38])] ?? `policy ${f[38]}`;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const cpus = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? '?';
  return { policy, rtPriority: Number(f[37]), nice: Number(f[16]), cpus };
}

/** The CPU a process's main thread last ran on (field 39 of /proc/PID/stat text). */
export const cpuOfStat = (stat: string) => Number(statFields(stat)[36]);

export const lastCpu = (pid: number) => Number(statOf(pid)[36]);

/** CPU ticks of each process (all its threads), for the share each took of a timed span. */
export const cpuOf = (pids: number[]) => pids.map((p) => procCpuTicks(p));

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

/** The pid of the X server for `display` (kvmux starts `Xvfb :N …` or `Xorg :N …`). */
export function xServerPid(display: string): number {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)X(vfb|org)$/.test(argv[0] ?? '') && argv[1] === display) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no X server process for ${display}`);
}
