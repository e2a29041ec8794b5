/**
 * evdev ioctl request numbers (linux/input.h), computed the way the kernel's `_IOC` macro does so
 * that the variable-length ones (EVIOCGBIT, EVIOCGKEY, EVIOCGNAME) can be sized per call.
 * Pure: no I/O here; `libc.ts` makes the calls.
 */
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
const EVDEV_TYPE = 0x45; // 'E'

/** `_IOC(dir, type, nr, size)` for x86-64/arm64 (14-bit size field); unsigned 32-bit result. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  if (size < 0 || size >= 1 << 14) throw new RangeError(`ioctl size ${size} does not fit in 14 bits`);
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

export const EVIOCGVERSION = ioc(IOC_READ, EVDEV_TYPE, 0x01, 4);
/** Takes the grab flag by value (1 grab, 0 release). */
export const EVIOCGRAB = ioc(IOC_WRITE, EVDEV_TYPE, 0x90, 4);
export const EVIOCGNAME = (len: number): number => ioc(IOC_READ, EVDEV_TYPE, 0x06, len);
export const EVIOCGPHYS = (len: number): number => ioc(IOC_READ, EVDEV_TYPE, 0x07, len);
/** Input property bitmap (INPUT_PROP_POINTER, INPUT_PROP_DIRECT, ...). */
export const EVIOCGPROP = (len: number): number => ioc(IOC_READ, EVDEV_TYPE, 0x09, len);
/** Bitmap of keys currently down. */
export const EVIOCGKEY = (len: number): number => ioc(IOC_READ, EVDEV_TYPE, 0x18, len);
/** Bitmap of LEDs currently lit. */
export const EVIOCGLED = (len: number): number => ioc(IOC_READ, EVDEV_TYPE, 0x19, len);
/** Capability bitmap for event type `ev` (0 gives the event types themselves). */
export const EVIOCGBIT = (ev: number, len: number): number => ioc(IOC_READ, EVDEV_TYPE, 0x20 + ev, len);
/** `struct input_absinfo` (six int32: value, minimum, maximum, fuzz, flat, resolution) of one axis. */
export const ABSINFO_SIZE = 24;
export const EVIOCGABS = (axis: number): number => ioc(IOC_READ, EVDEV_TYPE, 0x40 + axis, ABSINFO_SIZE);
export const IOC_DIR = { NONE: IOC_NONE, WRITE: IOC_WRITE, READ: IOC_READ } as const;

/** Bytes needed for a bitmap of `max + 1` bits, rounded up to whole longs as the kernel copies them. */
export function bitmapBytes(max: number): number {
  return Math.ceil((max + 1) / 64) * 8;
}

export function testBit(bits: Uint8Array, n: number): boolean {
  const byte = bits[n >> 3];
  return byte !== undefined && (byte & (1 << (n & 7))) !== 0;
}

export function setBits(bits: Uint8Array, ns: Iterable<number>): Uint8Array {
  for (const n of ns) bits[n >> 3] = (bits[n >> 3] ?? 0) | (1 << (n & 7));
  return bits;
}

/** Every set bit of a bitmap, ascending. */
export function bitsSet(bits: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bits.length * 8; i++) if (testBit(bits, i)) out.push(i);
  return out;
}

export interface AbsInfo {
  readonly value: number;
  readonly min: number;
  readonly max: number;
}

export function decodeAbsInfo(buf: Buffer): AbsInfo {
  return { value: buf.readInt32LE(0), min: buf.readInt32LE(4), max: buf.readInt32LE(8) };
}
