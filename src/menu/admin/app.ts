import blessed from 'blessed';
import { escapeTags } from './format.js';
import { login } from './login.js';
import type { Pane, PaneCtx } from './pane.js';
import { logsPane, networksPane, switchPane } from './pane-info.js';
import { hostUpdatePane, uploadPane } from './pane-transfer.js';
import { vmsPane } from './pane-vms.js';
import { type AdminRpc, callOptional } from './rpc.js';
import { Ui } from './ui.js';

/**
 * The admin app: lock screen, then an xsconsole/DCUI-style main view (left menu, right pane,
 * status lines). Locks after `idleLockMs` without a key; locking closes every dialog.
 */
export interface AdminOptions {
  readonly rpc: AdminRpc;
  /** Shown on the lock screen and header: the socket path or guest device. */
  readonly target: string;
  readonly idleLockMs: number;
}

const PANES: ReadonlyArray<() => Pane> = [
  vmsPane,
  uploadPane,
  hostUpdatePane,
  networksPane,
  logsPane,
  switchPane,
];
const MENU_ACTIONS = ['Lock screen', 'Quit'] as const;

type Outcome = 'lock' | 'quit';

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
    width: 22,
    label: ' Menu ',
    style: { border: { fg: 'yellow' } },
  });
  const pane = blessed.box({ parent, ...frame, left: 22, right: 0, style: { border: { fg: 'cyan' } } });
  const message = line('100%-2', { bg: 'black', fg: 'white' });
  const hints = line('100%-1', { bg: 'white', fg: 'black' });
  return { header, menu, pane, message, hints };
}

export class AdminApp {
  private readonly ui = new Ui({ title: 'kvmux admin' });
  private lastKeyMs = Date.now();

  constructor(private readonly opts: AdminOptions) {
    this.ui.onActivity = () => {
      this.lastKeyMs = Date.now();
    };
  }

  /** Runs until the user quits; returns the exit code. */
  async run(): Promise<number> {
    let notice = '';
    try {
      for (;;) {
        if ((await login(this.ui, this.opts.rpc, this.opts.target, notice)) === 'quit') return 0;
        if ((await this.main()) === 'quit') return 0;
        notice = 'Locked. Enter the host password to continue.';
        await callOptional(this.opts.rpc, 'auth.logout').catch(() => undefined);
      }
    } finally {
      this.ui.destroy();
    }
  }

  private main(): Promise<Outcome> {
    const w = widgets(this.ui, this.opts.target, Math.round(this.opts.idleLockMs / 1000));
    const panes = PANES.map((make) => make());
    let index = 0;
    let focus: 'menu' | 'pane' = 'menu';
    let generation = 0;
    // Loads and actions can finish after a lock destroyed the widgets: they must then do nothing.
    let closed = false;
    const entries = [...panes.map((p) => p.title), ...MENU_ACTIONS];

    const actionPane = (title: string): Pane => ({
      title,
      hint: 'Enter to confirm',
      async load() {},
      render: () => `Press {bold}Enter{/bold} to ${title.toLowerCase()}.`,
    });
    const paneAt = (i: number): Pane => panes[i] ?? actionPane(entries[i]!);
    const paint = () => {
      if (closed) return;
      const pane = paneAt(index);
      w.menu.setContent(
        entries
          .map((t, i) => {
            const text = ` ${i < panes.length ? `${i + 1} ` : '  '}${t}`.padEnd(20);
            return i === index ? `{black-fg}{${focus === 'menu' ? 'yellow' : 'white'}-bg}${text}{/}` : text;
          })
          .join('\n'),
      );
      w.pane.setLabel(` ${pane.title}${focus === 'pane' ? ' *' : ''} `);
      w.pane.setContent(pane.render(Number(w.pane.width) - 2));
      const nav = focus === 'menu' ? 'Up/Down menu  Tab/Right enter pane' : 'Tab/Left back to menu';
      w.hints.setContent(` ${nav}  |  ${pane.hint}  |  F5 refresh  Ctrl-C quit`);
      this.ui.render();
    };
    const load = async () => {
      const g = generation;
      await paneAt(index)
        .load(ctx)
        .catch((err: unknown) => ctx.status(`${paneAt(index).title}: ${String(err)}`, 'error'));
      if (g === generation) paint();
    };
    const ctx: PaneCtx = {
      rpc: this.opts.rpc,
      ui: this.ui,
      status: (msg, kind = 'info') => {
        if (closed) return;
        const colour = kind === 'error' ? 'red' : kind === 'ok' ? 'green' : 'white';
        w.message.setContent(` {${colour}-fg}${escapeTags(msg)}{/${colour}-fg}`);
        this.ui.render();
      },
      refresh: load,
    };

    return new Promise<Outcome>((resolve) => {
      const finish = (o: Outcome) => {
        closed = true;
        clearInterval(timer);
        pop();
        this.ui.cancelDialogs();
        for (const el of Object.values(w)) el.destroy();
        this.ui.render();
        resolve(o);
      };
      const select = (i: number) => {
        index = i;
        generation++;
        paint();
        void load();
      };
      let lastPoll = Date.now();
      const timer = setInterval(() => {
        if (Date.now() - this.lastKeyMs >= this.opts.idleLockMs) return finish('lock');
        const poll = paneAt(index).pollMs;
        if (poll && Date.now() - lastPoll >= poll) {
          lastPoll = Date.now();
          void load();
        }
      }, 250);
      const pop = this.ui.push((ch, key) => {
        if (key === 'C-c') return finish('quit');
        if (key === 'f5') return void load();
        if (focus === 'pane' && ['tab', 'left', 'escape'].includes(key)) {
          focus = 'menu';
          return paint();
        }
        if (focus === 'menu') {
          const n = ch && /^[1-9]$/.test(ch) ? Number(ch) - 1 : undefined;
          if (n !== undefined && n < panes.length) return select(n);
          if (key === 'up' || key === 'down')
            return select((index + (key === 'up' ? entries.length - 1 : 1)) % entries.length);
          if (['tab', 'right', 'enter'].includes(key)) {
            if (index >= panes.length) return finish(entries[index] === 'Quit' ? 'quit' : 'lock');
            focus = 'pane';
            return paint();
          }
        }
        if (index < panes.length && panes[index]!.onKey?.(ch, key, ctx)) paint();
      });
      select(0);
    });
  }
}
