import type { Logger } from '../util/log.js';

/** A process as kvmux knows it: pid plus its start time, so a reused pid is never mistaken for it. */
export interface ProcessRef {
  readonly pid: number;
  readonly startTime: number;
}

export interface ShownPriorityIo {
  /**
   * Set the main thread of `pid` to SCHED_RR `rtPriority` (0: back to SCHED_OTHER; the X server's
   * other threads keep their policy), and the CPUs of all its threads (raised: the input thread's
   * pinned CPU, if any; lowered: every CPU); the errno name if refused.
   */
  setScheduling(pid: number, rtPriority: number): string | undefined;
  /** Is this still the same process (pid and start time)? */
  isAlive(ref: ProcessRef): boolean;
  /**
   * CPU time this very process has used so far, in ms; null when it has gone (or its pid is another
   * process's by now). None: no budget is kept.
   */
  cpuMs?(ref: ProcessRef): number | null;
  /**
   * Only when the input thread is pinned: put every thread of `pid` on the input thread's CPU
   * (`join`) or on every CPU; the errno name if refused. setScheduling joins a raised server.
   */
  joinInputCpu?(pid: number, join: boolean): string | undefined;
}

/**
 * The share of one CPU the shown X server may take while real-time, over a window: above it, a
 * client is flooding it (any local X client can; a guest's full-screen redraw took 15%), and
 * at SCHED_RR it would keep up to 95% of a CPU from every normal task, the other VMs included.
 */
export const RT_CPU_BUDGET = 0.5;
/** About a second (the watch runs once a second; a timer may fire a little early). */
const BUDGET_WINDOW_MS = 950;
/** How long a server over budget runs normal before it is raised again (if still shown). */
const COOL_DOWN_MS = 10_000;
/**
 * The input thread's load (event loop utilisation over one check) above which the raised server
 * leaves its CPU, and below which it joins it again. Reading an upload, that thread (SCHED_RR 2)
 * held the server (RR 1, same CPU) off in bursts of 10-50 ms while its average load stayed near
 * 0.1-0.3, so the bar is low: 12 ms of work in a quarter second. Typing and the mouse stay far
 * under it. Measured (GetInputFocus round trips to the shown server during 512 MiB uploads, p99):
 * pinned throughout 19-22 ms, with this 10-22 ms (median 12), not pinned at all 8.7-9.4 ms; idle
 * 0.6-1.2 ms either way.
 */
export const INPUT_BUSY = 0.05;
export const INPUT_QUIET = 0.02;
/** How often the switcher reports the input thread's load while it is busy or just was (else once a second). */
export const INPUT_LOAD_EVERY_MS = 250;

/** Both are the same process: pid and start time (a reused pid is another process). */
export const sameProcess = (a: ProcessRef | null, b: ProcessRef | null) =>
  a !== null && b !== null && a.pid === b.pid && a.startTime === b.startTime;

/**
 * Input priority follows the monitor: the X server on screen gets `rtPriority` (SCHED_RR), the
 * one that was on screen goes back to normal. A key then passes kvmux's input thread and the shown
 * X server without waiting behind a busy CPU, while the X servers of VMs nobody is looking at
 * (still drawing their guests) compete as normal tasks. One server is raised at a time.
 *
 * A server that has gone is forgotten, never lowered: its pid may belong to another process by now.
 */
export class ShownPriority {
  private raised: ProcessRef | null = null;
  private refusedOnce = false;
  /** What show() was last given: the server on screen, raised or not. */
  private shown: ProcessRef | null = null;
  private sample: { ref: ProcessRef; cpuMs: number; atMs: number } | null = null;
  private demoted: { ref: ProcessRef; untilMs: number } | null = null;
  /** The raised server has every CPU for now: the input thread is busy (bulk work, not keys). */
  private spread = false;
  private lastLoad = 0;

  constructor(
    private readonly io: ShownPriorityIo,
    private readonly rtPriority: number,
    private readonly log: Logger,
  ) {}

  /** The process raised now, if any. */
  get current(): ProcessRef | null {
    return this.raised;
  }

  /** The raised server shares the input thread's CPU, so inputLoad() wants to be called. */
  get followsInputLoad(): boolean {
    return this.rtPriority > 0 && this.io.joinInputCpu !== undefined;
  }

  /**
   * inputLoad() wants calling every INPUT_LOAD_EVERY_MS now (the input thread is busy or just
   * was), not only once a second: an idle kvmux then wakes once a second (measured: 4 more
   * wake-ups a second doubled its idle CPU, 0.1% to 0.2%).
   */
  get wantsFastChecks(): boolean {
    return this.spread || this.lastLoad >= INPUT_QUIET;
  }

