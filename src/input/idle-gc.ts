import { getHeapSpaceStatistics } from 'node:v8';

type GcFn = (opts: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

export interface IdleGcOptions {
  /** Input quiet this long before collecting (default 50 ms: shorter than a typist's pause). */
  idleMs?: number;
  /** Collect only when the young generation is at least this full (default 0.25). */
  minFill?: number;
  /** V8's gc() (node --expose-gc); without it IdleGc does nothing. */
  gc?: GcFn | undefined;
  now?: () => number;
  /** How full the young generation is, 0..1 (default: V8's heap statistics). */
  fill?: () => number;
}

/**
 * A young-generation GC between keys instead of during one. V8 scavenges when the young
 * generation fills, wherever that happens; a scavenge that falls on a key press delayed it by 1-2
 * ms (8 ms on a loaded machine, measured in the e2e bench). Once input has been quiet for
 * `idleMs`, a minor GC runs if the young generation is filled past `minFill`, so the next keys
 * start with room. Nothing runs while no input comes: an idle kvmux stays idle.
 */
export class IdleGc {
  private readonly idleMs: number;
  private readonly minFill: number;
  private readonly gc: GcFn | undefined;
  private readonly now: () => number;
  private readonly fill: () => number;
  private lastInput = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Minor GCs run so far (for tests and `service.status`). */
  runs = 0;
  /** Quiet spells that found the young generation emptier than `minFill` (V8 had scavenged). */
  skipped = 0;

  constructor(opts: IdleGcOptions = {}) {
    this.idleMs = opts.idleMs ?? 50;
    this.minFill = opts.minFill ?? 0.25;
    this.gc = 'gc' in opts ? opts.gc : (globalThis as { gc?: GcFn }).gc;
    this.now = opts.now ?? (() => performance.now());
    this.fill = opts.fill ?? youngFill;
  }

  get available(): boolean {
    return this.gc !== undefined;
  }

  /** Input arrived: one clock read per call, the timer is armed only at the start of a burst. */
  poke(): void {
    if (!this.gc) return;
    this.lastInput = this.now();
    if (!this.timer) this.arm(this.idleMs);
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.fire(), ms);
    this.timer.unref();
  }

  private fire(): void {
    const quiet = this.now() - this.lastInput;
    if (quiet < this.idleMs) {
      this.arm(this.idleMs - quiet);
      return;
    }
    this.timer = undefined;
    if (this.fill() < this.minFill) {
      this.skipped++;
      return;
    }
    this.gc?.({ type: 'minor', execution: 'sync' });
    this.runs++;
  }
}

/** How full V8's young generation is, 0..1 (new_space's space_size counts both semi-spaces). */
export function youngFill(): number {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  const capacity = (s?.space_used_size ?? 0) + (s?.space_available_size ?? 0);
  return s && capacity > 0 ? s.space_used_size / capacity : 0;
}
