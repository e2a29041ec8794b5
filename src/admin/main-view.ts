import blessed from 'blessed';
import { errText } from '../util/errors.js';
import { escapeTags, wrapHints } from './format.js';
import type { Pane, PaneCtx } from './pane.js';
import { logsPane, networksPane, switchPane } from './pane-info.js';
import { hostUpdatePane, uploadPane } from './pane-transfer.js';
import { vmsPane } from './pane-vms.js';
import type { AdminRpc } from './rpc.js';
import type { Ui } from './ui.js';

/**
 * The unlocked admin screen, xsconsole/DCUI style: header, left menu, right pane, a message
 * line and a key-hint line. Ends with 'lock' (idle, or the menu's Lock entry) or 'quit'.
 */
export type Outcome = 'lock' | 'quit';

const PANES: ReadonlyArray<() => Pane> = [
  vmsPane,
  uploadPane,
  hostUpdatePane,
  networksPane,
  logsPane,
  switchPane,
];
const MENU_ACTIONS: Readonly<Record<string, Outcome>> = { 'Lock screen': 'lock', Quit: 'quit' };
const MENU_WIDTH = 22;

interface Widgets {
  header: blessed.Widgets.BoxElement;
  menu: blessed.Widgets.BoxElement;
  pane: blessed.Widgets.BoxElement;
  message: blessed.Widgets.BoxElement;
  hints: blessed.Widgets.BoxElement;
}

function widgets(ui: Ui, target: string, idleS: number): Widgets {
  const parent = ui.screen;
  const line = (top: number | string, style: object) =>
    blessed.box({ parent, top, left: 0, width: '100%', height: 1, tags: true, style });
  const header = line(0, { bg: 'blue', fg: 'white', bold: true });
  header.setContent(` kvmux host administration  |  ${escapeTags(target)}  |  locks after ${idleS} s idle`);
  const frame = { border: { type: 'line' as const }, tags: true, top: 1, bottom: 2 };
  const menu = blessed.box({
    parent,
    ...frame,
    left: 0,
    width: MENU_WIDTH,
    label: ' Menu ',
    style: { border: { fg: 'yellow' } },
  });
  const pane = blessed.box({
    parent,
    ...frame,
    left: MENU_WIDTH,
    right: 0,
    style: { border: { fg: 'cyan' } },
  });
  const message = line('100%-2', { bg: 'black', fg: 'white' });
  const hints = line('100%-1', { bg: 'white', fg: 'black' });
  return { header, menu, pane, message, hints };
}

/** Lock and Quit are menu entries too; their "pane" only says what Enter does. */
const actionPane = (title: string): Pane => ({
  title,
  hint: 'Enter to confirm',
  async load() {},
  render: () => `Press {bold}Enter{/bold} to ${title.toLowerCase()}.`,
});

export class MainView {
  private readonly w: Widgets;
  private readonly panes = PANES.map((make) => make());
  private readonly entries = [...this.panes.map((p) => p.title), ...Object.keys(MENU_ACTIONS)];
  private index = 0;
  private focus: 'menu' | 'pane' = 'menu';
  /** Bumped on every pane change so a slow load never paints over the newer pane. */
  private generation = 0;
  /** Loads and actions can finish after a lock destroyed the widgets: they must then do nothing. */
  private closed = false;
  private lastPollMs = Date.now();
  private readonly ctx: PaneCtx;
  private resolve: (o: Outcome) => void = () => {};
  private timer: NodeJS.Timeout | undefined;
  private pop: () => void = () => {};

  constructor(
    private readonly ui: Ui,
    rpc: AdminRpc,
    target: string,
    private readonly idle: { lockMs: number; lastKeyMs: () => number },
  ) {
    this.w = widgets(ui, target, Math.round(idle.lockMs / 1000));
    this.ctx = { rpc, ui, status: (msg, kind) => this.status(msg, kind), refresh: () => this.load() };
  }

