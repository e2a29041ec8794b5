import { KEY_DOWN, keyCode } from '../input/codes.js';

/**
 * The `ask` confirmation (control policy action `ask`), pure. Only the person at the physical
 * keyboard answers: Enter allows, Esc denies, no answer within the timeout denies.
 *
 * A guest must not be able to hold the keyboard with questions: each VM has at most one question
 * pending (a second is refused at once), a VM whose question was denied waits out a cooldown, and
 * the menu always wins: opening it pauses the question behind it (`pause`), closing it brings the
 * question back (`resume`).
 */
export interface AskRequest {
  readonly id: string;
  /** The VM whose guest channel made the call. */
  readonly from: string;
  readonly method: string;
  readonly params?: unknown;
}

export interface AskState {
  readonly current: (AskRequest & { readonly deadlineMs: number }) | null;
  readonly queue: readonly AskRequest[];
  readonly timeoutMs: number;
  readonly cooldownMs: number;
  /** VM → time until which its questions are refused (after a deny). */
  readonly cooldowns: Readonly<Record<string, number>>;
  /** The menu is open: the current question waits behind it, keys are not answers. */
  readonly paused: boolean;
}

export type AskEvent =
  | { readonly kind: 'ask'; readonly request: AskRequest }
  | { readonly kind: 'key'; readonly code: number; readonly value: number }
  /** The caller went away (channel closed): drop its pending question. */
  | { readonly kind: 'cancel'; readonly id: string }
  | { readonly kind: 'pause' }
  | { readonly kind: 'resume' }
  | { readonly kind: 'tick' };

export type AskAction =
  | { readonly kind: 'show'; readonly request: AskRequest }
  | { readonly kind: 'hide' }
  | { readonly kind: 'answer'; readonly id: string; readonly allow: boolean; readonly why: AnswerWhy };

/** `busy`: that VM already has a question pending; `cooldown`: it was denied a moment ago. */
export type AnswerWhy = 'enter' | 'escape' | 'timeout' | 'cancelled' | 'busy' | 'cooldown';

export interface AskStep {
  readonly state: AskState;
  readonly actions: readonly AskAction[];
  readonly nextDeadlineMs: number | null;
}

export function initialAsk(timeoutMs = 60_000, cooldownMs = 30_000): AskState {
  return { current: null, queue: [], timeoutMs, cooldownMs, cooldowns: {}, paused: false };
}

const WIDTH = 72;
/** One value never takes more than this; every key is still shown. */
const MAX_VALUE = 240;

function valueText(v: unknown): string {
  const t = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  // ASCII ellipsis: the overlay's core font is ISO 8859-1.
  return t.length > MAX_VALUE ? `${t.slice(0, MAX_VALUE - 3)}...(${t.length} chars)` : t;
}

/** Compact one-line rendering of params: `{name: beta, force: true}` (logs, tests). */
export function summarizeParams(params: unknown): string {
  if (params === undefined || params === null) return '';
  if (typeof params !== 'object' || Array.isArray(params)) return valueText(params);
  return `{${Object.entries(params as Record<string, unknown>)
    .map(([k, v]) => `${k}: ${valueText(v)}`)
    .join(', ')}}`;
}

/** Hard-wrap `text` to `width` columns, continuation lines indented. */
export function wrap(text: string, width = WIDTH, indent = '    '): string[] {
  const out: string[] = [];
  let rest = text;
  let first = true;
  while (rest.length > 0) {
    const room = first ? width : width - indent.length;
    out.push((first ? '' : indent) + rest.slice(0, room));
    rest = rest.slice(room);
    first = false;
  }
  return out.length ? out : [''];
}

/**
 * The dialog's lines, shared by the overlay and tests: the question, then every param on its own
 * line(s), wrapped, never cut off, so nothing (e.g. `replace: true`) can hide past the edge.
 */
