import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { isAlive } from '../util/proc.js';

/**
 * Display numbers. With -displayfd the X server writes no /tmp/.X{N}-lock: its claim is the
 * listening socket (abstract @/tmp/.X11-unix/X{N} plus the path one). So a number is taken when
 * /proc/net/unix shows a listener for it, when a lock file names a live process (servers started
 * the classic way), or while a kvmux start holds its claim file. The claim (O_EXCL) matters: an X
 * server that loses the race aborts and unlinks the *winner's* socket path, leaving it reachable
 * only through the abstract socket.
 */
const reserved = new Set<number>();

export function lockPath(n: number): string {
  return `/tmp/.X${n}-lock`;
}

export function socketPath(n: number): string {
  return `/tmp/.X11-unix/X${n}`;
}

function claimPath(n: number): string {
  return `/tmp/.kvmux-X${n}.claim`;
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

/** Display numbers with a listening X socket (path or abstract), from /proc/net/unix. */
export function listeningDisplays(): Set<number> {
  const out = new Set<number>();
  let text = '';
  try {
    text = readFileSync('/proc/net/unix', 'latin1');
  } catch {
    return out;
  }
  for (const m of text.matchAll(/ 00010000 \S+ 01 +\d+ @?\/tmp\/\.X11-unix\/X(\d+)$/gm))
    out.add(Number(m[1]));
  return out;
}

export function displayInUse(n: number, listening: ReadonlySet<number> = listeningDisplays()): boolean {
  if (reserved.has(n) || listening.has(n)) return true;
  const pid = lockPid(n);
  if (pid !== null && isAlive(pid)) return true;
  return claimHolder(n) !== null;
}

function claimHolder(n: number): number | null {
  try {
    const pid = Number.parseInt(readFileSync(claimPath(n), 'latin1'), 10);
    return isAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Take the cross-process claim on `n`; false when another live kvmux holds it. */
function claim(n: number): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(claimPath(n), 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch {
      if (claimHolder(n) !== null) return false;
      unlinkQuiet(claimPath(n)); // stale: its kvmux died mid-start
    }
  }
  return false;
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Reserve the first free number in [first, last]; null when all are taken. */
export function reserveDisplay(
  first: number,
  last: number,
  skip: ReadonlySet<number> = new Set(),
): number | null {
  const listening = listeningDisplays();
  for (let n = first; n <= last; n++) {
    if (skip.has(n) || displayInUse(n, listening) || !claim(n)) continue;
    reserved.add(n);
    return n;
  }
  return null;
}

/** Reserve an explicit number (the caller knows it is meant for this server). */
export function reserveExplicit(n: number): boolean {
  if (displayInUse(n) || !claim(n)) return false;
  reserved.add(n);
  return true;
}

/** Adopted servers: already listening, just remember the number as ours. */
export function markReserved(n: number): void {
  reserved.add(n);
}

/** The server is listening (or failed): its socket is the claim from now on. */
export function dropClaim(n: number): void {
  if (claimHolder(n) === process.pid) unlinkQuiet(claimPath(n));
}

export function releaseDisplay(n: number): void {
  reserved.delete(n);
  dropClaim(n);
}

/** Remove a socket path left behind by a server that is gone (Xvfb leaves it on exit). */
export function removeStaleSocket(n: number): void {
  if (listeningDisplays().has(n) || !existsSync(socketPath(n))) return;
  unlinkQuiet(socketPath(n));
}
