import { ABS, EV, KEY_REPEAT, KEY_UP, REL, SYN_REPORT } from './codes.js';
import type { InputEvent } from './event.js';
import { isPadContact, PAD_IDLE, type PadState, padContact, padMove } from './touchpad.js';

/**
 * Router: keys, buttons and pointer motion to displays. Each release goes to the display that got
 * the press, even after a switch; autorepeat (value 2) is dropped (the X server repeats itself);
 * lock keys toggle that display's LED state, mirrored on the keyboards while it is active;
 * relative motion is summed per SYN report, absolute positions become 0..1 screen fractions.
 * Pure: `(state, event, nowMs)` in, `{state, actions, nextDeadlineMs}` out.
 */
export interface AxisRange {
  readonly min: number;
  readonly max: number;
}

export interface RouterState {
  readonly active: string | undefined;
  /** Key or button code → display that received its press. */
  readonly owner: ReadonlyMap<number, string>;
  /** Lock LED mask per display (bit 0 NumLock, 1 CapsLock, 2 ScrollLock). */
  readonly leds: ReadonlyMap<string, number>;
  /** Absolute axis ranges per source (device path); DEFAULT_ABS_RANGE when unknown. */
  readonly absRanges: ReadonlyMap<string, { x: AxisRange; y: AxisRange; touchpad: boolean }>;
  /** Finger state per touchpad source. */
  readonly pads: ReadonlyMap<string, PadState>;
  /** Last absolute position per source, as fractions (an update may carry one axis only). */
  readonly absPos: ReadonlyMap<string, { fx: number; fy: number }>;
  /** Motion gathered since the last SYN_REPORT. */
  readonly dx: number;
  readonly dy: number;
  readonly absDirty: string | undefined;
  /** Displays that got something since the last SYN_REPORT (they get a flush). */
  readonly touched: readonly string[];
}

export type RouterAction =
  | { kind: 'key'; display: string; code: number; down: boolean }
  | { kind: 'button'; display: string; button: number; down: boolean }
  | { kind: 'move'; display: string; dx: number; dy: number }
  | { kind: 'abs'; display: string; fx: number; fy: number }
  | { kind: 'flush'; display: string }
  | { kind: 'leds'; mask: number }
  | { kind: 'drop'; ev: InputEvent; reason: string };

export interface RouterResult {
  state: RouterState;
  actions: RouterAction[];
  nextDeadlineMs: undefined;
}

/** Range assumed for a source that never told its own (QEMU's and most tablets' 0..32767). */
export const DEFAULT_ABS_RANGE: AxisRange = { min: 0, max: 32767 };

/** Linux button code → X button number. */
export const X_BUTTON: ReadonlyMap<number, number> = new Map([
  [0x110, 1], // BTN_LEFT
  [0x111, 3], // BTN_RIGHT
  [0x112, 2], // BTN_MIDDLE
  [0x113, 8], // BTN_SIDE
  [0x114, 9], // BTN_EXTRA
  [0x115, 9], // BTN_FORWARD
  [0x116, 8], // BTN_BACK
  [0x14a, 1], // BTN_TOUCH
]);

/** Lock key → LED bit. */
export const LOCK_LED: ReadonlyMap<number, number> = new Map([
  [69, 0], // numlock
  [58, 1], // capslock
  [70, 2], // scrolllock
]);

/** Wheel axes → [X button for positive, for negative]. */
const WHEEL_BUTTONS: ReadonlyMap<number, readonly [number, number]> = new Map([
  [REL.WHEEL, [4, 5] as const],
  [REL.HWHEEL, [7, 6] as const],
]);

const NONE: readonly string[] = [];

export function routerInit(): RouterState {
  return {
    active: undefined,
    owner: new Map(),
    leds: new Map(),
    absRanges: new Map(),
    absPos: new Map(),
    pads: new Map(),
    dx: 0,
    dy: 0,
    absDirty: undefined,
    touched: NONE,
  };
}

