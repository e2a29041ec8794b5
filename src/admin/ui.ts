import blessed from 'blessed';
import { escapeTags } from './format.js';
import { editLine, type LineState } from './line-edit.js';

/**
 * The admin screen's shell on blessed: header, left menu, right pane, status line, and modal
 * dialogs. All keys go through one dispatcher with a handler stack, so a dialog owns the keyboard
 * until it is answered, and a lock can cancel every open dialog at once.
 */
/** The xsconsole look every dialog shares: blue box, yellow frame and label. */
export const DIALOG_LOOK = {
  border: { type: 'line' },
  tags: true,
  style: {
    bg: 'blue',
    fg: 'white',
    border: { fg: 'yellow', bg: 'blue' },
    label: { fg: 'yellow', bg: 'blue' },
  },
} as const;

export type KeyHandler = (ch: string | undefined, key: string) => void;

export interface Dialog {
  readonly box: blessed.Widgets.BoxElement;
  cancel(): void;
}

export class Ui {
  readonly screen: blessed.Widgets.Screen;
  private readonly handlers: KeyHandler[] = [];
  private readonly dialogs = new Set<Dialog>();
  /** Called on every key before dispatch (the idle timer). */
  onActivity: () => void = () => {};

  constructor(opts: { title: string }) {
    this.screen = blessed.screen({ smartCSR: true, title: opts.title, fullUnicode: true });
    this.screen.on(
      'keypress',
      (ch: string | undefined, key: blessed.Widgets.Events.IKeyEventArg | undefined) => {
        this.onActivity();
        const name = key?.full ?? key?.name ?? '';
        // blessed reports CR twice, as `return` then `enter`: act on `enter` only, or one key answers two dialogs.
        if (name === 'return') return;
        this.handlers[this.handlers.length - 1]?.(ch, name);
      },
    );
  }

  push(handler: KeyHandler): () => void {
    this.handlers.push(handler);
    return () => {
      const i = this.handlers.lastIndexOf(handler);
      if (i >= 0) this.handlers.splice(i, 1);
    };
  }

  render(): void {
    this.screen.render();
  }

  /** Close every dialog (answering "no"/cancel): used when the screen locks. */
  cancelDialogs(): void {
    for (const d of [...this.dialogs]) d.cancel();
  }

  private dialogBox(label: string, height: number): blessed.Widgets.BoxElement {
    return blessed.box({
      parent: this.screen,
      top: 'center',
      left: 'center',
      width: '70%',
      height,
      label: ` ${label} `,
      ...DIALOG_LOOK,
    });
  }

  /** Modal: resolves with what `onKey` settles, or `cancelValue` when cancelled from outside. */
  private modal<T>(
    box: blessed.Widgets.BoxElement,
    cancelValue: T,
    onKey: (ch: string | undefined, key: string, done: (v: T) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolve) => {
      const finish = (v: T) => {
        pop();
        this.dialogs.delete(dialog);
        box.destroy();
        this.render();
        resolve(v);
      };
      const dialog: Dialog = { box, cancel: () => finish(cancelValue) };
      this.dialogs.add(dialog);
      const pop = this.push((ch, key) => onKey(ch, key, finish));
      this.render();
    });
  }

  /** Yes/no question: Enter or y confirms, Esc or n declines. */
  confirm(question: string): Promise<boolean> {
    const box = this.dialogBox('Confirm', 7);
    box.setContent(`\n ${escapeTags(question)}\n\n {bold}Enter{/bold} yes    {bold}Esc{/bold} no`);
    return this.modal(box, false, (ch, key, done) => {
      if (key === 'enter' || ch === 'y') done(true);
      else if (key === 'escape' || ch === 'n') done(false);
    });
  }

  /** One line of text; null when cancelled. `censor` shows `*` per character (passwords). */
  prompt(
    label: string,
    opts: { initial?: string; censor?: boolean; help?: string } = {},
  ): Promise<string | null> {
    const box = this.dialogBox(label, 8);
    let state: LineState = { text: opts.initial ?? '', max: 4096 };
    const paint = () => {
      const shown = opts.censor ? '*'.repeat(state.text.length) : escapeTags(state.text);
      box.setContent(
        `\n ${escapeTags(opts.help ?? '')}\n\n > ${shown}_\n\n {bold}Enter{/bold} ok    {bold}Esc{/bold} cancel`,
      );
      this.render();
    };
    paint();
    return this.modal<string | null>(box, null, (ch, key, done) => {
      const r = editLine(state, ch, key);
      if (r.kind === 'submit') done(r.text);
      else if (r.kind === 'cancel') done(null);
      else {
        state = r.state;
        paint();
      }
    });
  }

  /** A non-modal box that shows a transfer's progress; returns its updater and closer. */
  progress(label: string): { update(text: string): void; close(): void } {
    const box = this.dialogBox(label, 6);
    this.render();
    return {
      update: (text) => {
        box.setContent(`\n ${escapeTags(text)}`);
        this.render();
      },
      close: () => {
        box.destroy();
        this.render();
      },
    };
  }

  destroy(): void {
    this.screen.destroy();
  }
}
