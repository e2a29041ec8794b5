import { BTN_MOUSE, EV, KEY_DOWN } from '../input/codes.js';

const BTN_LEFT = BTN_MOUSE;

import type { InputEvent } from '../input/event.js';
import type { MenuPointer } from '../input/pipeline.js';
import { type AnswerWhy, type AskRequest, type AskState, askStep, initialAsk } from '../menu/ask.js';
import {
  initialMenu,
  type MenuAction,
  type MenuItem,
  type MenuState,
  menuStateView,
  menuStep,
  type RowHit,
} from '../menu/model.js';
import type { TrustLeds } from '../menu/trust-leds.js';
import { RpcCode, RpcError } from '../util/errors.js';

/** Where the menu is on screen: clickable rows in window pixels, the window, the screen size. */
export interface MenuGeometry {
  readonly rows: readonly RowHit[];
  readonly window: {
    readonly x: number;
    readonly y: number;
    readonly width: number;
    readonly height: number;
  };
  readonly screen: { readonly width: number; readonly height: number };
}

/** Draws the trusted overlays on a display; the X implementation is src/menu's renderer. */
export interface MenuView {
  /** Map the switcher on `display` and paint it; null when the display has no overlay. */
  showMenu(display: string, state: MenuState): Promise<MenuGeometry | null> | MenuGeometry | null;
  redrawMenu(state: MenuState): void;
  showAsk(display: string, request: AskRequest): void;
  hide(): void;
  /** Prepare a display's overlay ahead of time, so the first open is one frame. */
  warm?(display: string): void;
}

export interface MenuControllerDeps {
  readonly view: MenuView;
  readonly leds: TrustLeds | null;
  readonly items: () => MenuItem[];
  readonly active: () => string | null;
  /** LED mask of the active display, restored when the menu closes without a switch. */
  readonly ledMask: (display: string) => number;
  readonly choose: (name: string) => void;
  /** Tell the input pipeline whether keys go to the menu (true) or to displays (false). */
  readonly setInputCaptured: (captured: boolean) => void;
  /** While a question holds the keys, the double tap must still open the menu over it. */
  readonly setHotkeyLive?: (live: boolean) => void;
  readonly now: () => number;
  /** Delay before the menu is mapped (config menu.showDelayMs); a direct switch cancels it. */
  readonly showDelayMs?: number;
  /** An unanswered question is a deny after this long (config menu.askTimeoutSeconds). */
  readonly askTimeoutMs?: number;
  /** After a deny, that VM's questions are refused this long (config menu.askCooldownSeconds). */
  readonly askCooldownMs?: number;
}

/**
 * Glue between the input pipeline and the pure menu/ask models: feeds events in, performs their
 * actions (view, trust LEDs, switching). An `ask` question takes the keyboard like the menu does,
 * so only the person at the physical keyboard can answer it.
 */
export class MenuController {
  private menu: MenuState = initialMenu();
  private ask: AskState;
  private readonly answers = new Map<string, (allow: boolean, why: AnswerWhy) => void>();
  private askTimer: NodeJS.Timeout | undefined;
  private shownOn: string | null = null;
  private seq = 0;
  /** The menu's own pointer while it is open: pointer input never reaches a VM then. */
  private geometry: MenuGeometry | null = null;
  private showTimer: NodeJS.Timeout | undefined;
  private cursor = { x: 0, y: 0 };

  constructor(private readonly deps: MenuControllerDeps) {
    this.ask = initialAsk(deps.askTimeoutMs, deps.askCooldownMs);
  }

  /** A question is on screen and the keyboard answers it (not paused behind the menu). */
  private get asking(): boolean {
    return this.ask.current !== null && !this.ask.paused;
  }

  get isOpen(): boolean {
    return this.menu.open;
  }

  view(): { open: boolean; items: string[]; selected: string | null } {
    return menuStateView(this.menu);
  }

  /** Double tap of the hotkey (the pipeline already counts the menu as open). */
  open(): void {
    // the menu always wins: a question on screen waits behind it
    if (this.asking) this.stepAsk({ kind: 'pause' });
    this.apply(menuStep(this.menu, { kind: 'items', items: this.deps.items() }).state, []);
    const r = menuStep(this.menu, { kind: 'open', active: this.deps.active() });
    this.apply(r.state, r.actions);
  }

  /** Items changed (VM state, display added): repaint an open menu. */
  refresh(): void {
    const r = menuStep(this.menu, { kind: 'items', items: this.deps.items() });
    this.apply(r.state, r.actions);
  }

  /** Closed from outside (display.switch over RPC). */
  dismiss(): void {
    if (!this.menu.open) return;
    const r = menuStep(this.menu, { kind: 'dismiss' });
    this.apply(r.state, r.actions);
  }

  input(ev: InputEvent): void {
    if (this.asking) {
      if (ev.type === EV.KEY) this.stepAsk({ kind: 'key', code: ev.code, value: ev.value });
      return;
    }
    if (ev.type === EV.KEY && ev.code === BTN_LEFT) {
      if (ev.value === KEY_DOWN) this.pointer(true);
      return;
    }
    if (ev.type !== EV.KEY) return;
    const r = menuStep(this.menu, { kind: 'key', code: ev.code, value: ev.value });
    this.apply(r.state, r.actions);
  }

