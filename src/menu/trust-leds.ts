import type { LedSink } from '../input/sink.js';

/**
 * Trust marking on the keyboard: Scroll Lock (or every lock LED) lit while the menu is open, the
 * previous LEDs restored after. A guest never sees the hotkey, so it cannot light them itself.
 */
export const LED_BITS = { num: 1, caps: 2, scroll: 4 } as const;

export type TrustLedMode = 'scroll' | 'all';

/** The mask to show while open: the current locks plus Scroll Lock, or all three. */
export function markedMask(current: number, mode: TrustLedMode): number {
  return mode === 'all' ? LED_BITS.num | LED_BITS.caps | LED_BITS.scroll : current | LED_BITS.scroll;
}

export class TrustLeds {
  private saved: number | null = null;

  constructor(
    private readonly sink: LedSink,
    private readonly mode: TrustLedMode = 'scroll',
  ) {}

  /** Menu opened: remember `current` (the active display's LEDs) and light the trust mask. */
  mark(current: number): void {
    if (this.saved === null) this.saved = current;
    this.sink.setLeds(markedMask(current, this.mode));
  }

  /** Menu closed: put back what was lit (or `now`, the newly active display's LEDs after a switch). */
  restore(now?: number): void {
    const mask = now ?? this.saved;
    this.saved = null;
    if (mask !== null && mask !== undefined) this.sink.setLeds(mask);
  }

  get marked(): boolean {
    return this.saved !== null;
  }
}
