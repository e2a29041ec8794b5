import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { sleep } from '../../src/demo/fifo-keys.js';
import type { Kvmux } from '../../src/demo/kvmux-process.js';
import { readProcStat } from '../../src/util/proc.js';

export { isAlive, type Kvmux, type KvmuxSpec, startKvmux } from '../../src/demo/kvmux-process.js';
export { sleep };

/** A command VM that logs every key it receives: xev, line-buffered so the test sees each event. */
export function xevLogger(): string[] {
  return ['stdbuf', '-oL', 'xev', '-event', 'keyboard'];
}

/** Linux key codes (X keycode - 8) of the KeyPress/KeyRelease lines xev printed into a VM's log. */
export function xevKeys(k: Kvmux, vm: string): string[] {
  const path = join(k.dir, 'run', 'vm', vm, 'command.log');
  if (!existsSync(path)) return [];
  const out: string[] = [];
  let kind = '';
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const head = /^(KeyPress|KeyRelease) event/.exec(line);
    if (head) kind = head[1] === 'KeyPress' ? 'press' : 'release';
    const code = /keycode (\d+)/.exec(line);
    if (code && kind) {
      out.push(`${kind} ${Number(code[1]) - 8}`);
      kind = '';
    }
  }
  return out;
}

/** Poll until `fn` holds (xev writes asynchronously). */
export async function eventually(fn: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

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

/** Reap every zombie child of this process (call after kvmux has stopped everything). */
export function reapOrphans(): number[] {
  const reaped: number[] = [];
  for (const entry of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const st = readProcStat(Number(entry));
    if (st && st.ppid === process.pid && st.state === 'Z' && waitpid(st.pid, [0], WNOHANG) === st.pid) {
      reaped.push(st.pid);
    }
  }
  return reaped;
}