  /**
   * The input thread's load since the last call (0..1, each check). Busy with bulk
   * work (reading an upload, writing a download) at its higher priority, it would hold off the
   * raised server on their shared CPU: the server gets every CPU until the thread is quiet again.
   */
  inputLoad(load: number): void {
    this.lastLoad = load;
    const cur = this.raised;
    if (!cur || !this.io.joinInputCpu) return;
    const spread = this.spread ? load >= INPUT_QUIET : load > INPUT_BUSY;
    if (spread === this.spread) return;
    if (this.forgetIfGone(cur)) return;
    const failed = this.io.joinInputCpu(cur.pid, !spread);
    if (failed) return;
    this.spread = spread;
    this.log.debug(
      { pid: cur.pid, inputLoad: Number(load.toFixed(2)) },
      spread
        ? 'input thread busy: X server on screen may use every CPU'
        : 'X server on screen joins the input CPU again',
    );
  }

  /** `server` is on screen now (null: nothing kvmux knows of). */
  show(server: ProcessRef | null): void {
    const old = this.raised;
    if (sameProcess(old, server)) return;
    this.forget();
    if (old && this.io.isAlive(old)) {
      const failed = this.io.setScheduling(old.pid, 0);
      if (failed && failed !== 'ESRCH')
        this.log.warn({ pid: old.pid, err: failed }, 'X server off screen: lowering its priority failed');
    }
    this.shown = server;
    // a server that has gone while kvmux still lists it: its pid may be another process by now
    if (!server || !this.io.isAlive(server)) return;
    if (this.demoted && sameProcess(this.demoted.ref, server)) return; // over budget: normal for now
    this.raise(server);
  }

  /**
   * Called about once a second: the raised server over its CPU budget goes back to normal for a
   * cool-down, then is raised again if still on screen.
   */
  watch(nowMs: number): void {
    if (this.demoted && nowMs >= this.demoted.untilMs) {
      const back = this.demoted.ref;
      this.demoted = null;
      if (sameProcess(this.shown, back) && !this.raised && this.io.isAlive(back)) this.raise(back);
    }
    const cur = this.raised;
    const started = this.sample && cur && sameProcess(this.sample.ref, cur) ? this.sample : null;
    // within the window: nothing to read yet (the checks come faster while the input thread is busy)
    if (started && nowMs - started.atMs < BUDGET_WINDOW_MS) return;
    this.sample = null;
    if (!cur) return;
    // one read of /proc per window: the server's CPU time, null once it has gone
    const cpu = this.rtPriority > 0 ? this.io.cpuMs?.(cur) : undefined;
    if (cpu === undefined) {
      this.forgetIfGone(cur); // no budget kept
      return;
    }
    if (cpu === null) {
      this.forget();
      return;
    }
    if (!started) {
      this.sample = { ref: cur, cpuMs: cpu, atMs: nowMs };
      return;
    }
    const spanMs = nowMs - started.atMs;
    const share = (cpu - started.cpuMs) / spanMs;
    this.sample = { ref: cur, cpuMs: cpu, atMs: nowMs };
    if (share <= RT_CPU_BUDGET) return;
    this.io.setScheduling(cur.pid, 0);
    this.forget();
    this.demoted = { ref: cur, untilMs: nowMs + COOL_DOWN_MS };
    this.log.warn(
      { pid: cur.pid, cpuShare: Number(share.toFixed(2)), coolDownMs: COOL_DOWN_MS },
      'X server on screen over its real-time CPU budget (a client floods it): normal priority for a while',
    );
  }

  /**
   * The raised server has gone (kvmux has not heard yet): forget it, true. Its pid may be another
   * process by now, whose CPU time is not the server's and whose CPUs and priority are not ours.
   */
  private forgetIfGone(cur: ProcessRef): boolean {
    if (this.io.isAlive(cur)) return false;
    this.forget();
    return true;
  }

  /** Nothing is raised (nor spread: an idle kvmux goes back to one check a second). */
  private forget(): void {
    this.raised = null;
    this.spread = false;
  }

  private raise(server: ProcessRef): void {
    const failed = this.io.setScheduling(server.pid, this.rtPriority);
    if (!failed) {
      this.raised = { pid: server.pid, startTime: server.startTime };
      // raised means joined (setScheduling): a busy input thread spreads it again at the next load
      this.spread = false;
      return;
    }
    // the same reason every switch (a cgroup without an RT budget): said once, at warn
    if (!this.refusedOnce) {
      this.refusedOnce = true;
      this.log.warn(
        { pid: server.pid, err: failed },
        'X server on screen not made real-time (refused): keys may lag on a busy machine',
      );
    }
  }

  /**
   * `server` came up off screen (started, or adopted after a crash of the kvmux that raised it): it
   * runs normal. A kvmux killed while showing it could not lower it, and its successor may show
   * another display or have input.realtime off.
   */
  offScreen(server: ProcessRef): void {
    if (sameProcess(this.raised, server) || !this.io.isAlive(server)) return;
    const failed = this.io.setScheduling(server.pid, 0);
    if (failed && failed !== 'ESRCH')
      this.log.warn({ pid: server.pid, err: failed }, 'X server off screen: lowering its priority failed');
  }
}
