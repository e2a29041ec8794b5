import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../src/demo/fifo-keys.js';
import type { Kvmux } from '../../src/demo/kvmux-process.js';

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

export { adoptOrphans, reapOrphans } from '../helpers/reaper.js';
