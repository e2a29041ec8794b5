import { ConfigError } from '../util/errors.js';
import { type Chord, CTRL_ALT_DEL, DEFAULT_BLOCKED, parseChords } from './chord.js';
import { EV, KEY_DOWN, keyCode, SYN_REPORT } from './codes.js';
import type { InputEvent } from './event.js';
import { type GuardState, guardInit, guardSetActive, guardSetExtra, guardStep } from './guard.js';
import {
  type HotkeyAction,
  type HotkeyOptions,
  type HotkeyState,
  hotkeyInit,
  hotkeyStep,
  hotkeyTick,
} from './hotkey.js';
import {
  type AxisRange,
  type RouterAction,
  type RouterState,
  routerInit,
  routerReleaseAll,
  routerSetAbsRange,
  routerSetActive,
  routerStep,
} from './router.js';
import type { DisplaySink, LedSink } from './sink.js';
import { isPadContact } from './touchpad.js';

export interface PipelineOutputs {
  sinkFor(display: string): DisplaySink | undefined;
  leds?: LedSink;
  /**
   * Double tap. The menu's owner decides whether input is captured: it calls setMenuOpen(true)
   * before returning (synchronously), so the very next key goes to the menu.
   */
  onMenuOpen(): void;
  /** `tap tap <digit>`: 1-based index into the displays; the owner closes the menu (setMenuOpen(false)). */
  onDirectSwitch(index: number): void;
  /** `tap tap →/←`: the next (+1) or previous (-1) display; the owner closes the menu (setMenuOpen(false)). */
  onCycle(delta: 1 | -1): void;
  /** Every key/button/wheel event while the menu is open (except releases of keys a display holds). */
  onMenuInput(ev: InputEvent): void;
  /**
   * Pointer motion while the menu is open, normalised by the router as for a display (per-device
   * axis ranges, touchpads moving relatively): one call per SYN report.
   */
  onMenuPointer?(p: MenuPointer): void;
  /** Every decision, for `kvmux monitor` and debug logs. */
  onDecision?(d: Decision): void;
}

export type MenuPointer = { kind: 'move'; dx: number; dy: number } | { kind: 'abs'; fx: number; fy: number };

export interface Decision {
  readonly stage: 'hotkey' | 'guard' | 'router' | 'menu';
  readonly what: string;
  readonly ev?: InputEvent;
  readonly display?: string;
}

export interface PipelineOptions {
  windowMs: number;
  /** Hotkey name from codes.ts (default scrolllock). */
  hotkey?: string;
  /** Key names after a double tap for the next / previous display (default right / left). */
  nextKey?: string;
  prevKey?: string;
  /** Chords blocked on every display; replaces DEFAULT_BLOCKED when given. */
  blocked?: string[];
  ctrlAltDelToVm: boolean;
}

/** Time and timers, injectable so sequence tests run on a virtual clock. */
export interface PipelineClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: PipelineClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

const MENU_TYPES: ReadonlySet<number> = new Set([EV.KEY, EV.REL, EV.ABS]);
const SYN: InputEvent = { type: EV.SYN, code: SYN_REPORT, value: 0, timeMs: 0 };

/**
 * hotkey → (menu open? to the menu) → guard → router → sinks. Time is the arrival time on this
 * process's clock, not the event's own stamp (FIFO writers may stamp anything).
 */
export class InputPipeline {
  private readonly hotkeyOpts: HotkeyOptions;
  private hk: HotkeyState = hotkeyInit();
  private guard: GuardState;
  private router: RouterState = routerInit();
  private menuOpen = false;
  /** Captured input still passes the hotkey (an `ask` question is shown: the menu must stay reachable). */
  private hotkeyLive = false;
  private timer: unknown;
  private timerAt: number | undefined;
  private closed = false;
  private readonly unflushed = new Set<DisplaySink>();

