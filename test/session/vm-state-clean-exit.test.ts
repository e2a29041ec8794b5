import { describe, expect, it } from 'vitest';
import { ADMIN_RESTART_POLICY } from '../../src/service/admin-screen.js';
import {
  INITIAL_LIFECYCLE,
  type RestartPolicy,
  type VmEvent,
  type VmLifecycle,
  vmTransition,
} from '../../src/session/vm-state.js';

/** Clean exits under a policy that restarts them (the admin screen) and one that does not (VMs). */
function run(policy: RestartPolicy, steps: ReadonlyArray<[number, VmEvent]>): Array<[string, number | null]> {
  let s: VmLifecycle = INITIAL_LIFECYCLE;
  return steps.map(([now, ev]) => {
    const out = vmTransition(s, ev, now, policy);
    s = out.state;
    return [s.state, out.nextDeadlineMs];
  });
}

const quit: VmEvent = { type: 'exited', clean: true };
const launched: VmEvent = { type: 'launched' };
const tick: VmEvent = { type: 'tick' };

describe('clean exits', () => {
  it('stop a VM whose guest powered itself off', () => {
    const vmPolicy = { baseMs: 1000, maxMs: 8000, maxCrashes: 4, windowMs: 60_000 };
    expect(
      run(vmPolicy, [
        [0, { type: 'start' }],
        [10, launched],
        [500, quit],
      ]),
    ).toEqual([
      ['starting', null],
      ['running', null],
      ['stopped', null],
    ]);
  });

  it('bring the admin screen back every time, sooner at first and slower when it keeps quitting', () => {
    const steps: Array<[number, VmEvent]> = [
      [0, { type: 'start' }],
      [10, launched],
    ];
    // quit ten times, each right after it came back
    let t = 10;
    for (let i = 0; i < 10; i++) {
      const delay = Math.min(10_000, 500 * 2 ** i);
      steps.push([t + 100, quit], [t + 100 + delay, tick], [t + 110 + delay, launched]);
      t += 110 + delay;
    }
    const out = run(ADMIN_RESTART_POLICY, steps);
    const retries = out.filter(([st]) => st === 'crashed');
    expect(retries).toHaveLength(10);
    // the deadlines grow 500 ms, 1 s, 2 s … and stay at 10 s; it never gives up
    expect(retries.map(([, at], i) => (at ?? 0) - (steps[2 + 3 * i]?.[0] ?? 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000, 10_000,
    ]);
    expect(out.at(-1)).toEqual(['running', null]);
  });

  it('a stop asked for still stops the admin screen (service shutdown)', () => {
    expect(
      run(ADMIN_RESTART_POLICY, [
        [0, { type: 'start' }],
        [10, launched],
        [20, { type: 'stop', force: false }],
        [30, quit],
      ]),
    ).toEqual([
      ['starting', null],
      ['running', null],
      ['stopping', null],
      ['stopped', null],
    ]);
  });
});
