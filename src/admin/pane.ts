import type { AdminRpc } from './rpc.js';
import { errorText } from './rpc.js';
import type { Ui } from './ui.js';

/** One screen of the admin app (right pane): data loaded over RPC, rendered as tagged text. */
export interface PaneCtx {
  readonly rpc: AdminRpc;
  readonly ui: Ui;
  status(msg: string, kind?: 'ok' | 'error' | 'info'): void;
  /** Reload and repaint the current pane. */
  refresh(): Promise<void>;
}

export interface Pane {
  readonly title: string;
  /** Key hints for the status line while the pane has focus. */
  readonly hint: string;
  /** Poll interval while shown (live state), if any. */
  readonly pollMs?: number;
  load(ctx: PaneCtx): Promise<void>;
  render(width: number): string;
  /** True when the key was the pane's; long actions run in the background and report to the status line. */
  onKey?(ch: string | undefined, key: string, ctx: PaneCtx): boolean;
}

/** Run an action, report its outcome on the status line, refresh the pane afterwards. */
export function act(ctx: PaneCtx, what: string, fn: () => Promise<string | undefined>): void {
  ctx.status(`${what}...`, 'info');
  fn().then(
    (msg) => {
      if (msg !== undefined) ctx.status(msg, 'ok');
      return ctx.refresh();
    },
    (err) => ctx.status(`${what}: ${errorText(err)}`, 'error'),
  );
}

/** A selection within a list pane: up/down/home/end, clamped. */
export function moveSelection(index: number, count: number, key: string): number | undefined {
  const table: Record<string, number> = {
    up: index - 1,
    down: index + 1,
    home: 0,
    end: count - 1,
    k: index - 1,
    j: index + 1,
  };
  const next = table[key];
  if (next === undefined || count === 0) return undefined;
  return Math.max(0, Math.min(count - 1, next));
}

export const SEL = (text: string, selected: boolean): string =>
  selected ? `{black-fg}{yellow-bg}${text}{/yellow-bg}{/black-fg}` : text;
