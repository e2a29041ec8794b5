import { EventEmitter } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { Config } from '../config/schema.js';
import type { DisplayInfo } from '../session/supervisor.js';
import { writeFileAtomicLater, writesSettled } from '../util/atomic-file.js';
import { errText, RpcCode, RpcError } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/log.js';
import { consoleLock } from '../x/console-lock.js';
import type { XServer } from '../x/server.js';
import { activeVt, switchVt, waitVtActive } from '../x/vt.js';
import { DisplayRuntime, type LiveDisplay } from './display-runtime.js';
import {
  type DisplayEntry,
  type DisplayTable,
  emptyTable,
  listDisplays,
  nameAtIndex,
  planSwitch,
  removeEntry,
  type SwitchPlan,
  setEntries,
  upsertEntry,
} from './displays.js';
import { dropHeadStart, type HeadStart } from './head-start.js';
import { INPUT_LOAD_EVERY_MS, type ShownPriority } from './shown-priority.js';

/** How long a timed-out VT switch may still complete and take input with it. */
const lateSwitchMs = 60_000;

export interface SwitcherOptions {
  readonly config: Pick<Config, 'console' | 'x' | 'runDir' | 'stateDir'>;
  readonly log?: Logger;
  /** Raises the X server on screen (at 0 with input.realtime off: lowers what a crashed kvmux raised). */
  readonly shownPriority?: ShownPriority | undefined;
  /** An X server already starting for the display expected first (kvmux run's head start). */
  readonly headStart?: HeadStart | null;
}

export interface SwitchResult {
  readonly name: string;
  readonly vt: number | null;
  readonly ms: number;
  /**
   * Of `ms`, the wait for the VT: VT_ACTIVATE until VT_WAITACTIVE returned to this thread (the
   * kernel and the X servers' VT handshake, plus the thread-pool hop); 0 without a VT switch.
   */
  readonly vtMs: number;
}

/**
 * The displays kvmux shows and which one is active: the display table, one DisplayRuntime (X
 * server, WM, XTEST sink) per entry, the remembered active display and the VT switch.
 * Emits `display` when a display comes up or goes away and `switched` once the monitor shows the
 * new display (so input must follow).
 */
