import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Config, configSchema } from '../../src/config/schema.js';
import { DisplayRuntime, whileNudging } from '../../src/service/display-runtime.js';
import { Switcher } from '../../src/service/switcher.js';
import { consoleLock } from '../../src/x/console-lock.js';
import { activeVt, rememberActiveVt } from '../../src/x/vt.js';
import { loudSkip, whyNoVts } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import { lockVts } from '../helpers/x-servers.js';
import { ownXvfbs } from './helpers/own-x-servers.js';

/** Displays that are removed while their X server is still coming up (real Xvfb on :150…). */
const switchers: Switcher[] = [];

afterEach(async () => {
  for (const s of switchers.splice(0)) await s.stop();
});

function setup(dir = tempDir('kvmux-display-rt-')): { config: Config; switcher: Switcher } {
  const config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    console: 'virtual',
    x: { firstDisplay: 150 },
  });
  const switcher = new Switcher({ config });
  switchers.push(switcher);
  return { config, switcher };
}

async function until(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!fn()) throw new Error(`timed out: ${what}`);
}

describe('display runtime start and stop', () => {
  it('a display removed right after it was asked to start leaves no X server and no record', async () => {
    const { config, switcher } = setup();
    const before = ownXvfbs();
    switcher.add('img', 'vm');
    switcher.startLater('img');
    await switcher.remove('img');
    expect(ownXvfbs()).toEqual(before);
    expect(existsSync(join(config.stateDir, 'displays', 'img.json'))).toBe(false);
  }, 30_000);

  it('a display removed while its window manager connects stops the server it just got', async () => {
    const { config, switcher } = setup();
    const before = ownXvfbs();
    const record = join(config.stateDir, 'displays', 'img.json');
    switcher.add('img', 'vm');
    switcher.startLater('img');
    // the server is up and recorded; the WM and XTEST sink are still to come
    await until(() => existsSync(record), 'the X server record');
    expect(switcher.live('img')).toBeNull();
    await switcher.remove('img');
    expect(ownXvfbs()).toEqual(before);
    expect(existsSync(record)).toBe(false);
  }, 30_000);

  it('an on-demand display starts only once something waits for it', async () => {
    const { switcher } = setup();
    const before = ownXvfbs();
    switcher.add('found', 'vm').onDemand();
    switcher.startLater('found');
    await new Promise((r) => setTimeout(r, 300));
    expect(ownXvfbs()).toEqual(before);
    const info = await switcher.displayInfo('found');
    expect(info.display).toMatch(/^:\d+$/);
    expect(ownXvfbs().length).toBe(before.length + 1);
    await switcher.remove('found');
    expect(ownXvfbs()).toEqual(before);
  }, 30_000);

  it('an on-demand display whose server an earlier kvmux left running is adopted at once', async () => {
    const dir = tempDir('kvmux-display-rt-');
    const first = setup(dir).switcher;
    first.add('found', 'vm');
    first.startLater('found');
    await until(() => first.live('found') !== null, 'the first display');
    const pid = first.live('found')?.server.pid;
    await first.stop({ leaveRunning: true });
    const { switcher } = setup(dir);
    switcher.add('found', 'vm').onDemand();
    switcher.startLater('found');
    await until(() => switcher.live('found') !== null, 'the adopted display');
    expect(switcher.live('found')?.server.pid).toBe(pid);
  }, 30_000);

  it('a leave-running stop while a display starts keeps its server recorded for the next kvmux', async () => {
    const { config, switcher } = setup();
    const before = ownXvfbs();
    switcher.add('img', 'vm');
    switcher.startLater('img');
    await switcher.stop({ leaveRunning: true });
    const left = ownXvfbs().filter((p) => !before.includes(p));
    try {
      expect(left).toHaveLength(1);
      const record = join(config.stateDir, 'displays', 'img.json');
      expect((JSON.parse(readFileSync(record, 'utf8')) as { pid: number }).pid).toBe(left[0]);
    } finally {
      for (const pid of left) process.kill(pid, 'SIGTERM');
    }
  }, 30_000);
});

describe('whileNudging (a KMS Xorg start waits for the shown server to let go of the VT)', () => {
  it('nudges the shown server at once and every 250 ms while the start is pending, then stops', async () => {
    let nudges = 0;
    const start = new Promise<string>((r) => setTimeout(() => r('server'), 650));
    const t0 = Date.now();
    await expect(
      whileNudging(start, async () => {
        nudges++;
      }),
    ).resolves.toBe('server');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(640);
    // at 0, 250 and 500 ms (a loaded machine may run the interval late once)
    expect(nudges).toBeGreaterThanOrEqual(2);
    expect(nudges).toBeLessThanOrEqual(3);
    const seen = nudges;
    await new Promise((r) => setTimeout(r, 400));
    expect(nudges).toBe(seen);
  });

  it('a failing nudge does not fail the start, and a failed start still stops the nudges', async () => {
    let nudges = 0;
    const nudge = async () => {
      nudges++;
      throw new Error('BadWindow');
    };
    const failed = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('not ready')), 300));
    await expect(whileNudging(failed, nudge)).rejects.toThrow('not ready');
    const seen = nudges;
    expect(seen).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(nudges).toBe(seen);
  });
});

const noVts = whyNoVts();
if (noVts) loudSkip('display-runtime: a KMS Xorg start on real VTs', noVts);

describe.skipIf(noVts !== null)('a KMS (modesetting) Xorg start, on a machine without DRM', () => {
  it('nudges the shown server while it is pending, under the console lock, and leaves the VT where it was', async () => {
    const lock = await lockVts();
    const original = rememberActiveVt();
    try {
      const dir = tempDir('kvmux-display-kms-');
      const config = configSchema.parse({
        runDir: join(dir, 'run'),
        stateDir: join(dir, 'state'),
        console: 'vt',
        x: { firstDisplay: 180, firstVt: 45, driver: 'modesetting', readySeconds: 10 },
      });
      let nudges = 0;
      let lockHeld = false;
      const rt = new DisplayRuntime({
        name: 'kms',
        config,
        nudgeShown: async () => {
          nudges++;
          lockHeld = consoleLock.pending > 0;
        },
      });
      // no /dev/dri here: the server exits ("no screens found") before it is ready
      await expect(rt.start()).rejects.toThrow(/exited .* before ready|not ready/);
      expect(nudges).toBeGreaterThanOrEqual(1);
      expect(lockHeld).toBe(true);
      expect(consoleLock.pending).toBe(0);
      await rt.stop();
    } finally {
      await original.restore();
      expect(activeVt()).toBe(original.vt);
      await lock.release();
    }
  }, 30_000);
});
