import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { EV, SYN_REPORT } from '../../../src/input/codes.js';
import { decodeEvent, encodeEvent, INPUT_EVENT_SIZE, type InputEvent } from '../../../src/input/event.js';
import { ioc } from '../../../src/input/ioctl.js';
import { ioctlBuffer, ioctlInt } from '../../../src/input/libc.js';

/**
 * A real kernel virtual input device (uinput), for the evdev test that runs inside a Linux guest:
 * the kernel gives it a /dev/input/eventN node that behaves like a physical keyboard or mouse.
 */
const U = 0x55; // 'U'
const UI_DEV_CREATE = ioc(0, U, 1, 0);
const UI_DEV_DESTROY = ioc(0, U, 2, 0);
const UI_DEV_SETUP = ioc(1, U, 3, 92);
const UI_SET_EVBIT = ioc(1, U, 100, 4);
const UI_SET_KEYBIT = ioc(1, U, 101, 4);
const UI_SET_RELBIT = ioc(1, U, 102, 4);
const UI_SET_ABSBIT = ioc(1, U, 103, 4);
const UI_SET_LEDBIT = ioc(1, U, 105, 4);
const UI_SET_PROPBIT = ioc(1, U, 110, 4);
const UI_ABS_SETUP = ioc(1, U, 4, 28);

export interface UinputSpec {
  name: string;
  keys?: number[];
  rel?: number[];
  leds?: number[];
  /** Absolute axes with their range. */
  abs?: { axis: number; min: number; max: number }[];
  props?: number[];
}

export class UinputDevice {
  readonly fd: number;

  constructor(spec: UinputSpec) {
    this.fd = openSync('/dev/uinput', constants.O_RDWR | constants.O_NONBLOCK);
    const set = (req: number, v: number) => ioctlInt(this.fd, req, v);
    set(UI_SET_EVBIT, EV.SYN);
    if (spec.keys?.length) set(UI_SET_EVBIT, EV.KEY);
    for (const k of spec.keys ?? []) set(UI_SET_KEYBIT, k);
    if (spec.rel?.length) set(UI_SET_EVBIT, EV.REL);
    for (const r of spec.rel ?? []) set(UI_SET_RELBIT, r);
    if (spec.leds?.length) set(UI_SET_EVBIT, EV.LED);
    for (const l of spec.leds ?? []) set(UI_SET_LEDBIT, l);
    if (spec.abs?.length) set(UI_SET_EVBIT, EV.ABS);
    for (const a of spec.abs ?? []) {
      set(UI_SET_ABSBIT, a.axis);
      const info = Buffer.alloc(28); // struct uinput_abs_setup: u16 code, (pad), struct input_absinfo
      info.writeUInt16LE(a.axis, 0);
      info.writeInt32LE(a.min, 8);
      info.writeInt32LE(a.max, 12);
      ioctlBuffer(this.fd, UI_ABS_SETUP, info);
    }
    for (const p of spec.props ?? []) set(UI_SET_PROPBIT, p);
    const setup = Buffer.alloc(92); // struct uinput_setup: input_id (4 x u16), name[80], ff_effects_max
    setup.writeUInt16LE(0x03, 0); // BUS_USB
    setup.writeUInt16LE(0x1234, 2);
    setup.writeUInt16LE(0x5678, 4);
    setup.write(spec.name, 8, 79, 'utf8');
    ioctlBuffer(this.fd, UI_DEV_SETUP, setup);
    ioctlInt(this.fd, UI_DEV_CREATE, 0);
  }

  /** Emit events followed by a SYN_REPORT, as a real device reports them. */
  emit(...evs: [number, number, number][]): void {
    const all = [...evs, [EV.SYN, SYN_REPORT, 0] as [number, number, number]];
    const buf = Buffer.alloc(all.length * INPUT_EVENT_SIZE);
    all.forEach(([type, code, value], i) => {
      encodeEvent({ type, code, value }, buf, i * INPUT_EVENT_SIZE);
    });
    writeSync(this.fd, buf);
  }

  /** Events the kernel sent back to the device (LED changes written to its evdev node). */
  readBack(): InputEvent[] {
    const buf = Buffer.alloc(INPUT_EVENT_SIZE * 64);
    let n = 0;
    try {
      n = readSync(this.fd, buf);
    } catch {
      return [];
    }
    const out: InputEvent[] = [];
    for (let off = 0; off + INPUT_EVENT_SIZE <= n; off += INPUT_EVENT_SIZE) out.push(decodeEvent(buf, off));
    return out;
  }

  destroy(): void {
    ioctlInt(this.fd, UI_DEV_DESTROY, 0);
    closeSync(this.fd);
  }
}