const done = (state: RouterState, actions: RouterAction[]): RouterResult => ({
  state,
  actions,
  nextDeadlineMs: undefined,
});
const touch = (s: RouterState, display: string): RouterState =>
  s.touched.includes(display) ? s : { ...s, touched: [...s.touched, display] };

/** Switch the target; keys still down stay with their display. Mirrors the new display's LEDs. */
export function routerSetActive(state: RouterState, display: string): RouterResult {
  return done({ ...state, active: display }, [{ kind: 'leds', mask: state.leds.get(display) ?? 0 }]);
}

export function routerSetAbsRange(
  state: RouterState,
  source: string,
  x: AxisRange,
  y: AxisRange,
  touchpad = false,
): RouterState {
  return { ...state, absRanges: new Map(state.absRanges).set(source, { x, y, touchpad }) };
}

/** Release every held key and button on the display that has it (shutdown: VMs outlive kvmux). */
export function routerReleaseAll(state: RouterState): RouterResult {
  const actions: RouterAction[] = [];
  const displays = new Set<string>();
  for (const [code, display] of state.owner) {
    const button = X_BUTTON.get(code);
    actions.push(
      button !== undefined
        ? { kind: 'button', display, button, down: false }
        : { kind: 'key', display, code, down: false },
    );
    displays.add(display);
  }
  for (const display of displays) actions.push({ kind: 'flush', display });
  return done({ ...state, owner: new Map() }, actions);
}

type Handler = (state: RouterState, ev: InputEvent) => RouterResult;

const HANDLERS: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  [EV.SYN, onSyn],
  [EV.KEY, onKey],
  [EV.REL, onRel],
  [EV.ABS, onAbs],
]);

export function routerStep(state: RouterState, ev: InputEvent, _nowMs: number): RouterResult {
  const handler = HANDLERS.get(ev.type);
  return handler ? handler(state, ev) : done(state, [{ kind: 'drop', ev, reason: 'event type not routed' }]);
}

function onKey(state: RouterState, ev: InputEvent): RouterResult {
  if (ev.value === KEY_REPEAT) return done(state, [{ kind: 'drop', ev, reason: 'autorepeat' }]);
  const source = ev.source ?? '';
  if (isPadContact(ev.code) && state.absRanges.get(source)?.touchpad) {
    const pad = padContact(ev.value !== KEY_UP);
    return done({ ...state, pads: new Map(state.pads).set(source, pad) }, []);
  }
  const button = X_BUTTON.get(ev.code);
  const isButton = ev.code >= 0x100 && ev.code < 0x160;
  if (isButton && button === undefined) return done(state, [{ kind: 'drop', ev, reason: 'unmapped button' }]);
  const emit = (display: string, down: boolean): RouterAction =>
    button !== undefined
      ? { kind: 'button', display, button, down }
      : { kind: 'key', display, code: ev.code, down };
  if (ev.value === KEY_UP) {
    const display = state.owner.get(ev.code);
    if (display === undefined) return done(state, [{ kind: 'drop', ev, reason: 'release without press' }]);
    const owner = new Map(state.owner);
    owner.delete(ev.code);
    return done(touch({ ...state, owner }, display), [emit(display, false)]);
  }
  const display = state.active;
  if (display === undefined) return done(state, [{ kind: 'drop', ev, reason: 'no active display' }]);
  if (state.owner.has(ev.code)) return done(state, [{ kind: 'drop', ev, reason: 'already down' }]);
  let next = touch({ ...state, owner: new Map(state.owner).set(ev.code, display) }, display);
  const actions: RouterAction[] = [emit(display, true)];
  const bit = LOCK_LED.get(ev.code);
  if (bit !== undefined) {
    const mask = (state.leds.get(display) ?? 0) ^ (1 << bit);
    next = { ...next, leds: new Map(state.leds).set(display, mask) };
    actions.push({ kind: 'leds', mask });
  }
  return done(next, actions);
}

