/** One evdev event as kvmux handles it; time in milliseconds (monotonic or wall, per source). */
export interface InputEvent {
  readonly type: number;
  readonly code: number;
  readonly value: number;
  readonly timeMs: number;
  /** The device or FIFO path it came from (absolute-axis ranges are per device). */
  readonly source?: string;
}

/** x86-64 `struct input_event`: int64 sec, int64 usec, uint16 type, uint16 code, int32 value. */
export const INPUT_EVENT_SIZE = 24;

export function decodeEvent(buf: Buffer, offset = 0, source?: string): InputEvent {
  // Two 32-bit halves instead of readBigInt64LE: BigInt allocation dominated decoding cost.
  const sec = buf.readInt32LE(offset + 4) * 2 ** 32 + buf.readUInt32LE(offset);
  const usec = buf.readInt32LE(offset + 12) * 2 ** 32 + buf.readUInt32LE(offset + 8);
  const timeMs = sec * 1000 + usec / 1000;
  const type = buf.readUInt16LE(offset + 16);
  const code = buf.readUInt16LE(offset + 18);
  const value = buf.readInt32LE(offset + 20);
  return source === undefined ? { type, code, value, timeMs } : { type, code, value, timeMs, source };
}

export function encodeEvent(
  ev: { type: number; code: number; value: number; timeMs?: number },
  out?: Buffer,
  offset = 0,
): Buffer {
  const buf = out ?? Buffer.alloc(INPUT_EVENT_SIZE);
  const t = ev.timeMs ?? 0;
  const sec = Math.floor(t / 1000);
  buf.writeBigInt64LE(BigInt(sec), offset);
  buf.writeBigInt64LE(BigInt(Math.round((t - sec * 1000) * 1000)), offset + 8);
  buf.writeUInt16LE(ev.type, offset + 16);
  buf.writeUInt16LE(ev.code, offset + 18);
  buf.writeInt32LE(ev.value, offset + 20);
  return buf;
}
