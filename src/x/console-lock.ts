/**
 * The VT console has one holder at a time, served in arrival order. Xorg on a real KMS driver
 * (modesetting) VT_ACTIVATEs its own VT at start and blocks in VT_WAITACTIVE until that VT is
 * active; DRM master goes to the server on the active VT. Any other VT activation in between (a
 * second Xorg starting, kvmux switching) leaves the first one waiting for good: seen in the
 * appliance image, where the 2nd and 3rd of three parallel Xorg starts hung after reading their
 * config. So Xorg starts and kvmux's VT switches take turns through this lock.
 *
 * Every holder has a deadline: one that has not settled by then (an Xorg stuck in a DRM ioctl)
 * loses the lock to the next holder, so the console can never be held for good.
 */
export interface HoldOptions {
  /** For the overrun report: what the holder does ('xorg :21 start', 'switch to alpha'). */
  what?: string;
  /** The lock passes on after this long even if `fn` has not settled (default `defaultHoldMs`). */
  maxHoldMs?: number;
  /** Called once when the deadline passed with `fn` still running (log it there). */
  onOverrun?: (what: string, heldMs: number) => void;
}

export class ConsoleLock {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(readonly defaultHoldMs = 15_000) {}

  /**
   * Runs `fn` once every earlier holder is done (or overran its deadline). The returned promise
   * follows `fn` itself, also past the deadline; only the lock moves on.
   */
  run<T>(fn: () => Promise<T>, opts: HoldOptions = {}): Promise<T> {
    this.waiting++;
    const result = this.tail.then(fn).finally(() => {
      this.waiting--;
    });
    const maxHoldMs = opts.maxHoldMs ?? this.defaultHoldMs;
    const released = this.tail.then(() => this.deadline(result, maxHoldMs, opts));
    this.tail = released;
    return result;
  }

  /** Resolves when `held` settles or `maxHoldMs` after it started, whichever comes first. */
  private deadline(held: Promise<unknown>, maxHoldMs: number, opts: HoldOptions): Promise<void> {
    const t0 = Date.now();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        opts.onOverrun?.(opts.what ?? 'a console holder', Date.now() - t0);
        resolve();
      }, maxHoldMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      held.then(done, done);
    });
  }

  /** Holders running or queued (for logs and tests), overrun ones included until they settle. */
  get pending(): number {
    return this.waiting;
  }
}

/** The process's one console (a process holds /dev/tty0 once; see vt.ts). */
export const consoleLock = new ConsoleLock();
