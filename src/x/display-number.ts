import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { isAlive } from '../util/proc.js';

/**
 * Display numbers: the lock file is the claim. A number is taken while /tmp/.X{N}-lock names a live
 * process (or cannot be read). A socket without a lock is a leftover (Xvfb leaves its socket behind
 * on exit; the next server on that number replaces it). Numbers handed out by this process and not
 * yet released are also taken, so concurrent starts never collide.
 */
const reserved = new Set<number>();

export function lockPath(n: number): string {
  return `/tmp/.X${n}-lock`;
}

export function socketPath(n: number): string {
  return `/tmp/.X11-unix/X${n}`;
}

/** Pid written in an X lock file (10 chars, space padded), or null. */
export function lockPid(n: number): number | null {
  try {
    const pid = Number.parseInt(readFileSync(lockPath(n), 'latin1').trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export function displayInUse(n: number): boolean {
  if (reserved.has(n)) return true;
  const pid = lockPid(n);
  if (pid !== null) return isAlive(pid);
  return existsSync(lockPath(n));
}

/** Reserve the first free number in [first, last]; null when all are taken. */
export function reserveDisplay(first: number, last: number): number | null {
  for (let n = first; n <= last; n++) {
    if (displayInUse(n)) continue;
    reserved.add(n);
    return n;
  }
  return null;
}

/** Reserve an explicit number (the caller knows it is meant for this server). */
export function reserveExplicit(n: number): boolean {
  if (displayInUse(n)) return false;
  reserved.add(n);
  return true;
}

export function releaseDisplay(n: number): void {
  reserved.delete(n);
}

export function parseDisplayNumber(display: string): number {
  const m = /^:(\d+)(?:\.\d+)?$/.exec(display);
  if (!m) throw new Error(`not a local display name: '${display}'`);
  return Number(m[1]);
}

/** Remove a socket left behind by a server that is gone (no live lock). */
export function removeStaleSocket(n: number): void {
  if (displayInUse(n)) return;
  try {
    unlinkSync(socketPath(n));
  } catch {
    // already gone
  }
}
