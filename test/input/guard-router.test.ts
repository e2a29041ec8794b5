import { describe, expect, it } from 'vitest';
import { parseChords } from '../../src/input/chord.js';
import { ABS, EV, keyCode, REL, SYN_REPORT } from '../../src/input/codes.js';
import type { InputEvent } from '../../src/input/event.js';
import {
  type GuardState,
  guardInit,
  guardSetActive,
  guardSetExtra,
  guardStep,
} from '../../src/input/guard.js';
import {
  type RouterState,
  routerInit,
  routerSetAbsRange,
  routerSetActive,
  routerStep,
} from '../../src/input/router.js';

const key = (name: string, value: number): InputEvent => ({
  type: EV.KEY,
  code: keyCode(name)!,
  value,
  timeMs: 0,
});

function guardRun(state0: GuardState, steps: string[]): string[] {
  let s = state0;
  const out: string[] = [];
  for (const step of steps) {
    const [name, v] = step.split(' ');
    const r = guardStep(s, key(name!, v === 'up' ? 0 : v === 'repeat' ? 2 : 1), 0);
    s = r.state;
    expect(r.nextDeadlineMs).toBeUndefined();
    out.push(...r.actions.map((a) => `${a.kind} ${step}`));
  }
  return out;
}

describe('guard (pure)', () => {
  const base = guardSetActive(guardInit(parseChords(['ctrl+alt+backspace', 'alt+sysrq'])), 'alpha');
  const mods = ['leftctrl', 'rightctrl'].flatMap((c) =>
    ['leftalt', 'rightalt'].flatMap((a) => [
      [c, a],
      [a, c],
    ]),
  );

  it.each(mods)('swallows backspace after %s then %s, passes both modifiers', (m1, m2) => {
    const out = guardRun(base, [
      `${m1} down`,
      `${m2} down`,
      'backspace down',
      'backspace repeat',
      'backspace up',
      `${m2} up`,
      `${m1} up`,
    ]);
    expect(out).toEqual([
      `pass ${m1} down`,
      `pass ${m2} down`,
      'swallow backspace down',
      'swallow backspace repeat',
      'swallow backspace up',
      `pass ${m2} up`,
      `pass ${m1} up`,
    ]);
  });

  it('passes backspace when only one of the two modifiers is held', () => {
    expect(guardRun(base, ['leftctrl down', 'backspace down', 'backspace up'])).toEqual([
      'pass leftctrl down',
      'pass backspace down',
      'pass backspace up',
    ]);
  });

  it('does not block after the modifiers were released', () => {
    const out = guardRun(base, ['leftalt down', 'leftalt up', 'sysrq down', 'sysrq up']);
    expect(out.filter((l) => l.startsWith('swallow'))).toEqual([]);
  });

  it('applies a display’s extra chords only while that display is active', () => {
    const s = guardSetExtra(base, 'beta', parseChords(['ctrl+alt+q']));
    const steps = ['leftctrl down', 'leftalt down', 'q down', 'q up'];
    expect(guardRun(s, steps)).toContain('pass q down');
    expect(guardRun(guardSetActive(s, 'beta'), steps)).toContain('swallow q down');
  });
});

function routerRun(state0: RouterState, evs: InputEvent[]): { out: string[]; state: RouterState } {
  let s = state0;
  const out: string[] = [];
  for (const ev of evs) {
    const r = routerStep(s, ev, 0);
    s = r.state;
    out.push(
      ...r.actions.map((a) => JSON.stringify(a.kind === 'drop' ? { kind: 'drop', reason: a.reason } : a)),
    );
  }
  return { out, state: s };
}

const syn: InputEvent = { type: EV.SYN, code: SYN_REPORT, value: 0, timeMs: 0 };

describe('router (pure)', () => {
  const alpha = routerSetActive(routerInit(), 'alpha').state;

  it('drops everything while no display is active', () => {
    expect(routerRun(routerInit(), [key('a', 1)]).out).toEqual([
      JSON.stringify({ kind: 'drop', reason: 'no active display' }),
    ]);
  });

  it('flushes each display that got something, once per SYN report', () => {
    const r = routerRun(alpha, [key('a', 1), key('b', 1), syn, syn]);
    expect(r.out.filter((l) => l.includes('flush'))).toEqual([
      JSON.stringify({ kind: 'flush', display: 'alpha' }),
    ]);
  });

  it('sums relative motion within a report', () => {
    const rel = (code: number, value: number): InputEvent => ({ type: EV.REL, code, value, timeMs: 0 });
    const r = routerRun(alpha, [rel(REL.X, 3), rel(REL.X, 4), rel(REL.Y, -1), syn]);
    expect(r.out[0]).toBe(JSON.stringify({ kind: 'move', display: 'alpha', dx: 7, dy: -1 }));
  });

  it('scales absolute positions by the range of the device they came from', () => {
    const s = routerSetAbsRange(alpha, '/dev/input/event7', { min: 0, max: 1000 }, { min: 0, max: 500 });
    const abs = (code: number, value: number, source: string): InputEvent => ({
      type: EV.ABS,
      code,
      value,
      timeMs: 0,
      source,
    });
    const r = routerRun(s, [abs(ABS.X, 250, '/dev/input/event7'), abs(ABS.Y, 500, '/dev/input/event7'), syn]);
    expect(r.out[0]).toBe(JSON.stringify({ kind: 'abs', display: 'alpha', fx: 0.25, fy: 1 }));
    const clamp = routerRun(s, [abs(ABS.X, 5000, '/dev/input/event7'), syn]);
    expect(JSON.parse(clamp.out[0]!).fx).toBe(1);
  });

  it('does not send a second press of a key already down (two keyboards)', () => {
    const r = routerRun(alpha, [key('a', 1), key('a', 1)]);
    expect(r.out[1]).toBe(JSON.stringify({ kind: 'drop', reason: 'already down' }));
  });

  it('drops buttons X has no number for', () => {
    const r = routerRun(alpha, [{ type: EV.KEY, code: 0x118, value: 1, timeMs: 0 }]);
    expect(r.out[0]).toBe(JSON.stringify({ kind: 'drop', reason: 'unmapped button' }));
  });
});

describe('pipeline LED state per display', () => {
  it('reports each display’s own lock LEDs', async () => {
    const { InputPipeline } = await import('../../src/input/pipeline.js');
    const p = new InputPipeline(
      { windowMs: 500, ctrlAltDelToVm: true },
      {
        sinkFor: () => undefined,
        onMenuOpen: () => {},
        onDirectSwitch: () => {},
        onCycle: () => {},
        onMenuInput: () => {},
      },
    );
    p.setActive('alpha');
    p.feed(key('capslock', 1));
    p.feed(key('capslock', 0));
    p.setActive('beta');
    p.feed(key('numlock', 1));
    expect([p.ledMask('alpha'), p.ledMask('beta'), p.ledMask('gamma')]).toEqual([2, 1, 0]);
    p.close();
  });
});
