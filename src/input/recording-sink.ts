import { keyName } from './codes.js';
import type { DisplaySink, LedSink } from './sink.js';

/**
 * FAKE sink for tests and `kvmux monitor`: records what a display would have received as readable
 * lines (`to alpha: a down`, `to alpha: button 1 up`, `to alpha: move 3 -2`, `leds capslock`).
 */
export class RecordingSink implements DisplaySink {
  flushes = 0;

  constructor(
    readonly display: string,
    private readonly lines: string[],
  ) {}

  key(code: number, down: boolean): void {
    this.lines.push(`to ${this.display}: ${keyName(code)} ${down ? 'down' : 'up'}`);
  }

  button(button: number, down: boolean): void {
    this.lines.push(`to ${this.display}: button ${button} ${down ? 'down' : 'up'}`);
  }

  moveRelative(dx: number, dy: number): void {
    this.lines.push(`to ${this.display}: move ${dx} ${dy}`);
  }

  moveAbsolute(fx: number, fy: number): void {
    this.lines.push(`to ${this.display}: abs ${fx.toFixed(3)} ${fy.toFixed(3)}`);
  }

  flush(): void {
    this.flushes++;
  }
}

const LED_NAMES = ['numlock', 'capslock', 'scrolllock'] as const;

export function ledMaskText(mask: number): string {
  const lit = LED_NAMES.filter((_, i) => (mask >> i) & 1);
  return lit.length ? lit.join('+') : 'none';
}

/** FAKE LED sink: records `leds capslock+numlock` lines. */
export class RecordingLedSink implements LedSink {
  constructor(private readonly lines: string[]) {}

  setLeds(mask: number): void {
    this.lines.push(`leds ${ledMaskText(mask)}`);
  }
}

/** A recording sink per display name, all writing into one shared line log. */
export class RecordingDisplays {
  readonly lines: string[] = [];
  private readonly sinks = new Map<string, RecordingSink>();

  constructor(displays: readonly string[]) {
    for (const d of displays) this.sinks.set(d, new RecordingSink(d, this.lines));
  }

  sinkFor(display: string): RecordingSink | undefined {
    return this.sinks.get(display);
  }

  take(): string[] {
    return this.lines.splice(0);
  }
}