  constructor(
    opts: PipelineOptions,
    private readonly out: PipelineOutputs,
    private readonly clock: PipelineClock = realClock,
  ) {
    const key = keyCode(opts.hotkey ?? 'scrolllock');
    if (key === undefined) throw new ConfigError(`input.hotkey.key: unknown key "${opts.hotkey}"`);
    const next = keyCode(opts.nextKey ?? 'right');
    const prev = keyCode(opts.prevKey ?? 'left');
    if (next === undefined) throw new ConfigError(`input.hotkey.next: unknown key "${opts.nextKey}"`);
    if (prev === undefined) throw new ConfigError(`input.hotkey.previous: unknown key "${opts.prevKey}"`);
    this.hotkeyOpts = { key, windowMs: opts.windowMs, nextKey: next, prevKey: prev };
    const blocked = [...(opts.blocked ?? DEFAULT_BLOCKED), ...(opts.ctrlAltDelToVm ? [] : CTRL_ALT_DEL)];
    this.guard = guardInit(parseChords(blocked));
  }

  feed(ev: InputEvent): void {
    if (this.closed) return;
    const now = this.clock.now();
    const viaHotkey =
      !this.menuOpen || this.hotkeyLive || this.hk.phase !== 'idle' || this.hk.swallowed.has(ev.code);
    if (viaHotkey && ev.type === EV.KEY) {
      const r = hotkeyStep(this.hotkeyOpts, this.hk, ev, now);
      this.hk = r.state;
      this.onHotkey(r.actions, now);
    } else {
      this.flushExpired(now);
      this.deliver(ev, now);
    }
    this.schedule(now);
  }

  setActive(display: string): void {
    this.guard = guardSetActive(this.guard, display);
    const r = routerSetActive(this.router, display);
    this.router = r.state;
    this.applyRouter(r.actions);
  }

  /** Only the menu's owner writes this (the menu controller in `kvmux run`): input to the menu or not. */
  setMenuOpen(open: boolean): void {
    this.menuOpen = open;
  }

  /** While captured, still watch for the double tap (set by the menu's owner while a question is shown). */
  setHotkeyLive(live: boolean): void {
    this.hotkeyLive = live;
  }

  get isMenuOpen(): boolean {
    return this.menuOpen;
  }

  /** Chords blocked only while `display` is active (a backend's own host keys). */
  setExtraBlocked(display: string, chords: string[]): void {
    this.guard = guardSetExtra(this.guard, display, parseChords(chords));
  }

  /** Absolute axis ranges of a source (device path), from EVIOCGABS; a touchpad moves relatively. */
  setAbsRange(source: string, x: AxisRange, y: AxisRange, touchpad = false): void {
    this.router = routerSetAbsRange(this.router, source, x, y, touchpad);
  }

  /** Lock-LED mask the router tracks for `display` (bit 0 NumLock, 1 CapsLock, 2 ScrollLock). */
  ledMask(display: string): number {
    return this.router.leds.get(display) ?? 0;
  }

  /** Key/button codes held on displays right now, with the display holding each. */
  held(): ReadonlyMap<number, string> {
    return this.router.owner;
  }

