import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/demo/fifo-keys.js';
import { isAlive, type Kvmux, startKvmux } from '../../src/demo/kvmux-process.js';
import { connectDisplay } from '../../src/x/connection.js';
import { distinctColours, grab } from '../../src/x/screenshot.js';

/**
 * The menu after the X server under it died: `kvmux run` (built CLI, Xvfb from :150). The X
 * server is killed, comes back, and the menu is opened on it; kvmux must keep running (an overlay
 * that cannot be made is logged, never an unhandled rejection that ends the process).
 */
let k: Kvmux;

async function until(fn: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}\n${k.log().slice(-3000)}`);
    await sleep(100);
  }
}

const display = async () =>
  (await k.call<Array<{ name: string; display: string }>>('display.list')).find((d) => d.name === 'one')
    ?.display ?? '';
const menuOpen = async () => (await k.call<{ open: boolean }>('menu.state')).open;

beforeAll(async () => {
  k = await startKvmux({
    firstDisplay: 150,
    vms: [{ name: 'one', backend: 'command', command: ['sleep', '600'] }],
  });
}, 90_000);

afterAll(async () => {
  await k?.stop();
});

describe('menu after its X server died', () => {
  it('opens on the restarted X server, and kvmux survives the menu being opened while it is gone', async () => {
    await until(async () => (await display()) !== '', 'display up');
    const xPid = (
      JSON.parse(readFileSync(join(k.dir, 'state', 'displays', 'one.json'), 'utf8')) as { pid: number }
    ).pid;
    process.kill(xPid, 'SIGKILL');
    // while it is gone: open and close the menu a few times
    for (let i = 0; i < 3; i++) {
      await k.kb.doubleTap();
      await sleep(150);
      await k.kb.tap('esc');
      await sleep(100);
    }
    await until(async () => (await display()) !== '', 'display back');
    await sleep(500);
    await k.kb.doubleTap();
    await until(menuOpen, 'the menu open');
    // drawn on the new server, not on an overlay left from the dead one (same display number)
    await until(async () => {
      const conn = await connectDisplay(await display());
      try {
        return distinctColours(await grab(conn), 4) >= 2;
      } finally {
        await conn.close();
      }
    }, 'the menu painted on the restarted X server');
    await k.kb.tap('esc');
    await until(async () => !(await menuOpen()), 'the menu closed');
    expect(isAlive(k.pid)).toBe(true);
    expect(k.proc.exitCode).toBeNull();
    expect(k.log()).not.toMatch(/uncaught|unhandled/i);
  }, 60_000);
});
