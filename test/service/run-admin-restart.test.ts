import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/demo/fifo-keys.js';
import { isAlive, type Kvmux, startKvmux } from '../../src/demo/kvmux-process.js';
import { MIN_SLICE_NS, sliceOf } from '../../src/util/slice.js';
import { connectDisplay } from '../../src/x/connection.js';
import { distinctColours, grab } from '../../src/x/screenshot.js';
import { kernelHasSlices } from '../helpers/kernel.js';

/**
 * The admin screen always comes back: `kvmux run` (built CLI, Xvfb from :150) with only the
 * admin display; Ctrl-C typed through the FIFO keyboard quits `kvmux admin` (xterm then exits 0),
 * and a new xterm must take its place.
 */
let k: Kvmux;
/** The admin screen on screen asks for the short scheduler slice like a VM (root, Linux 6.12+). */
const slices = process.getuid?.() === 0 && kernelHasSlices();
if (!slices) console.warn('SKIP admin screen slice check: needs root and Linux 6.12 or later');
const shortened = (pid: number) => !slices || sliceOf(pid) === MIN_SLICE_NS;

async function until(fn: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}\n${k.log().slice(-3000)}`);
    await sleep(200);
  }
}

/** The admin xterm's pid from the admin screen's own VM record (null while none runs). */
function adminPid(): number | null {
  const path = join(k.dir, 'state', 'admin-app', 'vms', 'admin.json');
  if (!existsSync(path)) return null;
  const pid = (JSON.parse(readFileSync(path, 'utf8')) as { pid: number }).pid;
  return isAlive(pid) ? pid : null;
}

async function tuiPainted(): Promise<boolean> {
  const admin = (await k.call<Array<{ name: string; display: string }>>('display.list')).find(
    (d) => d.name === 'admin',
  )?.display;
  if (!admin) return false;
  const conn = await connectDisplay(admin);
  try {
    return distinctColours(await grab(conn), 4) >= 3;
  } finally {
    await conn.close();
  }
}

beforeAll(async () => {
  k = await startKvmux({ firstDisplay: 150, admin: true, password: 'hunter2', vms: [] });
}, 90_000);

afterAll(async () => {
  await k?.stop();
});

describe('admin screen under kvmux run', () => {
  it('comes back after someone quits it with Ctrl-C', async () => {
    await k.call('display.switch', { name: 'admin' });
    await until(() => adminPid() !== null, 'the admin xterm');
    const first = adminPid()!;
    await until(() => shortened(first), 'the admin xterm on screen with the short slice');
    await until(tuiPainted, 'the admin TUI');
    await sleep(800);
    await k.kb.chord(['leftctrl'], 'c');
    await until(() => !isAlive(first), 'the first admin xterm to exit');
    await until(() => adminPid() !== null, 'a new admin xterm');
    expect(adminPid()).not.toBe(first);
    await until(() => shortened(adminPid()!), 'the new admin xterm with the short slice');
    await until(tuiPainted, 'the admin TUI again');
    expect(k.log()).toContain('VM process exited');
  }, 60_000);
});