  /** Stop; keys still held are released where they were pressed, so none stays stuck in a VM. */
  close(): void {
    if (this.closed) return;
    const r = routerReleaseAll(this.router);
    this.router = r.state;
    this.applyRouter(r.actions);
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private flushExpired(now: number): void {
    const r = hotkeyTick(this.hk, now);
    this.hk = r.state;
    this.onHotkey(r.actions, now);
  }

  private onHotkey(actions: readonly HotkeyAction[], now: number): void {
    for (const a of actions) {
      if (a.kind === 'pass') this.deliver(a.ev, now);
      else if (a.kind === 'swallow')
        this.decide({ stage: 'hotkey', what: `swallow (${a.reason})`, ev: a.ev });
      else if (a.kind === 'menu-open') {
        this.decide({ stage: 'hotkey', what: 'menu open' });
        this.out.onMenuOpen();
      } else if (a.kind === 'cycle') {
        this.decide({ stage: 'hotkey', what: a.delta > 0 ? 'next display' : 'previous display' });
        this.out.onCycle(a.delta);
      } else {
        this.decide({ stage: 'hotkey', what: `switch ${a.index}` });
        this.out.onDirectSwitch(a.index);
      }
    }
  }

  private deliver(ev: InputEvent, now: number): void {
    const g = guardStep(this.guard, ev, now);
    this.guard = g.state;
    const action = g.actions[0];
    if (action?.kind === 'swallow') {
      this.decide({ stage: 'guard', what: `swallow ${action.chord}`, ev });
      return;
    }
    // While the menu is open a release still goes to the display holding its press: no stuck keys.
    // SYN, MSC_SCAN and the like are no menu input: the router flushes or drops them.
    const toDisplay =
      !this.menuOpen ||
      !MENU_TYPES.has(ev.type) ||
      (ev.type === EV.KEY && ev.value !== KEY_DOWN && this.router.owner.has(ev.code));
    if (!toDisplay && !this.isMotion(ev)) {
      this.decide({ stage: 'menu', what: 'to menu', ev });
      this.out.onMenuInput(ev);
      return;
    }
    const r = routerStep(this.router, ev, now);
    this.router = r.state;
    this.applyRouter(r.actions, ev);
  }

  /** Motion (and a touchpad's finger contact) the router normalises, for a display or the menu. */
  private isMotion(ev: InputEvent): boolean {
    if (ev.type === EV.REL || ev.type === EV.ABS) return ev.code === 0 || ev.code === 1; // X, Y
    return (
      ev.type === EV.KEY &&
      isPadContact(ev.code) &&
      this.router.absRanges.get(ev.source ?? '')?.touchpad === true
    );
  }

  private applyRouter(actions: readonly RouterAction[], ev?: InputEvent): void {
    for (const a of actions) {
      if (this.menuOpen && (a.kind === 'move' || a.kind === 'abs')) {
        this.decide({ stage: 'menu', what: `pointer ${a.kind}` });
        this.out.onMenuPointer?.(
          a.kind === 'move' ? { kind: 'move', dx: a.dx, dy: a.dy } : { kind: 'abs', fx: a.fx, fy: a.fy },
        );
        continue;
      }
      if (a.kind === 'leds') {
        this.out.leds?.setLeds(a.mask);
        continue;
      }
      if (a.kind === 'drop') {
        this.decide({ stage: 'router', what: `drop (${a.reason})`, ev: a.ev });
        continue;
      }
      const sink = this.out.sinkFor(a.display);
      if (!sink) {
        this.decide({
          stage: 'router',
          what: 'drop (no sink for display)',
          display: a.display,
          ...(ev ? { ev } : {}),
        });
        continue;
      }
      if (a.kind === 'key') sink.key(a.code, a.down);
      else if (a.kind === 'button') sink.button(a.button, a.down);
      else if (a.kind === 'move') sink.moveRelative(a.dx, a.dy);
      else if (a.kind === 'abs') sink.moveAbsolute(a.fx, a.fy);
      else this.flushSoon(sink);
      if (a.kind !== 'flush' && this.out.onDecision)
        this.decide({ stage: 'router', what: a.kind, display: a.display, ...(ev ? { ev } : {}) });
    }
  }

  /**
   * A SYN_REPORT ends a packet; the sink is flushed once the current read batch is fed (a
   * microtask), so a burst becomes one write to the X server instead of one per packet.
   */
  private flushSoon(sink: DisplaySink): void {
    if (this.unflushed.size === 0) queueMicrotask(() => this.flushAll());
    this.unflushed.add(sink);
  }

  private flushAll(): void {
    for (const sink of this.unflushed) sink.flush();
    this.unflushed.clear();
  }

  private decide(d: Decision): void {
    this.out.onDecision?.(d);
  }

  /** One timer, armed only while the hotkey has a deadline: no polling. */
  private schedule(now: number): void {
    const at = this.hk.deadline;
    if (at === this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (at === undefined) return;
    this.timer = this.clock.setTimer(() => this.onTimer(), Math.max(0, at - now));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = undefined;
    if (this.closed) return;
    const now = this.clock.now();
    this.flushExpired(now);
    // Replayed keys carry no SYN of their own: flush what they touched.
    this.deliver(SYN, now);
    this.schedule(now);
  }
}

export type { Chord };
