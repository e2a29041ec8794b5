import type { Logger } from '../util/log.js';
import { MIN_SLICE_NS } from '../util/slice.js';
import { type ProcessRef, sameProcess } from './shown-priority.js';

export interface ShownClientIo {
  /**
   * The main thread of `pid` asks for `sliceNs` scheduler slices (0: the kernel's default again);
   * the reason when refused: ESRCH (gone), ENOTSUP (a kernel without custom slices), EPOLICY.
   */
  setSlice(pid: number, sliceNs: number): string | undefined;
  /** Is this still the same process (pid and start time)? */
  isAlive(ref: ProcessRef): boolean;
}

/** Where ShownClient learns which display is shown and whose process runs on it. */
export interface ShownClientParts {
  /** The display on screen now (null: none yet). */
  active(): string | null;
  /** The running process of VM (or admin screen) `name` and its backend; null when none runs. */
  processOf(name: string): (ProcessRef & { backend: string }) | null;
}

/** Backends whose VM process is the X client of its display (a subhost's client runs inside it). */
const DRAWS_ITS_DISPLAY: ReadonlySet<string> = new Set(['qemu', 'command', 'virtualbox']);

/**
 * The slice the shown VM's process asks for: the kernel's smallest. Measured in the e2e bench
 * (a CPU spinner, 2 vCPUs, Linux 6.18), added p99 over bare XTEST: a separate receiver with its
 * slice set by hand, whole runs alternated, 2.22, 2.16 and 1.32 ms at the default, -0.15, -0.05
 * and 0.65 ms at 0.1 ms, 1.41 ms at 0.3 ms; the receiver as the shown VM, blocks interleaved with
 * the same VM at the default slice, 0.34, -0.30, -0.56 and -0.63 ms against 0.54, 0.72, 0.45 and
 * 0.29 ms (90% intervals about ±1.5 ms).
 */
export const SHOWN_CLIENT_SLICE_NS = MIN_SLICE_NS;

/**
 * The last hop of a key is the VM's own process: the X client on the display shown (QEMU's UI
 * thread, a command VM's window) reads the event kvmux injected. It runs as a normal task beside
 * the other VMs, and on a busy CPU the kernel lets the running task finish its slice before it:
 * 1.4 ms at the default on 2 CPUs, most of the forwarding tail under load. While its display is
 * on screen, its main thread asks for the shortest slice (Linux ≥ 6.12, EEVDF): woken by a key,
 * it preempts the running task at once. Its share of the CPU is unchanged (that is its weight),
 * so unlike real-time there is nothing for a busy guest to gain and no budget to keep (the other
 * VMs pay in context switches: each wake-up of the shown one preempts them). Off screen
 * it goes back to the default. One process is shortened at a time; a kernel without custom
 * slices is told once and then left alone.
 *
 * A process that has gone is forgotten, never reset: its pid may belong to another by now.
 */
export class ShownClient {
  private shortened: ProcessRef | null = null;
  private unsupported = false;
  private refusedOnce = false;
  private resetRefusedOnce = false;
  private closed = false;
  /** Per VM off screen: the process last given the default (its status comes often, its process rarely changes). */
  private readonly reset = new Map<string, string>();

  constructor(
    private readonly io: ShownClientIo,
    private readonly parts: ShownClientParts,
    private readonly log: Logger,
    private readonly sliceNs = SHOWN_CLIENT_SLICE_NS,
  ) {}

  /** The process shortened now, if any. */
  get current(): ProcessRef | null {
    return this.shortened;
  }

  /** The monitor shows another display: its VM's process is the one shortened now. */
  switched(): void {
    if (this.closed) return;
    this.show(this.clientOf(this.parts.active()));
  }

  /**
   * A VM's (or the admin screen's) status changed. Shown, it is followed (started again: its new
   * process is shortened). Running off screen, a process seen for the first time (started, or
   * adopted from a kvmux killed while showing it) gets the default slice.
   */
  vmState(name: string, state: string): void {
    if (this.closed) return;
    if (name === this.parts.active()) {
      this.switched();
      return;
    }
    const ref = state === 'running' ? this.clientOf(name) : null;
    if (!ref) {
      this.reset.delete(name);
      return;
    }
    const key = `${ref.pid}@${ref.startTime}`;
    if (this.reset.get(name) === key) return;
    this.reset.set(name, key);
    this.offScreen(ref);
  }

  /** kvmux stops: the shortened process gets the default (VMs left running included); no more changes. */
  close(): void {
    this.show(null);
    this.closed = true;
  }

  /** `client` is the process of the display on screen now (null: none, or not one kvmux runs). */
  show(client: ProcessRef | null): void {
    const old = this.shortened;
    if (sameProcess(old, client) || this.unsupported) return;
    this.shortened = null;
    if (old) this.resetSlice(old);
    if (!client || !this.io.isAlive(client)) return;
    const failed = this.io.setSlice(client.pid, this.sliceNs);
    if (!failed) {
      this.shortened = { pid: client.pid, startTime: client.startTime };
      this.log.debug({ pid: client.pid, sliceNs: this.sliceNs }, 'VM on screen: short scheduler slice');
      return;
    }
    if (failed === 'ESRCH') return;
    if (failed === 'ENOTSUP' || failed === 'ENOSYS') {
      this.unsupported = true;
      this.log.info(
        { err: failed },
        "no custom scheduler slices here (Linux 6.12 or later): the VM on screen waits out busy tasks' slices on a busy CPU",
      );
      return;
    }
    if (!this.refusedOnce) {
      this.refusedOnce = true;
      this.log.warn(
        { pid: client.pid, err: failed },
        'VM on screen: short scheduler slice refused; keys may lag on a busy machine',
      );
    }
  }

  /**
   * `client` runs off screen (started or adopted while another display is shown): default slice.
   * A kvmux killed while showing it could not reset it.
   */
  offScreen(client: ProcessRef): void {
    if (this.unsupported || sameProcess(this.shortened, client) || !this.io.isAlive(client)) return;
    this.resetSlice(client);
  }

  /** The process on display `name` that reads its keys, when a VM of a backend that draws its display runs there. */
  private clientOf(name: string | null): ProcessRef | null {
    const p = name === null ? null : this.parts.processOf(name);
    return p && DRAWS_ITS_DISPLAY.has(p.backend) ? { pid: p.pid, startTime: p.startTime } : null;
  }

  private resetSlice(ref: ProcessRef): void {
    if (!this.io.isAlive(ref)) return;
    const failed = this.io.setSlice(ref.pid, 0);
    // gone, or real-time/idle (its slice was never ours); said once, it would be the same reason each time
    if (!failed || failed === 'ESRCH' || failed === 'EPOLICY' || this.resetRefusedOnce) return;
    this.resetRefusedOnce = true;
    this.log.warn({ pid: ref.pid, err: failed }, 'VM off screen: resetting its scheduler slice failed');
  }
}
