import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  INITIAL_LIFECYCLE,
  type RestartPolicy,
  type VmEvent,
  type VmLifecycle,
  vmTransition,
} from '../../src/session/vm-state.js';
import { mulberry32 as rng } from '../helpers/prng.js';

const policy: RestartPolicy = { baseMs: 1000, maxMs: 8000, maxCrashes: 4, windowMs: 60_000 };

/** Feeds `[ms, event]` steps from the initial state; returns every step's state and actions. */
function run(steps: ReadonlyArray<[number, VmEvent]>, from: VmLifecycle = INITIAL_LIFECYCLE) {
  let s = from;
  return steps.map(([now, ev]) => {
    const out = vmTransition(s, ev, now, policy);
    s = out.state;
    return {
      state: s.state,
      actions: out.actions.map((a) => (a.type === 'terminate' ? `terminate${a.force ? '!' : ''}` : a.type)),
      deadline: out.nextDeadlineMs,
      gaveUp: s.gaveUp,
    };
  });
}

const crash: VmEvent = { type: 'exited', clean: false };

/** `n` cycles of launched → crash after `upMs` → tick `tickMs` later, after an initial start. */
function crashCycles(n: number, upMs: number, tickMs: number): [number, VmEvent][] {
  const steps: [number, VmEvent][] = [[0, { type: 'start' }]];
  const period = 10 + upMs + tickMs;
  for (let i = 0; i < n; i++) {
    const t = i * period;
    steps.push([t + 10, { type: 'launched' }], [t + 10 + upMs, crash], [t + period, { type: 'tick' }]);
  }
  return steps;
}

describe('vm lifecycle', () => {
  it.each([
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [4, 8000],
    [9, 8000],
  ])('backs off %i crash(es) by %i ms (doubling, capped)', (n, ms) => {
    expect(backoffMs(n, policy)).toBe(ms);
  });

  it('start → launch → running; stop → terminate → stopped', () => {
    expect(
      run([
        [0, { type: 'start' }],
        [10, { type: 'launched' }],
        [20, { type: 'stop', force: false }],
        [30, { type: 'exited', clean: false }],
      ]).map((r) => [r.state, r.actions.join(',')]),
    ).toEqual([
      ['starting', 'launch'],
      ['running', ''],
      ['stopping', 'terminate'],
      ['stopped', ''],
    ]);
  });

  it('a crash schedules a relaunch after the backoff; the tick before it does nothing', () => {
    const r = run([
      [0, { type: 'start' }],
      [10, { type: 'launched' }],
      [100, crash],
      [1099, { type: 'tick' }],
      [1100, { type: 'tick' }],
    ]);
    expect(r[2]).toMatchObject({ state: 'crashed', deadline: 1100, actions: [] });
    expect(r[3]).toMatchObject({ state: 'crashed', actions: [] });
    expect(r[4]).toMatchObject({ state: 'starting', actions: ['launch'], deadline: null });
  });

  it('gives up after maxCrashes within the window, and a person starting it forgives', () => {
    const steps = crashCycles(4, 10, 10_000);
    const t = steps.at(-1)![0];
    const r = run(steps);
    const last = r.at(-1)!;
    expect(last).toMatchObject({ state: 'crashed', gaveUp: true, deadline: null, actions: [] });
    expect(r.filter((x) => x.actions.includes('launch'))).toHaveLength(4);
    let s = INITIAL_LIFECYCLE;
    for (const [now, ev] of steps) s = vmTransition(s, ev, now, policy).state;
    const again = vmTransition(s, { type: 'start' }, t + 1, policy);
    expect(again.state).toMatchObject({ state: 'starting', gaveUp: false, crashes: [] });
  });

  it('crashes older than the window do not count towards giving up', () => {
    const r = run(crashCycles(6, 30_000, 10_000));
    expect(r.some((x) => x.gaveUp)).toBe(false);
    expect(r.at(-1)!.state).toBe('starting');
  });

  it('a clean exit (guest powered off) is a stop, not a crash', () => {
    const r = run([
      [0, { type: 'start' }],
      [10, { type: 'launched' }],
      [20, { type: 'exited', clean: true }],
    ]);
    expect(r.at(-1)).toMatchObject({ state: 'stopped', deadline: null });
  });

  it('a failed launch counts as a crash', () => {
    const r = run([
      [0, { type: 'start' }],
      [5, { type: 'launch-failed' }],
    ]);
    expect(r.at(-1)).toMatchObject({ state: 'crashed', deadline: 1005 });
  });

  it('stop while a relaunch is pending cancels it', () => {
    const r = run([
      [0, { type: 'start' }],
      [10, { type: 'launched' }],
      [20, crash],
      [30, { type: 'stop', force: false }],
      [5000, { type: 'tick' }],
    ]);
    expect(r.slice(3).map((x) => [x.state, x.actions.length, x.deadline])).toEqual([
      ['stopped', 0, null],
      ['stopped', 0, null],
    ]);
  });

  it('restart stops, then launches when the old process is gone', () => {
    const r = run([
      [0, { type: 'start' }],
      [10, { type: 'launched' }],
      [20, { type: 'restart' }],
      [30, { type: 'exited', clean: false }],
      [40, { type: 'launched' }],
    ]);
    expect(r.slice(2).map((x) => [x.state, x.actions.join(',')])).toEqual([
      ['stopping', 'terminate'],
      ['starting', 'launch'],
      ['running', ''],
    ]);
  });

  it('force stop while a graceful stop is under way escalates; a second graceful one does nothing', () => {
    const r = run([
      [0, { type: 'start' }],
      [10, { type: 'launched' }],
      [20, { type: 'stop', force: false }],
      [30, { type: 'stop', force: false }],
      [40, { type: 'stop', force: true }],
    ]);
    expect(r.slice(2).map((x) => x.actions.join(','))).toEqual(['terminate', '', 'terminate!']);
  });

  it('adoption makes a stopped VM running without launching anything', () => {
    expect(run([[0, { type: 'adopted' }]])[0]).toMatchObject({ state: 'running', actions: [] });
  });
});

describe('vm lifecycle invariants under random event sequences', () => {
  const events: VmEvent[] = [
    { type: 'start' },
    { type: 'stop', force: false },
    { type: 'stop', force: true },
    { type: 'restart' },
    { type: 'launched' },
    { type: 'launch-failed' },
    { type: 'adopted' },
    { type: 'exited', clean: true },
    { type: 'exited', clean: false },
    { type: 'tick' },
  ];

  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'seed %i: actions match states, and retries only while crashed',
    (seed) => {
      const next = rng(seed);
      let s = INITIAL_LIFECYCLE;
      let now = 0;
      for (let i = 0; i < 2000; i++) {
        now += Math.floor(next() * 3000);
        const ev = events[Math.floor(next() * events.length)]!;
        const out = vmTransition(s, ev, now, policy);
        s = out.state;
        for (const a of out.actions) expect(a.type === 'launch' ? 'starting' : 'stopping').toBe(s.state);
        expect(out.actions.length).toBeLessThanOrEqual(1);
        expect(out.nextDeadlineMs).toBe(s.retryAtMs);
        if (s.retryAtMs !== null) expect([s.state, s.gaveUp]).toEqual(['crashed', false]);
        if (s.gaveUp) expect(s.state).toBe('crashed');
        expect(s.crashes.length).toBeLessThanOrEqual(policy.maxCrashes);
      }
    },
  );
});