export function askText(r: AskRequest): { question: string; details: string[]; hint: string } {
  const params =
    r.params !== null && typeof r.params === 'object' && !Array.isArray(r.params)
      ? Object.entries(r.params as Record<string, unknown>)
      : r.params === undefined || r.params === null
        ? []
        : [['params', r.params] as const];
  return {
    question: `VM ${r.from} asks to call ${r.method}`,
    details: params.flatMap(([k, v]) => wrap(`  ${k}: ${valueText(v)}`)),
    hint: 'Enter allow  \xb7  Esc deny',
  };
}

const deadline = (s: AskState): number | null => s.current?.deadlineMs ?? null;

const out = (state: AskState, actions: AskAction[]): AskStep => ({
  state,
  actions,
  nextDeadlineMs: deadline(state),
});

function withCooldown(s: AskState, from: string, nowMs: number): AskState {
  const kept = Object.fromEntries(Object.entries(s.cooldowns).filter(([, until]) => until > nowMs));
  return { ...s, cooldowns: { ...kept, [from]: nowMs + s.cooldownMs } };
}

/** Answer the current question and bring up the next queued one, if any. */
function answer(s: AskState, allow: boolean, why: AnswerWhy, nowMs: number): AskStep {
  if (!s.current) return out(s, []);
  const actions: AskAction[] = [{ kind: 'answer', id: s.current.id, allow, why }];
  const base = !allow && (why === 'escape' || why === 'timeout') ? withCooldown(s, s.current.from, nowMs) : s;
  const [next, ...rest] = base.queue;
  if (!next) return out({ ...base, current: null }, s.paused ? actions : [...actions, { kind: 'hide' }]);
  const current = { ...next, deadlineMs: nowMs + s.timeoutMs };
  const shown: AskAction[] = s.paused ? [] : [{ kind: 'show', request: next }];
  return out({ ...base, current, queue: rest }, [...actions, ...shown]);
}

const ENTER = new Set([keyCode('enter')!, keyCode('kpenter')!]);
const ESC = keyCode('esc')!;

function onKey(s: AskState, code: number, value: number, nowMs: number): AskStep {
  if (!s.current || s.paused || value !== KEY_DOWN) return out(s, []);
  if (ENTER.has(code)) return answer(s, true, 'enter', nowMs);
  if (code === ESC) return answer(s, false, 'escape', nowMs);
  return out(s, []);
}

function onCancel(s: AskState, id: string, nowMs: number): AskStep {
  if (s.current?.id === id) return answer(s, false, 'cancelled', nowMs);
  const queue = s.queue.filter((r) => r.id !== id);
  if (queue.length === s.queue.length) return out(s, []);
  return out({ ...s, queue }, [{ kind: 'answer', id, allow: false, why: 'cancelled' }]);
}

function onAsk(s: AskState, r: AskRequest, nowMs: number): AskStep {
  const refuse = (why: AnswerWhy) => out(s, [{ kind: 'answer', id: r.id, allow: false, why }]);
  if (s.current?.from === r.from || s.queue.some((q) => q.from === r.from)) return refuse('busy');
  if ((s.cooldowns[r.from] ?? 0) > nowMs) return refuse('cooldown');
  if (s.current) return out({ ...s, queue: [...s.queue, r] }, []);
  const state = { ...s, current: { ...r, deadlineMs: nowMs + s.timeoutMs } };
  return out(state, s.paused ? [] : [{ kind: 'show', request: r }]);
}

export function askStep(s: AskState, ev: AskEvent, nowMs: number): AskStep {
  switch (ev.kind) {
    case 'ask':
      return onAsk(s, ev.request, nowMs);
    case 'key':
      return onKey(s, ev.code, ev.value, nowMs);
    case 'cancel':
      return onCancel(s, ev.id, nowMs);
    case 'pause':
      if (s.paused) return out(s, []);
      return out({ ...s, paused: true }, s.current ? [{ kind: 'hide' }] : []);
    case 'resume':
      if (!s.paused) return out(s, []);
      return out({ ...s, paused: false }, s.current ? [{ kind: 'show', request: s.current }] : []);
    case 'tick':
      return s.current && nowMs >= s.current.deadlineMs ? answer(s, false, 'timeout', nowMs) : out(s, []);
  }
}
