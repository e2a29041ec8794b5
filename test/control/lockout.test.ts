import { describe, expect, it } from 'vitest';
import {
  initialLockout,
  type LockoutConfig,
  type LockoutEvent,
  lockoutStep,
} from '../../src/control/auth/lockout.js';
import { initialRate, takeToken } from '../../src/control/rpc/rate.js';

const cfg: LockoutConfig = { threshold: 3, lockMs: 1000, maxLockMs: 3000 };

/** Run events at times, collecting each step's actions. */
function run(events: [number, LockoutEvent['type']][]) {
  let s = initialLockout(cfg);
  return events.map(([t, type]) => {
    const step = lockoutStep(cfg, s, { type }, t);
    s = step.state;
    return { t, type, actions: step.actions, next: step.nextDeadlineMs };
  });
}

describe('lockout', () => {
  it('allows attempts until the threshold, then locks for lockMs', () => {
    const r = run([
      [0, 'failure'],
      [1, 'failure'],
      [2, 'attempt'],
      [2, 'failure'],
      [3, 'attempt'],
      [1001, 'attempt'],
      [1002, 'attempt'],
    ]);
    expect(r[2]!.actions).toEqual([{ type: 'allow' }]);
    expect(r[3]!.actions).toEqual([{ type: 'locked', untilMs: 1002, lockMs: 1000 }]);
    expect(r[3]!.next).toBe(1002);
    expect(r[4]!.actions).toEqual([{ type: 'refuse', retryAfterMs: 999 }]);
    expect(r[5]!.actions).toEqual([{ type: 'refuse', retryAfterMs: 1 }]);
    expect(r[6]!.actions).toEqual([{ type: 'allow' }]);
  });

  it('doubles each further lock, up to the cap', () => {
    const ev: [number, LockoutEvent['type']][] = [];
    let t = 0;
    for (let lock = 0; lock < 4; lock++) {
      for (let i = 0; i < 3; i++) ev.push([t, 'failure']);
      t += 10_000;
    }
    const locks = run(ev).flatMap((x) => x.actions.filter((a) => a.type === 'locked'));
    expect(locks.map((a) => (a.type === 'locked' ? a.lockMs : 0))).toEqual([1000, 2000, 3000, 3000]);
  });

  it('forgets everything after a success', () => {
    const r = run([
      [0, 'failure'],
      [1, 'failure'],
      [2, 'success'],
      [3, 'failure'],
      [4, 'failure'],
      [5, 'attempt'],
    ]);
    expect(r[5]!.actions).toEqual([{ type: 'allow' }]);
    expect(r.flatMap((x) => x.actions).some((a) => a.type === 'locked')).toBe(false);
  });
});

describe('rate bucket', () => {
  it('allows a burst, refuses beyond it, and refills over time', () => {
    const c = { perSecond: 10, burst: 3 };
    let s = initialRate(c, 0);
    const got: boolean[] = [];
    for (const t of [0, 0, 0, 0, 50, 100, 100]) {
      const r = takeToken(c, s, t);
      s = r.state;
      got.push(r.allowed);
    }
    expect(got).toEqual([true, true, true, false, false, true, false]);
  });
});
