import { decodeEvent, INPUT_EVENT_SIZE, type InputEvent } from './event.js';

/**
 * Splits a byte stream into 24-byte input_event records; a record cut across two reads (FIFO
 * writers may write any length) is kept until its remaining bytes arrive. Pure.
 */
export class RecordSplitter {
  private carry = Buffer.alloc(0);

  /** Decode every whole record in `chunk` (prefixed by what was carried over). */
  push(chunk: Buffer, source: string | undefined, emit: (ev: InputEvent) => void): void {
    let buf = chunk;
    if (this.carry.length > 0) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = Buffer.alloc(0);
    }
    const whole = buf.length - (buf.length % INPUT_EVENT_SIZE);
    for (let off = 0; off < whole; off += INPUT_EVENT_SIZE) {
      emit(decodeEvent(buf, off, source));
    }
    if (whole < buf.length) this.carry = Buffer.from(buf.subarray(whole));
  }

  get pendingBytes(): number {
    return this.carry.length;
  }
}