export class Switcher extends EventEmitter<{
  display: [name: string, live: LiveDisplay | null];
  switched: [name: string];
}> {
  private table: DisplayTable = emptyTable();
  private readonly runtimes = new Map<string, DisplayRuntime>();
  private readonly log: Logger;
  private readonly activeFile: string;
  /** Switches committed so far: a late VT switch must not undo a newer one. */
  private shown = 0;
  private stopped = false;
  private budgetTimer: NodeJS.Timeout | undefined;
  /** The priority watch's current period, and the loop utilisation it last read. */
  private watchEvery = 0;
  /** The display startAll shows first, until a switch makes one active. */
  private shownFirst: string | null = null;

  private headStart: HeadStart | null;

  constructor(private readonly opts: SwitcherOptions) {
    super();
    this.headStart = opts.headStart ?? null;
    this.log = opts.log ?? silentLogger;
    this.activeFile = join(opts.config.stateDir, 'active-display');
    if (opts.shownPriority) this.watchPriority(opts.shownPriority, performance.eventLoopUtilization());
  }

  /**
   * The real-time X server's CPU budget, and the input thread's load while the shown server shares
   * its CPU (libuv's own count: no syscall). Once a second (a flood shows within two; an idle kvmux
   * wakes for it once a second), every INPUT_LOAD_EVERY_MS while the input thread is busy or just
   * was, or bulk work has begun (busyHint). Unref'd: it never keeps kvmux alive.
   */
  private watchPriority(sp: ShownPriority, last: EventLoopUtilization, every?: number): void {
    this.watchEvery = every ?? (sp.followsInputLoad && sp.wantsFastChecks ? INPUT_LOAD_EVERY_MS : 1000);
    this.budgetTimer = setTimeout(() => {
      if (this.stopped) return;
      sp.watch(performance.now());
      const now = performance.eventLoopUtilization();
      if (sp.followsInputLoad) sp.inputLoad(performance.eventLoopUtilization(now, last).utilization);
      this.watchPriority(sp, now);
    }, this.watchEvery).unref();
  }

  /**
   * Bulk work (a transfer's chunk) is starting on the input thread: check its load within
   * INPUT_LOAD_EVERY_MS rather than at the next once-a-second check, measured from now (the quiet
   * time before the hint, up to a second, would dilute a busy quarter second below the threshold).
   * Cheap when already fast.
   */
  busyHint(): void {
    const sp = this.opts.shownPriority;
    if (!sp?.followsInputLoad || this.stopped || this.watchEvery <= INPUT_LOAD_EVERY_MS) return;
    clearTimeout(this.budgetTimer);
    this.watchPriority(sp, performance.eventLoopUtilization(), INPUT_LOAD_EVERY_MS);
  }

  get entries(): readonly DisplayEntry[] {
    return this.table.entries;
  }

  get active(): string | null {
    return this.table.active;
  }

  has(name: string): boolean {
    return this.runtimes.has(name);
  }

  /** A new display in menu order (VMs before admin); not started. */
  add(name: string, kind: DisplayEntry['kind']): DisplayRuntime {
    const existing = this.runtimes.get(name);
    if (existing) return existing;
    this.table = upsertEntry(this.table, { name, kind, display: '', vt: null });
    const rt = new DisplayRuntime({
      name,
      config: this.opts.config,
      log: this.log,
      onChange: (n, live) => this.onDisplayChange(n, live),
      shownVt: () => this.shownVt(),
      nudgeShown: () => this.nudgeShown(),
    });
    this.runtimes.set(name, rt);
    return rt;
  }

  /** Stop and forget a display (its VM was deleted). */
  async remove(name: string): Promise<void> {
    const rt = this.runtimes.get(name);
    if (!rt) return;
    this.runtimes.delete(name);
    this.table = removeEntry(this.table, name);
    await rt.stop();
    this.emit('display', name, null);
  }

  /**
   * Start every display: the one shown first, then the others in menu order (VTs are handed out
   * in that order). A failure of the first is a broken setup and throws; the others retry with backoff.
   */
  async startAll(): Promise<void> {
    const first = this.startFirst();
    this.startRest();
    await first;
  }

  /**
   * Start the display shown first (the one remembered from before a crash, else the first in menu
   * order) and show it; resolves with its name once it is up. A failure there is a broken setup and
   * throws. The others wait for `startRest`: they would take the CPU its VM needs to reach the screen.
   */
  async startFirst(): Promise<string | null> {
    const resumed = this.resumeActive();
    const first = this.table.entries.find((e) => e.name === resumed) ?? this.table.entries[0];
    this.shownFirst = first?.name ?? null;
    const rt = first ? this.runtimes.get(first.name) : undefined;
    const early = this.takeHeadStart(first?.name ?? null);
    if (!first || !rt) return null;
    await rt.start(early);
    void this.switchTo(first.name).catch(() => {});
    return first.name;
  }

  /** The head start's server when it was started for `name`; one started for another display is stopped. */
  private takeHeadStart(name: string | null): Promise<XServer> | undefined {
    const head = this.headStart;
    this.headStart = null;
    if (!head) return undefined;
    if (head.name === name) return head.server;
    this.log.info(
      { expected: head.name, first: name },
      'head-start X server was for another display: stopped',
    );
    void dropHeadStart(head.server);
    return undefined;
  }

  /**
   * Start every display not started yet, in menu order (a VM added meanwhile started its own);
   * each retries with backoff itself.
   */
  startRest(): void {
    for (const { name } of this.table.entries) {
      const rt = this.runtimes.get(name);
      if (rt && !rt.startRequested) rt.startOrRetry();
    }
  }

  /** Start one display (a VM added at run time); retries with backoff, its VM waits for it. */
  startLater(name: string): void {
    this.runtimes.get(name)?.startOrRetry();
  }

  /**
   * Input (and the menu) follow only once the monitor shows `name`: while an Xorg start holds the
   * console, keys keep going to the display on screen. A VT switch that fails changes nothing.
   */
  async switchTo(name: string): Promise<SwitchResult> {
    const t0 = performance.now();
    this.plan(name); // unknown or not up: fail now, not after the wait for the console
    let vtMs = 0;
    const show = async () => {
      // planned again inside the lock: the display may have moved VT or gone meanwhile
      const plan = this.plan(name);
      if (plan.vt !== null && this.opts.config.console === 'vt') {
        const v0 = performance.now();
        const shownBefore = this.shown;
        await switchVt(plan.vt, { nudge: () => this.nudgeShown() }).catch((err: unknown) => {
          this.followLate(name, plan.vt!, shownBefore);
          throw err;
        });
        vtMs = Number((performance.now() - v0).toFixed(2));
      }
      this.commitShown(name);
      return plan;
    };
    // waits while an Xorg is starting: its own VT activation must not be cut short; vtMs is the
    // VT switch itself (VT_ACTIVATE until the VT is active), not the wait for the lock
    const plan =
      this.opts.config.console === 'vt'
        ? await consoleLock.run(show, {
            what: `switch to ${name}`,
            onOverrun: (what, heldMs) => this.log.error({ what, heldMs }, 'console lock deadline passed'),
          })
        : await show();
    const ms = Number((performance.now() - t0).toFixed(2));
    // remembered for a restart after a crash; kept off the switch's own latency
    if (plan.changed)
      writeFileAtomicLater(this.activeFile, `${name}\n`, (e) =>
        this.log.warn({ err: errText(e) }, 'remembering the display failed'),
      );
    this.log.info({ display: name, vt: plan.vt, ms, vtMs }, 'switched');
    return { name, vt: plan.vt, ms, vtMs };
  }

  /** Input and the menu go to `name`: the monitor shows it. */
  private commitShown(name: string): void {
    this.shown++;
    // not a plan's table: a display may have come or gone during the switch
    this.table = { ...this.table, active: name };
    this.opts.shownPriority?.show(this.live(name)?.server ?? null);
    this.emit('switched', name);
  }

  /**
   * A timed-out switch is still pending in the kernel: a slow server may let go of the VT later
   * (VT_PROCESS), and then the monitor shows `name`. Input follows it then, unless another switch
   * has been made meanwhile.
   */
  private followLate(name: string, vt: number, shownBefore: number): void {
    void waitVtActive(vt, lateSwitchMs).then((ok) => {
      if (!ok || this.stopped || this.shown !== shownBefore || !this.runtimes.has(name)) return;
      this.log.warn({ display: name, vt }, 'the VT switch completed late; input follows');
      this.commitShown(name);
    });
  }

  private plan(name: string): Extract<SwitchPlan, { ok: true }> {
    const plan = planSwitch(this.table, name);
    if (plan.ok) return plan;
    if (plan.reason === 'unknown') throw new RpcError(RpcCode.notFound, `no display named "${name}"`);
    throw new RpcError(RpcCode.conflict, `cannot switch to "${name}": display ${plan.reason}`);
  }

  /** `ScrLk ScrLk <digit>`: the display at that 1-based menu position, if any. */
  nameAt(index: number): string | undefined {
    return nameAtIndex(this.table, index);
  }

  /** `ScrLk ScrLk →/←`: the next (+1) or previous (-1) display that is up, wrapping around. */
  neighbour(delta: 1 | -1): string | undefined {
    const up = this.table.entries.filter((e) => e.display !== '' || e.name === this.table.active);
    if (up.length === 0) return undefined;
    const at = up.findIndex((e) => e.name === this.table.active);
    const i = at < 0 ? 0 : (at + delta + up.length) % up.length;
    return up[i]?.name;
  }

  /** Displays that start only when their VM does (found images) and have not been asked for yet. */
  get idleOnDemand(): number {
    return [...this.runtimes.values()].filter((rt) => rt.idleOnDemand).length;
  }

  list(): Array<{ name: string; display: string; vt: number | null; active: boolean }> {
    return listDisplays(this.table);
  }

  live(name: string): LiveDisplay | null {
    return this.runtimes.get(name)?.current ?? null;
  }

  /** What a VM launching on `name` needs; waits until that display is up. */
  async displayInfo(name: string): Promise<DisplayInfo> {
    const rt = this.runtimes.get(name);
    if (!rt) throw new RpcError(RpcCode.notFound, `no display for "${name}"`);
    const live = await rt.ready();
    return { display: live.server.display, width: live.wm.conn.width, height: live.wm.conn.height };
  }

  /** `leaveRunning` keeps the X servers for a later kvmux to adopt (and the remembered display). */
  async stop(opts: { leaveRunning?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearTimeout(this.budgetTimer);
    // servers left for a later kvmux run at normal priority until it shows one
    this.opts.shownPriority?.show(null);
    // never taken (start failed before the first display): it has no record to be adopted by
    const head = this.headStart;
    this.headStart = null;
    if (head) await dropHeadStart(head.server);
    await Promise.all([...this.runtimes.values()].map((rt) => rt.stop(opts)));
    // a switch's background write must not land after the removal and resurrect the file
    await writesSettled(this.activeFile);
    if (!opts.leaveRunning) rmSync(this.activeFile, { force: true });
  }

  /** An X round trip to the server on the VT now shown: it must wake to release the VT. */
  private async nudgeShown(): Promise<void> {
    const shown = activeVt();
    const entry = this.table.entries.find((e) => e.vt === shown);
    await (entry ? this.live(entry.name)?.wm.conn.sync() : undefined);
  }

  /** What the monitor should show: the active display's VT, or at start-up the first display's. */
  private shownVt(): number | null {
    const name = this.table.active ?? this.shownFirst;
    return this.table.entries.find((e) => e.name === name)?.vt ?? null;
  }

  private onDisplayChange(name: string, live: LiveDisplay | null): void {
    if (!this.runtimes.has(name)) return;
    const entries = this.table.entries.map((e) =>
      e.name === name ? { ...e, display: live?.server.display ?? '', vt: live?.server.vt ?? null } : e,
    );
    this.table = setEntries(this.table, entries);
    // the shown display's server went or came back: the priority goes with it
    if (name === this.table.active) this.opts.shownPriority?.show(live?.server ?? null);
    else if (live) this.opts.shownPriority?.offScreen(live.server);
    this.emit('display', name, live);
    // the shown display's server came back (on a VT the monitor may not show): show it again
    if (live && name === this.table.active && live.server.vt !== null && activeVt() !== live.server.vt)
      void this.switchTo(name).catch((err: unknown) =>
        this.log.warn({ display: name, err: errText(err) }, 'showing the restarted display failed'),
      );
  }

  /** After a crash, show what was shown before. */
  private resumeActive(): string | null {
    try {
      return readFileSync(this.activeFile, 'utf8').trim() || null;
    } catch {
      return null;
    }
  }
}
