import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/demo/fifo-keys.js';
import { type Kvmux, startKvmux } from '../../src/demo/kvmux-process.js';
import { connectDisplay } from '../../src/x/connection.js';
import { distinctColours, encodePng, grab } from '../../src/x/screenshot.js';
import { actAndSettle } from '../helpers/screen-wait.js';
import { shotsDir } from '../helpers/temp.js';
import { xevLogger } from '../service/kvmux-harness.js';

/**
 * The admin screen as the person at the console meets it: `kvmux run` (built CLI) on Xvfb
 * displays from :140, the `admin` display's full-screen xterm running `kvmux admin`, and every
 * key typed through the FIFO keyboard (the grabbed-keyboard pipeline). The PNGs are kept in
 * $KVMUX_TEST_SHOTS when set (kvmux-admin-display*.png), to look at.
 */
const shots = shotsDir('kvmux-admin-display-');
let k: Kvmux;

async function shot(display: string, file: string) {
  const conn = await connectDisplay(display);
  try {
    const img = await grab(conn);
    writeFileSync(join(shots, file), encodePng(img));
    return img;
  } finally {
    await conn.close();
  }
}

async function until(fn: () => Promise<boolean>, what: string, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(200);
  }
}

const vmState = async (name: string) =>
  (await k.call<Array<{ name: string; state: string }>>('vm.list')).find((v) => v.name === name)?.state;

beforeAll(async () => {
  k = await startKvmux({
    firstDisplay: 140,
    admin: true,
    password: 'hunter2',
    vms: [{ name: 'left', backend: 'command', command: xevLogger() }],
  });
}, 90_000);

afterAll(async () => {
  await k?.stop();
});

describe('admin display under kvmux run', () => {
  it('is listed last in the menu order and shows the TUI full-screen when switched to', async () => {
    const displays = await k.call<Array<{ name: string; display: string }>>('display.list');
    expect(displays.map((d) => d.name)).toEqual(['left', 'admin']);
    await k.call('display.switch', { name: 'admin' });
    const admin = displays.find((d) => d.name === 'admin')!.display;
    // the TUI draws its blue login box over the terminal's plain background
    await until(
      async () => distinctColours(await grab(await connectDisplay(admin)), 4) >= 3,
      'the login box',
    );
    await sleep(500);
    const img = await shot(admin, 'kvmux-admin-display-login.png');
    expect(distinctColours(img, 4)).toBeGreaterThanOrEqual(3);
  });

  /** Type a password, then the keys that stop the first VM (Tab to the pane, t, confirm). */
  async function loginAndStopFirstVm(password: string): Promise<void> {
    const admin = (await k.call<Array<{ name: string; display: string }>>('display.list')).find(
      (d) => d.name === 'admin',
    )!.display;
    const logins = async () =>
      (await k.call<Array<{ method: string }>>('audit.tail', { lines: 200 })).filter(
        (e) => e.method === 'auth.login',
      ).length;
    const before = await logins();
    await k.kb.type(password);
    await k.kb.tap('enter');
    // the login is answered (scrypt takes seconds on a loaded machine), then the screen is redrawn
    await until(async () => (await logins()) > before, 'the login answered');
    await sleep(1000);
    // the confirmation dialog must be on screen before Enter, or Enter goes to the pane
    await actAndSettle(admin, async () => {
      await k.kb.tap('tab');
      await k.kb.tap('t');
    });
    await k.kb.tap('enter');
  }

  it('refuses a wrong password on the admin display: the stop keys do nothing', async () => {
    await loginAndStopFirstVm('wrong');
    await sleep(1500);
    expect(await vmState('left')).toBe('running');
  });

  it('logs in and stops a VM with keys typed on the physical keyboard path', async () => {
    expect(await vmState('left')).toBe('running');
    await loginAndStopFirstVm('hunter2');
    await until(async () => (await vmState('left')) === 'stopped', 'left to stop');
    const displays = await k.call<Array<{ name: string; display: string }>>('display.list');
    await sleep(2500); // one vm.list poll so the screenshot shows the new state
    await shot(displays.find((d) => d.name === 'admin')!.display, 'kvmux-admin-display.png');
  });
});
