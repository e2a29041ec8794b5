import { describe, expect, it } from 'vitest';
import { EV, keyCode } from '../../src/input/codes.js';
import type { InputEvent } from '../../src/input/event.js';
import {
  type HotkeyAction,
  type HotkeyState,
  hotkeyInit,
  hotkeyStep,
  hotkeyTick,
} from '../../src/input/hotkey.js';

const opts = { key: keyCode('scrolllock')!, windowMs: 500 };
const k = (name: string, value: number): InputEvent => ({
  type: EV.KEY,
  code: keyCode(name)!,
  value,
  timeMs: 0,
});

/** Feed `[timeMs, key, value]` steps; return the actions as short strings and the last result. */
function run(steps: [number, string, number][], state0: HotkeyState = hotkeyInit()) {
  let state = state0;
  const out: string[] = [];
  let next: number | undefined;
  for (const [t, name, value] of steps) {
    const r = name === 'tick' ? hotkeyTick(state, t) : hotkeyStep(opts, state, k(name, value), t);
    state = r.state;
    next = r.nextDeadlineMs;
    out.push(...r.actions.map(show));
  }
  return { out, state, next };
}

function show(a: HotkeyAction): string {
  if (a.kind === 'pass' || a.kind === 'swallow') return `${a.kind} ${a.ev.code}:${a.ev.value}`;
  return a.kind === 'switch' ? `switch ${a.index}` : a.kind;
}

const SCR = 70;

describe('hotkey (pure)', () => {
  it('holds the first tap and asks to be woken at the end of the window', () => {
    const r = run([
      [1000, 'scrolllock', 1],
      [1040, 'scrolllock', 0],
    ]);
    expect(r.out).toEqual([]);
    expect(r.next).toBe(1500);
  });

  it('replays nothing when ticked before the deadline, the tap in order at it', () => {
    expect(
      run([
        [1000, 'scrolllock', 1],
        [1040, 'scrolllock', 0],
        [1499, 'tick', 0],
      ]).out,
    ).toEqual([]);
    const r = run([
      [1000, 'scrolllock', 1],
      [1040, 'scrolllock', 0],
      [1500, 'tick', 0],
    ]);
    expect(r.out).toEqual([`pass ${SCR}:1`, `pass ${SCR}:0`]);
    expect(r.next).toBeUndefined();
  });

  it('replays an expired tap before the event that arrives after the deadline', () => {
    const r = run([
      [1000, 'scrolllock', 1],
      [1040, 'scrolllock', 0],
      [2000, 'a', 1],
    ]);
    expect(r.out).toEqual([`pass ${SCR}:1`, `pass ${SCR}:0`, 'pass 30:1']);
  });

  it.each([
    ['at 499 ms', 1499, true],
    ['at exactly the window', 1500, false],
  ])('a second press %s opens the menu: %s', (_w, t, opens) => {
    const r = run([
      [1000, 'scrolllock', 1],
      [1040, 'scrolllock', 0],
      [t, 'scrolllock', 1],
    ]);
    expect(r.out.includes('menu-open')).toBe(opens);
  });

  it('swallows both taps and the second release, and waits one window for a digit', () => {
    const r = run([
      [1000, 'scrolllock', 1],
      [1040, 'scrolllock', 0],
      [1100, 'scrolllock', 1],
      [1150, 'scrolllock', 0],
    ]);
    expect(r.out).toEqual([
      `swallow ${SCR}:1`,
      `swallow ${SCR}:0`,
      `swallow ${SCR}:1`,
      'menu-open',
      `swallow ${SCR}:0`,
    ]);
    expect(r.next).toBe(1600);
  });

  it.each([
    ['1', 1],
    ['9', 9],
    ['0', 10],
    ['kp3', 3],
  ])('tap tap %s switches to display %i and swallows the digit both ways', (digit, index) => {
    const r = run([
      [1000, 'scrolllock', 1],
      [1010, 'scrolllock', 0],
      [1100, 'scrolllock', 1],
      [1110, 'scrolllock', 0],
      [1200, digit, 1],
      [1250, digit, 0],
    ]);
    expect(r.out.slice(-3)).toEqual([
      `swallow ${keyCode(digit)}:1`,
      `switch ${index}`,
      `swallow ${keyCode(digit)}:0`,
    ]);
  });

  it('passes a release queued behind the tap when the double tap completes', () => {
    const r = run([
      [1000, 'a', 1],
      [1010, 'scrolllock', 1],
      [1020, 'a', 0],
      [1030, 'scrolllock', 0],
      [1100, 'scrolllock', 1],
    ]);
    expect(r.out).toEqual([
      'pass 30:1',
      `swallow ${SCR}:1`,
      'pass 30:0',
      `swallow ${SCR}:0`,
      `swallow ${SCR}:1`,
      'menu-open',
    ]);
  });

  it('flushes the held tap first when another key is pressed', () => {
    const r = run([
      [1000, 'scrolllock', 1],
      [1010, 'scrolllock', 0],
      [1020, 'b', 1],
    ]);
    expect(r.out).toEqual([`pass ${SCR}:1`, `pass ${SCR}:0`, 'pass 48:1']);
    expect(r.next).toBeUndefined();
  });

  it('drops the hotkey’s own autorepeat while the tap is held', () => {
    const r = run([
      [1000, 'scrolllock', 1],
      [1300, 'scrolllock', 2],
      [1600, 'tick', 0],
    ]);
    expect(r.out).toEqual([`swallow ${SCR}:2`, `pass ${SCR}:1`]);
  });
});
