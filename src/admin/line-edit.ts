/** Pure one-line text editing for the admin screen's prompts and the login field. */
export interface LineState {
  readonly text: string;
  readonly max: number;
}

export type LineResult =
  | { readonly kind: 'edit'; readonly state: LineState }
  | { readonly kind: 'submit'; readonly text: string }
  | { readonly kind: 'cancel' };

const SUBMIT = new Set(['enter']);

/** `ch` is the typed character (if any), `key` blessed's key name (`backspace`, `C-u`, ...). */
export function editLine(s: LineState, ch: string | undefined, key: string): LineResult {
  if (SUBMIT.has(key)) return { kind: 'submit', text: s.text };
  if (key === 'escape') return { kind: 'cancel' };
  if (key === 'backspace') return { kind: 'edit', state: { ...s, text: s.text.slice(0, -1) } };
  if (key === 'C-u') return { kind: 'edit', state: { ...s, text: '' } };
  const printable = ch !== undefined && ch.length === 1 && ch >= ' ' && ch !== '\x7f';
  if (!printable || s.text.length >= s.max) return { kind: 'edit', state: s };
  return { kind: 'edit', state: { ...s, text: s.text + ch } };
}
