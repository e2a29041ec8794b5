import { describe, expect, it } from 'vitest';
import { ConsoleLock } from '../../src/x/console-lock.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('console lock', () => {
  it('runs holders one at a time, in the order they came, even when they take different times', async () => {
    const lock = new ConsoleLock();
    const log: string[] = [];
    let inside = 0;
    let most = 0;
    const holder = (name: string, ms: number) =>
      lock.run(async () => {
        inside++;
        most = Math.max(most, inside);
        log.push(`${name} in`);
        await tick(ms);
        log.push(`${name} out`);
        inside--;
        return name;
      });
    const results = await Promise.all([holder('xorg-a', 30), holder('xorg-b', 5), holder('switch', 1)]);
    expect(results).toEqual(['xorg-a', 'xorg-b', 'switch']);
    expect(most).toBe(1);
    expect(log).toEqual(['xorg-a in', 'xorg-a out', 'xorg-b in', 'xorg-b out', 'switch in', 'switch out']);
    expect(lock.pending).toBe(0);
  });

  it('a holder that fails passes its error to its caller and the next holder still runs', async () => {
    const lock = new ConsoleLock();
    const failed = lock.run(async () => {
      await tick();
      throw new Error('Xorg exited before ready');
    });
    const next = lock.run(async () => 'switched');
    await expect(failed).rejects.toThrow('Xorg exited before ready');
    await expect(next).resolves.toBe('switched');
  });

  it('counts holders waiting behind a long one', async () => {
    const lock = new ConsoleLock();
    let release = () => {};
    const long = lock.run(() => new Promise<void>((r) => (release = r)));
    const queued = lock.run(async () => {});
    await tick();
    expect(lock.pending).toBe(2);
    release();
    await Promise.all([long, queued]);
    expect(lock.pending).toBe(0);
  });

  it('a holder that never settles loses the lock at its deadline: the switch queued behind it runs', async () => {
    const lock = new ConsoleLock();
    const overruns: string[] = [];
    const t0 = Date.now();
    const stuck = lock.run(() => new Promise<void>(() => {}), {
      what: 'xorg :21 start',
      maxHoldMs: 100,
      // a timer may fire up to a millisecond early by the wall clock (CI: 99 ms measured)
      onOverrun: (what, ms) => overruns.push(`${what} ${ms >= 95}`),
    });
    let switchedAt = -1;
    const queued = lock.run(async () => {
      switchedAt = Date.now() - t0;
    });
    await Promise.race([queued, tick(2000)]);
    expect(switchedAt).toBeGreaterThanOrEqual(95);
    expect(switchedAt).toBeLessThan(1000);
    expect(overruns).toEqual(['xorg :21 start true']);
    // the stuck holder's caller still waits on it; only the lock moved on
    expect(await Promise.race([stuck.then(() => 'settled'), tick(10).then(() => 'waiting')])).toBe('waiting');
    expect(lock.pending).toBe(1);
  });

  it('holders that finish in time report no overrun, and the default deadline applies', async () => {
    const lock = new ConsoleLock(50);
    const overruns: string[] = [];
    const onOverrun = (what: string) => overruns.push(what);
    await lock.run(() => tick(5), { what: 'quick', onOverrun });
    const slow = lock.run(() => tick(150), { what: 'slow', onOverrun });
    let nextAt = 0;
    const t0 = Date.now();
    await lock.run(async () => {
      nextAt = Date.now() - t0;
    });
    expect(nextAt).toBeLessThan(140);
    await slow;
    expect(overruns).toEqual(['slow']);
  });
});
