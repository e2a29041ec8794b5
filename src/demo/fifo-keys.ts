import { writeSync } from 'node:fs';
import { constants, type FileHandle, open } from 'node:fs/promises';
import { EV, KEY_DOWN, KEY_UP, keyCode, SYN_REPORT } from '../input/codes.js';
import { encodeEvent, INPUT_EVENT_SIZE } from '../input/event.js';

/**
 * Types into kvmux's FIFO input device (the contract's raw `struct input_event` records), the
 * way a keyboard would: press/release with a SYN_REPORT after each. Used by the demo, the
 * end-to-end tests and the benches, because these machines have no /dev/input or /dev/uinput.
 */
export class FifoKeyboard {
  // the FileHandle is kept: dropping it would let the GC close the fd under us
  private constructor(private readonly fh: FileHandle) {}

  /** Opens for writing (waits, off the main thread, for kvmux to have the FIFO open). */
  static async open(path: string): Promise<FifoKeyboard> {
    return new FifoKeyboard(await open(path, constants.O_WRONLY));
  }

  /**
   * Raw events, written in one go on this thread: a keyboard's events arrive at once, and a
   * thread-pool hop per key would only add its own latency to what the benches measure.
   */
  async write(events: ReadonlyArray<{ type: number; code: number; value: number }>): Promise<void> {
    this.writeRaw(encodeEvents(events));
  }

  /** Records already encoded with encodeEvents (benchmarks: no encoding cost while timing). */
  writeRaw(records: Buffer): void {
    let off = 0;
    while (off < records.length) off += writeSync(this.fh.fd, records, off);
  }

  /** Key press or release by name (`scrolllock`, `leftctrl`, `a`), followed by SYN_REPORT. */
  async key(name: string, down: boolean): Promise<void> {
    await this.write(keyEvents(name, down));
  }

  /** Press and release one key. */
  async tap(name: string): Promise<void> {
    await this.write([...keyEvents(name, true), ...keyEvents(name, false)]);
  }

  /** Hold `mods`, tap `key`, release the mods in reverse order: `chord(['leftctrl','leftalt'], 'f1')`. */
  async chord(mods: readonly string[], key: string): Promise<void> {
    const down = mods.flatMap((m) => keyEvents(m, true));
    const up = [...mods].reverse().flatMap((m) => keyEvents(m, false));
    await this.write([...down, ...keyEvents(key, true), ...keyEvents(key, false), ...up]);
  }

  /** Double tap of the hotkey with `gapMs` between the taps (default 60 ms, inside the window). */
  async doubleTap(key = 'scrolllock', gapMs = 60): Promise<void> {
    await this.tap(key);
    await sleep(gapMs);
    await this.tap(key);
  }

  /** Type text made of keys that have names: letters, digits, space, and `.,-/`. */
  async type(text: string, gapMs = 5): Promise<void> {
    for (const ch of text) {
      const shifted = /[A-Z]/.test(ch);
      const name = TYPE_NAMES[ch.toLowerCase()] ?? ch.toLowerCase();
      if (shifted) await this.chord(['leftshift'], name);
      else await this.tap(name);
      if (gapMs > 0) await sleep(gapMs);
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

const TYPE_NAMES: Record<string, string> = {
  ' ': 'space',
  '.': 'dot',
  ',': 'comma',
  '-': 'minus',
  '/': 'slash',
  '\n': 'enter',
};

export function encodeEvents(events: ReadonlyArray<{ type: number; code: number; value: number }>): Buffer {
  const buf = Buffer.alloc(events.length * INPUT_EVENT_SIZE);
  const now = Date.now();
  events.forEach((ev, i) => {
    encodeEvent({ ...ev, timeMs: now }, buf, i * INPUT_EVENT_SIZE);
  });
  return buf;
}

export function keyEvents(name: string, down: boolean): Array<{ type: number; code: number; value: number }> {
  const code = keyCode(name);
  if (code === undefined) throw new Error(`unknown key name "${name}"`);
  return [
    { type: EV.KEY, code, value: down ? KEY_DOWN : KEY_UP },
    { type: EV.SYN, code: SYN_REPORT, value: 0 },
  ];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
