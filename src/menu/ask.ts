import { KEY_DOWN, keyCode } from '../input/codes.js';

/**
 * The `ask` confirmation (control policy action `ask`), pure. Only the person at the physical
 * keyboard answers: Enter allows, Esc denies, no answer within the timeout denies.
 * Requests queue; one is shown at a time.
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
}

export type AskEvent =
  | { readonly kind: 'ask'; readonly request: AskRequest }
  | { readonly kind: 'key'; readonly code: number; readonly value: number }
  /** The caller went away (channel closed): drop its pending question. */
  | { readonly kind: 'cancel'; readonly id: string }
  | { readonly kind: 'tick' };

export type AskAction =
  | { readonly kind: 'show'; readonly request: AskRequest }
  | { readonly kind: 'hide' }
  | { readonly kind: 'answer'; readonly id: string; readonly allow: boolean; readonly why: AnswerWhy };

export type AnswerWhy = 'enter' | 'escape' | 'timeout' | 'cancelled';

export interface AskStep {
  readonly state: AskState;
  readonly actions: readonly AskAction[];
  readonly nextDeadlineMs: number | null;
}

export function initialAsk(timeoutMs = 60_000): AskState {
  return { current: null, queue: [], timeoutMs };
}

/** Compact one-line rendering of params: `{name: beta, force: true}`. */
export function summarizeParams(params: unknown, max = 60): string {
  if (params === undefined || params === null) return '';
  const text =
    typeof params === 'object' && !Array.isArray(params)
      ? `{${Object.entries(params as Record<string, unknown>)
          .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(', ')}}`
      : JSON.stringify(params);
  // ASCII ellipsis: the overlay's core font is ISO 8859-1.
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** The dialog's two lines, shared by the overlay and tests. */
export function askText(r: AskRequest): { question: string; hint: string } {
  const p = summarizeParams(r.params);
  return {
    question: `VM ${r.from} asks to call ${r.method}${p ? ` ${p}` : ''}`,
    hint: 'Enter allow  ·  Esc deny',
  };
}

const deadline = (s: AskState): number | null => s.current?.deadlineMs ?? null;

const out = (state: AskState, actions: AskAction[]): AskStep => ({
  state,
  actions,
  nextDeadlineMs: deadline(state),
});

/** Answer the current question and bring up the next queued one, if any. */
function answer(s: AskState, allow: boolean, why: AnswerWhy, nowMs: number): AskStep {
  if (!s.current) return out(s, []);
  const actions: AskAction[] = [{ kind: 'answer', id: s.current.id, allow, why }];
  const [next, ...rest] = s.queue;
  if (!next) return out({ ...s, current: null }, [...actions, { kind: 'hide' }]);
  const current = { ...next, deadlineMs: nowMs + s.timeoutMs };
  return out({ ...s, current, queue: rest }, [...actions, { kind: 'show', request: next }]);
}

const ENTER = new Set([keyCode('enter')!, keyCode('kpenter')!]);
const ESC = keyCode('esc')!;

function onKey(s: AskState, code: number, value: number, nowMs: number): AskStep {
  if (!s.current || value !== KEY_DOWN) return out(s, []);
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

export function askStep(s: AskState, ev: AskEvent, nowMs: number): AskStep {
  switch (ev.kind) {
    case 'ask':
      if (s.current) return out({ ...s, queue: [...s.queue, ev.request] }, []);
      return out({ ...s, current: { ...ev.request, deadlineMs: nowMs + s.timeoutMs } }, [
        { kind: 'show', request: ev.request },
      ]);
    case 'key':
      return onKey(s, ev.code, ev.value, nowMs);
    case 'cancel':
      return onCancel(s, ev.id, nowMs);
    case 'tick':
      return s.current && nowMs >= s.current.deadlineMs ? answer(s, false, 'timeout', nowMs) : out(s, []);
  }
}
