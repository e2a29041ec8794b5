/**
 * The VT console has one holder at a time, served in arrival order. Xorg on a real KMS driver
 * (modesetting) VT_ACTIVATEs its own VT at start and blocks in VT_WAITACTIVE until that VT is
 * active; DRM master goes to the server on the active VT. Any other VT activation in between (a
 * second Xorg starting, kvmux switching) leaves the first one waiting for good: seen in the
 * appliance image, where the 2nd and 3rd of three parallel Xorg starts hung after reading their
 * config. So Xorg starts and kvmux's VT switches take turns through this lock.
 */
export class ConsoleLock {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Runs `fn` once every earlier holder is done (whether it succeeded or not). */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(fn).finally(() => {
      this.waiting--;
    });
    this.tail = result.catch(() => {});
    return result;
  }

  /** Holders running or queued (for logs and tests). */
  get pending(): number {
    return this.waiting;
  }
}

/** The process's one console (a process holds /dev/tty0 once; see vt.ts). */
export const consoleLock = new ConsoleLock();
