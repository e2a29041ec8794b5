import type { Chord } from './chord.js';
import { EV, KEY_DOWN, KEY_UP, MODIFIER_OF, type Modifier } from './codes.js';
import type { InputEvent } from './event.js';

/**
 * Guard: swallows blocked chords. A chord matches when its final key is pressed while all of its
 * modifier families are held (extra modifiers do not unblock it). Neither the press nor the release
 * (nor repeats) of that key reach any display; modifiers always pass, since they went out already.
 * Pure: `(state, event, nowMs)` in, `{state, actions, nextDeadlineMs}` out.
 */
export interface GuardState {
  /** Chords blocked on every display, indexed by final key. */
  readonly global: ReadonlyMap<number, readonly Chord[]>;
  /** Extra chords per display (backend host keys), indexed by final key. */
  readonly extra: ReadonlyMap<string, ReadonlyMap<number, readonly Chord[]>>;
  readonly active: string | undefined;
  /** Modifier keys physically down (left and right kept apart). */
  readonly modsDown: ReadonlySet<number>;
  /** Keys whose press was swallowed (→ the chord): their repeats and release are swallowed too. */
  readonly swallowed: ReadonlyMap<number, string>;
}

export type GuardAction =
  | { kind: 'pass'; ev: InputEvent }
  | { kind: 'swallow'; ev: InputEvent; chord: string };

export interface GuardResult {
  state: GuardState;
  actions: GuardAction[];
  nextDeadlineMs: undefined;
}

export function indexChords(chords: readonly Chord[]): ReadonlyMap<number, readonly Chord[]> {
  const m = new Map<number, Chord[]>();
  for (const c of chords) m.set(c.key, [...(m.get(c.key) ?? []), c]);
  return m;
}

export function guardInit(blocked: readonly Chord[]): GuardState {
  return {
    global: indexChords(blocked),
    extra: new Map(),
    active: undefined,
    modsDown: new Set(),
    swallowed: new Map(),
  };
}

export function guardSetActive(state: GuardState, display: string): GuardState {
  return { ...state, active: display };
}

export function guardSetExtra(state: GuardState, display: string, chords: readonly Chord[]): GuardState {
  const extra = new Map(state.extra);
  extra.set(display, indexChords(chords));
  return { ...state, extra };
}

function families(modsDown: ReadonlySet<number>): Set<Modifier> {
  const out = new Set<Modifier>();
  for (const code of modsDown) {
    const m = MODIFIER_OF.get(code);
    if (m) out.add(m);
  }
  return out;
}

/** The blocked chord this press completes, if any. */
export function matchChord(state: GuardState, key: number): Chord | undefined {
  const held = families(state.modsDown);
  const candidates = [
    ...(state.global.get(key) ?? []),
    ...((state.active !== undefined && state.extra.get(state.active)?.get(key)) || []),
  ];
  return candidates.find((c) => c.mods.every((m) => held.has(m)));
}

const pass = (state: GuardState, ev: InputEvent): GuardResult => ({
  state,
  actions: [{ kind: 'pass', ev }],
  nextDeadlineMs: undefined,
});

export function guardStep(state: GuardState, ev: InputEvent, _nowMs: number): GuardResult {
  if (ev.type !== EV.KEY) return pass(state, ev);
  if (MODIFIER_OF.has(ev.code)) {
    const modsDown = new Set(state.modsDown);
    if (ev.value === KEY_UP) modsDown.delete(ev.code);
    else modsDown.add(ev.code);
    return pass({ ...state, modsDown }, ev);
  }
  const held = state.swallowed.get(ev.code);
  if (held !== undefined) {
    const swallowed = new Map(state.swallowed);
    if (ev.value === KEY_UP) swallowed.delete(ev.code);
    return {
      state: { ...state, swallowed },
      actions: [{ kind: 'swallow', ev, chord: held }],
      nextDeadlineMs: undefined,
    };
  }
  if (ev.value !== KEY_DOWN) return pass(state, ev);
  const chord = matchChord(state, ev.code);
  if (!chord) return pass(state, ev);
  const swallowed = new Map(state.swallowed).set(ev.code, chord.text);
  return {
    state: { ...state, swallowed },
    actions: [{ kind: 'swallow', ev, chord: chord.text }],
    nextDeadlineMs: undefined,
  };
}