  /** `notice`: shown on the message line at first (e.g. what first-boot setup did). */
  run(notice?: string): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      this.resolve = resolve;
      this.timer = setInterval(() => this.tick(), 250);
      this.pop = this.ui.push((ch, key) => this.onKey(ch, key));
      // a new size (a mode change, a font change on the console): the hints wrap again
      this.ui.screen.on('resize', this.onResize);
      this.select(0);
      if (notice) this.status(notice, 'ok');
    });
  }

  private paneAt(i: number): Pane {
    return this.panes[i] ?? actionPane(this.entries[i]!);
  }

  private status(msg: string, kind: 'ok' | 'error' | 'info' = 'info'): void {
    if (this.closed) return;
    const colour = kind === 'error' ? 'red' : kind === 'ok' ? 'green' : 'white';
    this.w.message.setContent(` {${colour}-fg}${escapeTags(msg)}{/${colour}-fg}`);
    this.ui.render();
  }

  private menuText(): string {
    const bg = this.focus === 'menu' ? 'yellow' : 'white';
    return this.entries
      .map((t, i) => {
        const text = ` ${i < this.panes.length ? `${i + 1} ` : '  '}${t}`.padEnd(MENU_WIDTH - 2);
        return i === this.index ? `{black-fg}{${bg}-bg}${text}{/}` : text;
      })
      .join('\n');
  }

  private paint(): void {
    if (this.closed) return;
    const pane = this.paneAt(this.index);
    this.w.menu.setContent(this.menuText());
    this.w.pane.setLabel(` ${pane.title}${this.focus === 'pane' ? ' *' : ''} `);
    this.w.pane.setContent(pane.render(Number(this.w.pane.width) - 2));
    const nav = this.focus === 'menu' ? 'Up/Down menu  Tab/Right enter pane' : 'Tab/Left back to menu';
    this.layoutHints(wrapHints(`${nav}  |  ${pane.hint}  |  F5 refresh  Ctrl-C quit`, this.columns(), 4));
    this.ui.render();
  }

  private columns(): number {
    return Number(this.ui.screen.width) || 80;
  }

  /** The hint line grows upwards (to 4 lines: every key at 80 columns) when the pane's keys do not fit on one. */
  private layoutHints(lines: string[]): void {
    const n = Math.max(1, lines.length);
    this.w.hints.top = `100%-${n}`;
    this.w.hints.height = n;
    this.w.message.top = `100%-${n + 1}`;
    this.w.menu.bottom = n + 1;
    this.w.pane.bottom = n + 1;
    this.w.hints.setContent(lines.join('\n'));
  }

  private async load(): Promise<void> {
    const g = this.generation;
    const pane = this.paneAt(this.index);
    await pane.load(this.ctx).catch((err: unknown) => this.status(`${pane.title}: ${errText(err)}`, 'error'));
    if (g === this.generation) this.paint();
  }

  private select(i: number): void {
    this.index = i;
    this.generation++;
    this.paint();
    void this.load();
  }

  /** Idle lock, and polling of panes with live state. */
  private tick(): void {
    if (Date.now() - this.idle.lastKeyMs() >= this.idle.lockMs) {
      this.finish('lock');
      return;
    }
    const poll = this.paneAt(this.index).pollMs;
    if (poll && Date.now() - this.lastPollMs >= poll) {
      this.lastPollMs = Date.now();
      void this.load();
    }
  }

  private readonly onResize = () => this.paint();

  private finish(o: Outcome): void {
    this.closed = true;
    clearInterval(this.timer);
    this.ui.screen.off('resize', this.onResize);
    this.pop();
    this.ui.cancelDialogs();
    for (const el of Object.values(this.w)) el.destroy();
    this.ui.render();
    this.resolve(o);
  }

  /** Menu focus: arrows and digits pick a pane, Tab/Right/Enter enter it; other keys go to the pane. */
  private onMenuKey(ch: string | undefined, key: string): boolean {
    const n = ch && /^[1-9]$/.test(ch) ? Number(ch) - 1 : undefined;
    if (n !== undefined && n < this.panes.length) this.select(n);
    else if (key === 'up' || key === 'down') {
      const step = key === 'up' ? this.entries.length - 1 : 1;
      this.select((this.index + step) % this.entries.length);
    } else if (['tab', 'right', 'enter'].includes(key)) {
      const action = MENU_ACTIONS[this.entries[this.index]!];
      if (action) this.finish(action);
      else {
        this.focus = 'pane';
        this.paint();
      }
    } else return false;
    return true;
  }

  private onKey(ch: string | undefined, key: string): void {
    if (key === 'C-c') this.finish('quit');
    else if (key === 'f5') void this.load();
    else if (this.focus === 'pane' && ['tab', 'left', 'escape'].includes(key)) {
      this.focus = 'menu';
      this.paint();
    } else if (this.focus === 'menu' && this.onMenuKey(ch, key)) {
      // handled by the menu
    } else if (this.panes[this.index]?.onKey?.(ch, key, this.ctx)) this.paint();
  }
}