function onRel(state: RouterState, ev: InputEvent): RouterResult {
  const display = state.active;
  if (display === undefined) return done(state, [{ kind: 'drop', ev, reason: 'no active display' }]);
  if (ev.code === REL.X) return done(touch({ ...state, dx: state.dx + ev.value }, display), []);
  if (ev.code === REL.Y) return done(touch({ ...state, dy: state.dy + ev.value }, display), []);
  const wheel = WHEEL_BUTTONS.get(ev.code);
  if (!wheel || ev.value === 0) return done(state, [{ kind: 'drop', ev, reason: 'unrouted axis' }]);
  const button = ev.value > 0 ? wheel[0] : wheel[1];
  const actions: RouterAction[] = [];
  for (let i = 0; i < Math.min(Math.abs(ev.value), 16); i++)
    actions.push(
      { kind: 'button', display, button, down: true },
      { kind: 'button', display, button, down: false },
    );
  return done(touch(state, display), actions);
}

function fraction(v: number, r: AxisRange): number {
  const f = r.max > r.min ? (v - r.min) / (r.max - r.min) : 0;
  return Math.min(1, Math.max(0, f));
}

function onAbs(state: RouterState, ev: InputEvent): RouterResult {
  const display = state.active;
  if (display === undefined) return done(state, [{ kind: 'drop', ev, reason: 'no active display' }]);
  if (ev.code !== ABS.X && ev.code !== ABS.Y)
    return done(state, [{ kind: 'drop', ev, reason: 'unrouted axis' }]);
  const source = ev.source ?? '';
  const range = state.absRanges.get(source) ?? {
    x: DEFAULT_ABS_RANGE,
    y: DEFAULT_ABS_RANGE,
    touchpad: false,
  };
  if (range.touchpad) return onPadAbs(state, ev, source, range, display);
  const pos = state.absPos.get(source) ?? { fx: 0, fy: 0 };
  const next =
    ev.code === ABS.X
      ? { ...pos, fx: fraction(ev.value, range.x) }
      : { ...pos, fy: fraction(ev.value, range.y) };
  return done(
    touch({ ...state, absPos: new Map(state.absPos).set(source, next), absDirty: source }, display),
    [],
  );
}

function onPadAbs(
  state: RouterState,
  ev: InputEvent,
  source: string,
  range: { x: AxisRange; y: AxisRange },
  display: string,
): RouterResult {
  const axis = ev.code === ABS.X ? 'x' : 'y';
  const [pad, delta] = padMove(state.pads.get(source) ?? PAD_IDLE, axis, ev.value, range[axis]);
  const moved = axis === 'x' ? { dx: state.dx + delta } : { dy: state.dy + delta };
  return done(touch({ ...state, ...moved, pads: new Map(state.pads).set(source, pad) }, display), []);
}

function onSyn(state: RouterState, ev: InputEvent): RouterResult {
  if (ev.code !== SYN_REPORT) return done(state, []);
  if (state.touched.length === 0 && state.absDirty === undefined) return done(state, []);
  const actions: RouterAction[] = [];
  const display = state.active;
  // Whole pixels only; a touchpad's fractions carry over to the next report.
  const mx = Math.trunc(state.dx);
  const my = Math.trunc(state.dy);
  if (display !== undefined && (mx !== 0 || my !== 0))
    actions.push({ kind: 'move', display, dx: mx, dy: my });
  const pos = state.absDirty !== undefined ? state.absPos.get(state.absDirty) : undefined;
  if (display !== undefined && pos) actions.push({ kind: 'abs', display, fx: pos.fx, fy: pos.fy });
  for (const d of state.touched) actions.push({ kind: 'flush', display: d });
  return done(
    { ...state, dx: state.dx - mx, dy: state.dy - my, absDirty: undefined, touched: NONE },
    actions,
  );
}
