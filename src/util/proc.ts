import { readFileSync } from 'node:fs';

/**
 * Process liveness on machines where pid 1 does not reap orphans: a zombie (state Z) or a dead
 * process (X) counts as gone, and a recorded start time guards against pid reuse.
 */
export interface ProcStat {
  pid: number;
  /** One-letter state from /proc/PID/stat: R S D Z T X ... */
  state: string;
  /** Start time in clock ticks since boot (field 22); stable identity together with the pid. */
  startTime: number;
  ppid: number;
  pgrp: number;
  session: number;
  /** CPU time in clock ticks (fields 14 and 15), user and system. */
  utime: number;
  stime: number;
}

/** Parse /proc/PID/stat text; the comm field may contain spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number.parseInt(text, 10);
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3]
  const num = (field: number) => Number(rest[field - 3]);
  if (rest.length < 20 || !Number.isFinite(pid)) return null;
  return {
    pid,
    state: rest[0] ?? '?',
    ppid: num(4),
    pgrp: num(5),
    session: num(6),
    utime: num(14),
    stime: num(15),
    startTime: num(22),
  };
}

/** The stat of a process, or null when there is no such process. */
export function readProcStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** The stat of `pid` while it runs (not a zombie) and, if given, started at `startTime` ticks. */
function liveStat(pid: number, startTime?: number): ProcStat | null {
  const st = readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X' || st.state === 'x') return null;
  return startTime === undefined || st.startTime === startTime ? st : null;
}

/** True when `pid` runs (not a zombie) and, if given, started at `startTime` ticks. */
export function isAlive(pid: number, startTime?: number): boolean {
  return liveStat(pid, startTime) !== null;
}

/** Resolves once `pid` is gone (or a zombie); polls /proc because it may not be our child. */
export function waitGone(
  pid: number,
  startTime?: number,
  pollMs = 50,
  timeoutMs = Infinity,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const tick = () => {
      if (!isAlive(pid, startTime)) return resolve(true);
      if (Date.now() >= deadline) return resolve(false);
      setTimeout(tick, pollMs);
    };
    tick();
  });
}

/** Send a signal, ignoring ESRCH (the process is already gone). */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Calls `onGone` once `pid` is gone; the poll never keeps the process alive. Returns a canceller. */
export function watchGone(
  pid: number,
  startTime: number | undefined,
  onGone: () => void,
  pollMs = 250,
): () => void {
  const timer = setInterval(() => {
    if (isAlive(pid, startTime)) return;
    clearInterval(timer);
    onGone();
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * CPU time (user + system, every thread) `pid` has used, in ms; null when it is gone (a zombie
 * too) or, `startTime` given, its pid belongs to another process by now. One read of /proc.
 */
export function processCpuMs(pid: number, startTime?: number): number | null {
  const st = liveStat(pid, startTime);
  // utime and stime, in clock ticks (USER_HZ, 100 on Linux)
  return st ? (st.utime + st.stime) * 10 : null;
}
