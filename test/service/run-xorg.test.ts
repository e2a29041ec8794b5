import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDisplay } from '../../src/x/connection.js';
import { probe } from '../../src/x/screenshot.js';
import { loudSkip, whyNoVts } from '../helpers/skips.js';
import { lockVts, schedulingOf, xServerPidOf } from '../helpers/x-servers.js';
import { isAlive, type Kvmux, sleep, startKvmux } from './kvmux-harness.js';

/**
 * `kvmux run` with `console: vt`: Xorg (dummy driver) per VM on real VTs. Switching changes the
 * kernel's active VT; escape chords change nothing; the original VT comes back at the end.
 */
const activeVt = () => Number(readFileSync('/sys/class/tty/tty0/active', 'utf8').trim().replace('tty', ''));

const why = whyNoVts();
if (why) loudSkip('service/run-xorg e2e', why);

/** The colour at the middle of the screen once it is `want` (the xterm is full-screen), else the last seen. */
async function colour(display: string, want: number[]): Promise<number[]> {
  const conn = await connectDisplay(display);
  try {
    let got: number[] = [];
    for (let i = 0; i < 40; i++) {
      const [c] = await probe(conn, [[Math.floor(conn.width * 0.75), Math.floor(conn.height * 0.75)]]);
      got = [c!.r, c!.g, c!.b];
      if (got.every((v, j) => v === want[j])) break;
      await sleep(50);
    }
    return got;
  } finally {
    await conn.close();
  }
}

describe.skipIf(why !== null)('kvmux run on real VTs (Xorg dummy)', () => {
  let k: Kvmux;
  let lock: { release(): Promise<void> };
  let original: number;
  let pids: number[] = [];
  const displays = () =>
    k.call<Array<{ name: string; display: string; vt: number; active: boolean }>>('display.list');

  beforeAll(async () => {
    lock = await lockVts();
    original = activeVt();
    k = await startKvmux({
      console: 'vt',
      vms: [
        { name: 'red', backend: 'command', command: ['xterm', '-bg', '#c00000', '-e', 'cat'] },
        { name: 'blue', backend: 'command', command: ['xterm', '-bg', '#0000c0', '-e', 'cat'] },
      ],
    });
    pids = (await k.call<Array<{ pid: number }>>('vm.list')).map((v) => v.pid);
  }, 90_000);

  afterAll(async () => {
    try {
      await k?.stop();
      // the service restores the VT it found; this only guards against a failed stop
      if (activeVt() !== original) await import('../../src/x/vt.js').then((m) => m.switchVt(original));
    } finally {
      await lock?.release();
    }
  });

  it('gives each display its own VT and shows the first one', async () => {
    const ds = await displays();
    expect(ds.map((d) => d.name)).toEqual(['red', 'blue']);
    expect(new Set(ds.map((d) => d.vt)).size).toBe(2);
    // VTs are handed out in menu order
    expect(ds[0]!.vt).toBeLessThan(ds[1]!.vt);
    expect(ds.every((d) => d.vt >= 30)).toBe(true);
    for (let i = 0; i < 40 && activeVt() !== ds[0]!.vt; i++) await sleep(50);
    expect(activeVt()).toBe(ds[0]!.vt);
  });

  it('display.switch makes the kernel VT follow, and the display shows its VM', async () => {
    const ds = await displays();
    const blue = ds.find((d) => d.name === 'blue')!;
    const r = await k.call<{ vt: number; ms: number; vtMs: number }>('display.switch', { name: 'blue' });
    expect(r.vt).toBe(blue.vt);
    // the bench splits the server time: the VT wait is part of it, and a real VT switch takes some
    expect(r.vtMs).toBeGreaterThan(0);
    expect(r.vtMs).toBeLessThanOrEqual(r.ms);
    expect(activeVt()).toBe(blue.vt);
    expect(await colour(blue.display, [0, 0, 0xc0])).toEqual([0, 0, 0xc0]);
    await k.call('display.switch', { name: 'red' });
    expect(activeVt()).toBe(ds[0]!.vt);
    expect(await colour(ds[0]!.display, [0xc0, 0, 0])).toEqual([0xc0, 0, 0]);
  });

  it('the Xorg on the active VT runs real-time (input.realtime), the other one normal', async () => {
    if (process.getuid?.() !== 0) return void console.warn('SKIP Xorg priority: needs root');
    const ds = await displays();
    const rt = (d: { display: string }) => schedulingOf(xServerPidOf(d.display)!);
    for (const name of ['blue', 'red']) {
      await k.call('display.switch', { name });
      const [shown, other] = name === 'red' ? [ds[0]!, ds[1]!] : [ds[1]!, ds[0]!];
      expect(rt(shown)).toMatchObject({ policy: 2, rtPriority: 1 });
      expect(rt(other)).toMatchObject({ policy: 0, rtPriority: 0 });
    }
  });

  it('swallows Ctrl+Alt+F1 and Ctrl+Alt+Backspace: VT unchanged, Xorg alive', async () => {
    const ds = await displays();
    const vt = activeVt();
    await k.kb.chord(['leftctrl', 'leftalt'], 'f1');
    await k.kb.chord(['leftctrl', 'leftalt'], 'f2');
    await k.kb.chord(['leftctrl', 'leftalt'], 'backspace');
    await sleep(500);
    expect(activeVt()).toBe(vt);
    const status = await k.call<{ displaysReady: number; displays: number }>('service.status');
    expect(status.displaysReady).toBe(2);
    expect((await displays()).map((d) => d.display)).toEqual(ds.map((d) => d.display));
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
  });

  it('double Scroll Lock then a digit switches the VT', async () => {
    const ds = await displays();
    await k.kb.doubleTap();
    await k.kb.tap('2');
    for (let i = 0; i < 60 && activeVt() !== ds[1]!.vt; i++) await sleep(25);
    expect(activeVt()).toBe(ds[1]!.vt);
  });

  it('restores the original VT on SIGTERM', async () => {
    await k.stop();
    expect(activeVt()).toBe(original);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });
});
