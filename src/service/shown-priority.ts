import type { Logger } from '../util/log.js';

/** A process as kvmux knows it: pid plus its start time, so a reused pid is never mistaken for it. */
export interface ProcessRef {
  readonly pid: number;
  readonly startTime: number;
}

export interface ShownPriorityIo {
  /** Set the main thread of `pid` to SCHED_RR `rtPriority` (0: back to SCHED_OTHER); the errno name if refused. */
  setScheduling(pid: number, rtPriority: number): string | undefined;
  /** Is this still the same process (pid and start time)? */
  isAlive(ref: ProcessRef): boolean;
}

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

  constructor(
    private readonly io: ShownPriorityIo,
    private readonly rtPriority: number,
    private readonly log: Logger,
  ) {}

  /** The process raised now, if any. */
  get current(): ProcessRef | null {
    return this.raised;
  }

  /** `server` is on screen now (null: nothing kvmux knows of). */
  show(server: ProcessRef | null): void {
    const old = this.raised;
    if (old && server && old.pid === server.pid && old.startTime === server.startTime) return;
    this.raised = null;
    if (old && this.io.isAlive(old)) {
      const failed = this.io.setScheduling(old.pid, 0);
      if (failed && failed !== 'ESRCH')
        this.log.warn({ pid: old.pid, err: failed }, 'X server off screen: lowering its priority failed');
    }
    // a server that has gone while kvmux still lists it: its pid may be another process by now
    if (!server || !this.io.isAlive(server)) return;
    const failed = this.io.setScheduling(server.pid, this.rtPriority);
    if (!failed) {
      this.raised = { pid: server.pid, startTime: server.startTime };
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
    if (this.raised?.pid === server.pid && this.raised.startTime === server.startTime) return;
    if (!this.io.isAlive(server)) return;
    const failed = this.io.setScheduling(server.pid, 0);
    if (failed && failed !== 'ESRCH')
      this.log.warn({ pid: server.pid, err: failed }, 'X server off screen: lowering its priority failed');
  }

  /** `server` has exited (or is about to be stopped): forget it without touching its pid. */
  gone(server: ProcessRef): void {
    if (this.raised?.pid === server.pid && this.raised.startTime === server.startTime) this.raised = null;
  }
}
