import { digitOf, EV, KEY_DOWN, KEY_REPEAT, KEY_UP } from './codes.js';
import type { InputEvent } from './event.js';

/**
 * Hotkey: double tap of one key (Scroll Lock) opens the menu; `tap tap <digit>` switches directly.
 *
 * - idle → the hotkey press is held back (pending) until `windowMs` after it.
 * - pending: a second hotkey press → `menu-open`, both taps swallowed; releases and repeats of
 *   other keys queue behind the held tap; any other key PRESS first flushes the held tap and the
 *   queue, then passes: so order is never changed and normal typing gets no added delay.
 * - deadline reached while pending → the held tap and its queue are replayed in order.
 * - after a double tap, a digit press within `windowMs` → `switch n` (1..9, 0 means 10), swallowed;
 *   the next/previous key there → `cycle ±1`, swallowed.
 *   The menu opens at the second tap already (no window of delay before it shows); a direct switch
 *   then ends it, so the menu owner dismisses it on `switch`.
 * Pure: events carry no clock of their own here; `nowMs` is the arrival time.
 */
export interface HotkeyOptions {
  readonly key: number;
  readonly windowMs: number;
  /** `tap tap <next>` / `tap tap <previous>`: the next or previous display (default → and ←). */
  readonly nextKey?: number;
  readonly prevKey?: number;
}

type Phase = 'idle' | 'pending' | 'digit';

export interface HotkeyState {
  readonly phase: Phase;
  /** While pending: the held tap's events and what queued behind them, in arrival order. */
  readonly held: readonly InputEvent[];
  readonly deadline: number | undefined;
  /** Keys whose press was swallowed: their release and repeats are swallowed too. */
  readonly swallowed: ReadonlySet<number>;
}

export type HotkeyAction =
  | { kind: 'pass'; ev: InputEvent }
  | { kind: 'swallow'; ev: InputEvent; reason: string }
  | { kind: 'menu-open' }
  | { kind: 'switch'; index: number }
  | { kind: 'cycle'; delta: 1 | -1 };

export interface HotkeyResult {
  state: HotkeyState;
  actions: HotkeyAction[];
  nextDeadlineMs: number | undefined;
}

export const hotkeyInit = (): HotkeyState => ({
  phase: 'idle',
  held: [],
  deadline: undefined,
  swallowed: new Set(),
});

const IDLE_KEEP = (s: HotkeyState): HotkeyState => ({ ...s, phase: 'idle', held: [], deadline: undefined });

function result(state: HotkeyState, actions: HotkeyAction[]): HotkeyResult {
  return { state, actions, nextDeadlineMs: state.deadline };
}

/** Time passes: a pending tap whose window ran out is replayed; a digit window just closes. */
export function hotkeyTick(state: HotkeyState, nowMs: number): HotkeyResult {
  if (state.deadline === undefined || nowMs < state.deadline) return result(state, []);
  const actions: HotkeyAction[] =
    state.phase === 'pending' ? state.held.map((ev) => ({ kind: 'pass', ev })) : [];
  return result(IDLE_KEEP(state), actions);
}

export function hotkeyStep(
  opts: HotkeyOptions,
  state0: HotkeyState,
  ev: InputEvent,
  nowMs: number,
): HotkeyResult {
  const expired = state0.deadline === undefined ? undefined : hotkeyTick(state0, nowMs);
  const state = expired?.state ?? state0;
  const r = ev.type !== EV.KEY ? result(state, [{ kind: 'pass', ev }]) : onKey(opts, state, ev, nowMs);
  return expired?.actions.length ? { ...r, actions: [...expired.actions, ...r.actions] } : r;
}

function onKey(opts: HotkeyOptions, state: HotkeyState, ev: InputEvent, nowMs: number): HotkeyResult {
  if (state.swallowed.has(ev.code)) {
    const swallowed = new Set(state.swallowed);
    if (ev.value === KEY_UP) swallowed.delete(ev.code);
    return result({ ...state, swallowed }, [{ kind: 'swallow', ev, reason: 'hotkey' }]);
  }
  if (state.phase === 'pending') return onPending(opts, state, ev, nowMs);
  if (state.phase === 'digit') return onDigitWindow(opts, state, ev);
  if (ev.code === opts.key && ev.value === KEY_DOWN)
    return result({ ...state, phase: 'pending', held: [ev], deadline: nowMs + opts.windowMs }, []);
  return result(state, [{ kind: 'pass', ev }]);
}

function onPending(opts: HotkeyOptions, state: HotkeyState, ev: InputEvent, nowMs: number): HotkeyResult {
  if (ev.code === opts.key && ev.value === KEY_DOWN) {
    const actions: HotkeyAction[] = state.held.map((h) =>
      h.code === opts.key ? { kind: 'swallow', ev: h, reason: 'double tap' } : { kind: 'pass', ev: h },
    );
    actions.push({ kind: 'swallow', ev, reason: 'double tap' }, { kind: 'menu-open' });
    const swallowed = new Set(state.swallowed).add(ev.code);
    return result({ phase: 'digit', held: [], deadline: nowMs + opts.windowMs, swallowed }, actions);
  }
  if (ev.code === opts.key && ev.value === KEY_REPEAT)
    return result(state, [{ kind: 'swallow', ev, reason: 'hotkey repeat' }]);
  if (ev.value !== KEY_DOWN || ev.code === opts.key)
    return result({ ...state, held: [...state.held, ev] }, []);
  const actions: HotkeyAction[] = [...state.held, ev].map((h) => ({ kind: 'pass', ev: h }));
  return result(IDLE_KEEP(state), actions);
}

function cycleOf(opts: HotkeyOptions, code: number): 1 | -1 | undefined {
  if (code === opts.nextKey) return 1;
  if (code === opts.prevKey) return -1;
  return undefined;
}

function onDigitWindow(opts: HotkeyOptions, state: HotkeyState, ev: InputEvent): HotkeyResult {
  const delta = ev.value === KEY_DOWN ? cycleOf(opts, ev.code) : undefined;
  if (delta !== undefined) {
    const swallowed = new Set(state.swallowed).add(ev.code);
    return result({ ...IDLE_KEEP(state), swallowed }, [
      { kind: 'swallow', ev, reason: delta > 0 ? 'next display' : 'previous display' },
      { kind: 'cycle', delta },
    ]);
  }
  const digit = ev.value === KEY_DOWN ? digitOf(ev.code) : undefined;
  if (digit === undefined) {
    // Anything else ends the digit window and goes on (to the menu, which is open by now).
    return result(ev.value === KEY_DOWN ? IDLE_KEEP(state) : state, [{ kind: 'pass', ev }]);
  }
  const swallowed = new Set(state.swallowed).add(ev.code);
  return result({ ...IDLE_KEEP(state), swallowed }, [
    { kind: 'swallow', ev, reason: 'direct switch' },
    { kind: 'switch', index: digit === 0 ? 10 : digit },
  ]);
}
