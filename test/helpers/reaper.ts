import { readdirSync } from 'node:fs';
import koffi from 'koffi';
import { readProcStat } from '../../src/util/proc.js';

const libc = koffi.load('libc.so.6');
const prctl = libc.func('prctl', 'int', [
  'int',
  'unsigned long',
  'unsigned long',
  'unsigned long',
  'unsigned long',
]);
const waitpid = libc.func('waitpid', 'int', ['int', koffi.out(koffi.pointer('int')), 'int']);
const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;

/**
 * Tests that crash kvmux orphan its X servers and VMs; pid 1 here reaps nothing, so this test
 * process adopts orphans (child subreaper) and reaps them once stopped: no zombies left behind.
 */
export function adoptOrphans(): void {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0)
    throw new Error('prctl(PR_SET_CHILD_SUBREAPER) failed');
}

/** Reap one exited child (a zombie) now; true when it was reaped. */
export function reap(pid: number): boolean {
  return waitpid(pid, [0], WNOHANG) === pid;
}

/** Reap every zombie child of this process (call after kvmux has stopped everything). */
export function reapOrphans(): number[] {
  const reaped: number[] = [];
  for (const entry of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const st = readProcStat(Number(entry));
    if (st && st.ppid === process.pid && st.state === 'Z' && reap(st.pid)) {
      reaped.push(st.pid);
    }
  }
  return reaped;
}
