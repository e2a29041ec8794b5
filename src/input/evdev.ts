import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { DeviceError, errnoName } from '../util/errors.js';
import { classify, type DeviceCaps, type DeviceClass } from './capabilities.js';
import { ABS, EV, KEY_MAX, LED, SYN_REPORT } from './codes.js';
import { encodeEvent, INPUT_EVENT_SIZE, type InputEvent } from './event.js';
import { FdEventReader, type ReaderCallbacks } from './fd-reader.js';
import {
  type AbsInfo,
  bitmapBytes,
  bitsSet,
  decodeAbsInfo,
  EVIOCGABS,
  EVIOCGBIT,
  EVIOCGKEY,
  EVIOCGLED,
  EVIOCGNAME,
  EVIOCGPROP,
  EVIOCGRAB,
  testBit,
} from './ioctl.js';
import { ioctlBuffer, ioctlInt } from './libc.js';

const NAME_LEN = 256;
const TYPES_BYTES = bitmapBytes(0x1f);
const REL_BYTES = bitmapBytes(0x0f);
const ABS_BYTES = bitmapBytes(0x3f);
const LED_BYTES = bitmapBytes(0x0f);
const PROP_BYTES = bitmapBytes(0x1f);

/** One /dev/input/event* device: ioctls, grab, LED writes and a nonblocking reader. */
export class EvdevDevice {
  private grabbed = false;
  private reader: FdEventReader | undefined;
  private ledFd: number | undefined;
  readonly name: string;
  readonly caps: DeviceCaps;
  readonly cls: DeviceClass;

  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {
    this.name = this.readName();
    this.caps = this.readCaps();
    this.cls = classify(this.caps);
  }

  static open(path: string): EvdevDevice {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw new DeviceError(path, `open failed: ${errnoName(err)}`, { cause: err });
    }
    try {
      return new EvdevDevice(path, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private ioctl(what: string, request: number, buf: Buffer): Buffer {
    try {
      ioctlBuffer(this.fd, request, buf);
      return buf;
    } catch (err) {
      throw new DeviceError(this.path, `${what} failed: ${errnoName(err)}`, { cause: err });
    }
  }

  private readName(): string {
    const buf = this.ioctl('EVIOCGNAME', EVIOCGNAME(NAME_LEN), Buffer.alloc(NAME_LEN));
    const end = buf.indexOf(0);
    return buf.toString('utf8', 0, end < 0 ? NAME_LEN : end);
  }

  private readCaps(): DeviceCaps {
    const bits = (ev: number, len: number) =>
      this.ioctl(`EVIOCGBIT(${ev})`, EVIOCGBIT(ev, len), Buffer.alloc(len));
    return {
      types: bits(0, TYPES_BYTES),
      keys: bits(EV.KEY, bitmapBytes(KEY_MAX)),
      rel: bits(EV.REL, REL_BYTES),
      abs: bits(EV.ABS, ABS_BYTES),
      props: this.readProps(),
    };
  }

  private readProps(): Uint8Array {
    try {
      return this.ioctl('EVIOCGPROP', EVIOCGPROP(PROP_BYTES), Buffer.alloc(PROP_BYTES));
    } catch {
      return new Uint8Array(PROP_BYTES); // kernels before 2.6.38 lack it: classify by bits alone
    }
  }

  /** Range of ABS_X/ABS_Y, for turning positions into screen fractions. */
  absRanges(): { x?: AbsInfo; y?: AbsInfo } {
    const one = (axis: number) =>
      testBit(this.caps.abs, axis)
        ? decodeAbsInfo(this.ioctl('EVIOCGABS', EVIOCGABS(axis), Buffer.alloc(24)))
        : undefined;
    const x = one(ABS.X);
    const y = one(ABS.Y);
    return { ...(x ? { x } : {}), ...(y ? { y } : {}) };
  }

  /** Key codes down right now, per the kernel (EVIOCGKEY). */
  keysDown(): number[] {
    return bitsSet(
      this.ioctl('EVIOCGKEY', EVIOCGKEY(bitmapBytes(KEY_MAX)), Buffer.alloc(bitmapBytes(KEY_MAX))),
    );
  }

  /** Lit LEDs as a mask (bit 0 NumLock, 1 CapsLock, 2 ScrollLock). */
  leds(): number {
    return this.ioctl('EVIOCGLED', EVIOCGLED(LED_BYTES), Buffer.alloc(LED_BYTES)).readUInt8(0);
  }

  get isGrabbed(): boolean {
    return this.grabbed;
  }

  /** Grab unless a key is down (its release would otherwise be lost to whoever has it). */
  tryGrab(): boolean {
    if (this.grabbed) return true;
    if (this.keysDown().length > 0) return false;
    try {
      ioctlInt(this.fd, EVIOCGRAB, 1);
    } catch (err) {
      throw new DeviceError(this.path, `EVIOCGRAB failed: ${errnoName(err)}`, { cause: err });
    }
    this.grabbed = true;
    return true;
  }

  ungrab(): void {
    if (!this.grabbed) return;
    this.grabbed = false;
    try {
      ioctlInt(this.fd, EVIOCGRAB, 0);
    } catch {
      // The device may be gone already; the kernel drops the grab with the fd anyway.
    }
  }

  /** Write EV_LED events (and a SYN) so the keyboard lights what the active display has. */
  setLeds(mask: number): void {
    if (!testBit(this.caps.types, EV.LED)) return;
    this.ledFd ??= openSync(this.path, constants.O_WRONLY | constants.O_NONBLOCK);
    const codes = [LED.NUML, LED.CAPSL, LED.SCROLLL];
    const buf = Buffer.alloc(INPUT_EVENT_SIZE * (codes.length + 1));
    codes.forEach((code, i) => {
      encodeEvent({ type: EV.LED, code, value: (mask >> i) & 1 }, buf, i * INPUT_EVENT_SIZE);
    });
    encodeEvent({ type: EV.SYN, code: SYN_REPORT, value: 0 }, buf, codes.length * INPUT_EVENT_SIZE);
    try {
      writeSync(this.ledFd, buf);
    } catch (err) {
      throw new DeviceError(this.path, `LED write failed: ${errnoName(err)}`, { cause: err });
    }
  }

  start(cb: ReaderCallbacks): void {
    this.reader = new FdEventReader(this.path, this.fd, cb, false);
    this.reader.start();
  }

  /** Closing the fd also drops the grab in the kernel, so a crash never leaves the console dead. */
  close(): void {
    this.reader?.close();
    this.reader = undefined;
    this.ungrab();
    if (this.ledFd !== undefined) closeSync(this.ledFd);
    this.ledFd = undefined;
    try {
      closeSync(this.fd);
    } catch {
      // Already closed after a read error.
    }
  }
}

export type { InputEvent };
