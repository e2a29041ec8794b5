import { describe, expect, it } from 'vitest';
import { EV, keyCode, MODIFIER_OF, SYN_REPORT } from '../../src/input/codes.js';
import { InputPipeline } from '../../src/input/pipeline.js';
import type { DisplaySink } from '../../src/input/sink.js';
import { mulberry32 as rng } from '../helpers/prng.js';
import { VirtualClock } from './sequence-harness.js';

const KEYS = [
  'leftctrl',
  'rightctrl',
  'leftalt',
  'rightalt',
  'backspace',
  'f1',
  'a',
  'scrolllock',
  '2',
  'delete',
  'capslock',
  'btn_left',
  'sysrq',
].map((n) => keyCode(n)!);
const DISPLAYS = ['alpha', 'beta', 'gamma'];
const BTN_LEFT = keyCode('btn_left')!;
const WINDOW_MS = 500;

interface Log {
  /** Per display: codes currently down as the display sees them. */
  down: Map<string, Set<number>>;
  violations: string[];
  presses: number;
}

function checkingSink(
  display: string,
  log: Log,
  menuOpen: () => boolean,
  physicallyBlocked: (code: number) => boolean,
): DisplaySink {
  const down = new Set<number>();
  log.down.set(display, down);
  const key = (code: number, isDown: boolean) => {
    if (isDown) {
      log.presses++;
      if (down.has(code)) log.violations.push(`${display}: ${code} pressed twice`);
      if (menuOpen()) log.violations.push(`${display}: ${code} pressed while the menu is open`);
      if (physicallyBlocked(code)) log.violations.push(`${display}: blocked chord key ${code} delivered`);
      down.add(code);
    } else if (!down.delete(code)) log.violations.push(`${display}: ${code} released without press`);
  };
  return {
    key,
    // X button 1 is BTN_LEFT, the only button in KEYS: keep Linux codes so the sets compare.
    button: (b, isDown) => key(b === 1 ? BTN_LEFT : 0x1000 + b, isDown),
    moveRelative: () => {},
    moveAbsolute: () => {},
    flush: () => {},
  };
}

function runRandom(seed: number, steps: number): Log {
  const rand = rng(seed);
  const clock = new VirtualClock();
  const log: Log = { down: new Map(), violations: [], presses: 0 };
  let menu = false;
  const physical = new Set<number>();
  let lastPress = 0;
  /** Arrival time of each key's last physical release. */
  const releasedAt = new Map<number, number>();
  /**
   * After every step: a key up on the keyboard is up on every display. The one allowed lag is a
   * release queued behind a held Scroll Lock tap, which goes out when the hotkey window ends.
   */
  const checkNoStuckKey = (step: number, what: string) => {
    for (const [d, set] of log.down)
      for (const code of set) {
        if (physical.has(code)) continue;
        const lag = clock.now() - (releasedAt.get(code) ?? Number.NEGATIVE_INFINITY);
        if (lag >= WINDOW_MS)
          log.violations.push(`step ${step} (${what}): ${d} still holds ${code}, released ${lag} ms ago`);
      }
  };
  const held = (names: string[]) => names.some((n) => physical.has(keyCode(n)!));
  /** Is `code` the key just pressed, completing a blocked chord (physical modifier state)? */
  const blockedNow = (code: number) => {
    if (code !== lastPress) return false;
    const ctrlAlt = held(['leftctrl', 'rightctrl']) && held(['leftalt', 'rightalt']);
    return (ctrlAlt && [keyCode('backspace'), keyCode('f1')].includes(code)) || code === keyCode('sysrq');
  };
  const sinks = new Map(DISPLAYS.map((d) => [d, checkingSink(d, log, () => menu, blockedNow)]));
  const p: InputPipeline = new InputPipeline(
    { windowMs: WINDOW_MS, ctrlAltDelToVm: true },
    {
      sinkFor: (d) => sinks.get(d),
      onMenuOpen: () => {
        menu = true;
        p.setMenuOpen(true);
      },
      onDirectSwitch: (n) => {
        menu = false;
        p.setMenuOpen(false);
        if (DISPLAYS[n - 1]) p.setActive(DISPLAYS[n - 1]!);
      },
      onCycle: () => {
        menu = false;
        p.setMenuOpen(false);
      },
      onMenuInput: () => {},
    },
    clock,
  );
  p.setActive('alpha');
  for (let i = 0; i < steps; i++) {
    const r = rand();
    let what: string;
    if (r < 0.1) {
      what = 'time';
      clock.advance(Math.floor(rand() * 700));
    } else if (r < 0.15) {
      what = 'switch';
      p.setActive(DISPLAYS[Math.floor(rand() * DISPLAYS.length)]!);
    } else if (r < 0.18 && menu) {
      what = 'menu close';
      menu = false;
      p.setMenuOpen(false);
    } else {
      const code = KEYS[Math.floor(rand() * KEYS.length)]!;
      const down = !physical.has(code);
      if (down) physical.add(code);
      else physical.delete(code);
      if (down) lastPress = code;
      else {
        releasedAt.set(code, clock.now());
        if (!MODIFIER_OF.has(code)) lastPress = 0;
      }
      what = `${code} ${down ? 'down' : 'up'}`;
      p.feed({ type: EV.KEY, code, value: down ? 1 : 0, timeMs: 0 });
      p.feed({ type: EV.SYN, code: SYN_REPORT, value: 0, timeMs: 0 });
    }
    checkNoStuckKey(i, what);
  }
  for (const code of physical) p.feed({ type: EV.KEY, code, value: 0, timeMs: 0 });
  clock.advance(1000);
  p.close();
  for (const [d, set] of log.down)
    if (set.size > 0) log.violations.push(`${d}: left stuck: ${[...set].join(',')}`);
  return log;
}

describe('pipeline invariants under random key sequences', () => {
  it.each(Array.from({ length: 40 }, (_, i) => 1000 + i))(
    'seed %i: no stuck, doubled or leaked key',
    (seed) => {
      const log = runRandom(seed, 400);
      expect(log.presses).toBeGreaterThan(0);
      expect(log.violations, `seed ${seed}`).toEqual([]);
    },
  );
});