  /**
   * The menu's own pointer, moved by what the router made of the device's motion (its own axis
   * ranges; a touchpad moves relatively): pixels, or a fraction of the screen.
   */
  pointerMoved(p: MenuPointer): void {
    const g = this.geometry;
    if (!g || this.asking) return;
    const clamp = (v: number, max: number) => Math.max(0, Math.min(max - 1, v));
    const { width, height } = g.screen;
    this.cursor =
      p.kind === 'move'
        ? { x: clamp(this.cursor.x + p.dx, width), y: clamp(this.cursor.y + p.dy, height) }
        : { x: clamp(p.fx * width, width), y: clamp(p.fy * height, height) };
    this.pointer(false);
  }

  /** Hovering selects the row under the pointer (visible feedback), a left click chooses it. */
  private pointer(press: boolean): void {
    const g = this.geometry;
    if (!g || !this.menu.open) return;
    const x = Math.round(this.cursor.x - g.window.x);
    const y = Math.round(this.cursor.y - g.window.y);
    const r = menuStep(this.menu, { kind: 'pointer', x, y, press });
    this.apply(r.state, r.actions);
  }

  /**
   * The policy's `ask`: resolves true only if the person at the keyboard allows it. Rejects with
   * -32029 when that VM already has a question pending or was denied a moment ago; `signal`
   * (the channel closed) drops the question.
   */
  confirm(from: string, method: string, params: unknown, signal?: AbortSignal): Promise<boolean> {
    const id = `ask-${++this.seq}`;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return resolve(false);
      const onAbort = () => this.stepAsk({ kind: 'cancel', id });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.answers.set(id, (allow, why) => {
        signal?.removeEventListener('abort', onAbort);
        if (why === 'busy' || why === 'cooldown') reject(refusal(from, why));
        else resolve(allow);
      });
      // a question arriving while the menu is open waits behind it
      if (this.menu.open && !this.ask.paused) this.stepAsk({ kind: 'pause' });
      this.stepAsk({ kind: 'ask', request: { id, from, method, params } });
    });
  }

  private stepAsk(ev: Parameters<typeof askStep>[1]): void {
    const r = askStep(this.ask, ev, this.deps.now());
    this.ask = r.state;
    for (const a of r.actions) {
      if (a.kind === 'show') {
        const display = this.deps.active();
        if (display) this.deps.view.showAsk(display, a.request);
        this.capture(display);
        this.deps.setHotkeyLive?.(true);
      } else if (a.kind === 'hide') {
        this.release();
      } else {
        this.answers.get(a.id)?.(a.allow, a.why);
        this.answers.delete(a.id);
      }
    }
    if (this.askTimer) clearTimeout(this.askTimer);
    this.askTimer = undefined;
    if (r.nextDeadlineMs !== null) {
      const ms = Math.max(0, r.nextDeadlineMs - this.deps.now());
      this.askTimer = setTimeout(() => this.stepAsk({ kind: 'tick' }), ms);
      this.askTimer.unref();
    }
  }

  private apply(state: MenuState, actions: readonly MenuAction[]): void {
    const wasOpen = this.menu.open;
    this.menu = state;
    for (const a of actions) {
      if (a.kind === 'show') this.show();
      else if (a.kind === 'redraw') this.deps.view.redrawMenu(this.menu);
      else if (a.kind === 'close') this.release();
      else this.deps.choose(a.name);
    }
    // the menu closed: a question that waited behind it comes back
    if (wasOpen && !this.menu.open && this.ask.paused) this.stepAsk({ kind: 'resume' });
  }

  private show(): void {
    const display = this.deps.active();
    if (!display) return;
    this.capture(display);
    const delay = this.deps.showDelayMs ?? 0;
    if (delay === 0) {
      this.paint(display);
      return;
    }
    this.showTimer = setTimeout(() => {
      this.showTimer = undefined;
      if (this.menu.open) this.paint(display);
    }, delay);
  }

  private paint(display: string): void {
    const shown = this.deps.view.showMenu(display, this.menu);
    void Promise.resolve(shown)
      .then((g) => {
        this.geometry = g;
        if (!g) return;
        // the pointer starts in the middle of the menu's own window
        this.cursor = { x: g.window.x + g.window.width / 2, y: g.window.y + g.window.height / 2 };
        this.menu = menuStep(this.menu, { kind: 'rows', rows: g.rows }).state;
      })
      // a view that fails is a menu not shown (the view logs why); it must never end the process
      .catch(() => {
        this.geometry = null;
      });
  }

  private capture(display: string | null): void {
    this.deps.setInputCaptured(true);
    if (this.shownOn === null && display) this.deps.leds?.mark(this.deps.ledMask(display));
    this.shownOn = display ?? this.shownOn;
  }

  private release(): void {
    this.deps.setHotkeyLive?.(false);
    if (this.showTimer) clearTimeout(this.showTimer);
    this.showTimer = undefined;
    this.geometry = null;
    this.deps.view.hide();
    this.deps.setInputCaptured(false);
    const active = this.deps.active();
    if (this.shownOn !== null) this.deps.leds?.restore(active ? this.deps.ledMask(active) : undefined);
    this.shownOn = null;
  }
}

function refusal(from: string, why: 'busy' | 'cooldown'): RpcError {
  const text =
    why === 'busy'
      ? `${from} already has a question waiting at the console`
      : `the console denied ${from} a moment ago; ask again later`;
  return new RpcError(RpcCode.tooManyRequests, text);
}
