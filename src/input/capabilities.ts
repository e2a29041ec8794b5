import { ABS, BTN_MOUSE, EV, KEY, REL } from './codes.js';
import { testBit } from './ioctl.js';

/** What a device is good for, decided from its capability bitmaps (EVIOCGBIT). Pure. */
export interface DeviceCaps {
  /** Event types (EVIOCGBIT(0)). */
  readonly types: Uint8Array;
  readonly keys: Uint8Array;
  readonly rel: Uint8Array;
  readonly abs: Uint8Array;
  /** Input properties (EVIOCGPROP); absent on old kernels. */
  readonly props?: Uint8Array;
}

export interface DeviceClass {
  readonly keyboard: boolean;
  /** relative: mouse; absolute: tablet or touchscreen (position = screen); touchpad: moves relatively. */
  readonly pointer: 'relative' | 'absolute' | 'touchpad' | undefined;
  readonly leds: boolean;
}

/** Keys a real keyboard has; a power button or a headset's volume keys must not count. */
const KEYBOARD_PROBES = [KEY['A'], KEY['Z'], KEY['SPACE'], KEY['ENTER'], KEY['LEFTSHIFT']] as number[];

export function classify(caps: DeviceCaps): DeviceClass {
  const hasKey = testBit(caps.types, EV.KEY);
  const keyboard = hasKey && KEYBOARD_PROBES.every((k) => testBit(caps.keys, k));
  const hasButton = hasKey && (testBit(caps.keys, BTN_MOUSE) || testBit(caps.keys, 0x14a));
  const relative =
    testBit(caps.types, EV.REL) && testBit(caps.rel, REL.X) && testBit(caps.rel, REL.Y) && hasButton;
  const absolute =
    testBit(caps.types, EV.ABS) && testBit(caps.abs, ABS.X) && testBit(caps.abs, ABS.Y) && hasButton;
  const pointer = relative ? 'relative' : absolute ? (isTouchpad(caps) ? 'touchpad' : 'absolute') : undefined;
  return { keyboard, pointer, leds: testBit(caps.types, EV.LED) };
}

const INPUT_PROP_POINTER = 0;
const INPUT_PROP_DIRECT = 1;
const BTN_TOOL_FINGER = 0x145;

/** A touchpad says "pointer, not direct"; without properties, a finger tool and no pen is the hint. */
function isTouchpad(caps: DeviceCaps): boolean {
  if (caps.props && testBit(caps.props, INPUT_PROP_DIRECT)) return false;
  if (caps.props && testBit(caps.props, INPUT_PROP_POINTER)) return true;
  return testBit(caps.keys, BTN_TOOL_FINGER) && !testBit(caps.keys, 0x140);
}

/** Devices kvmux must never grab: its own virtual devices (a grab would feed on itself). */
export function isOwnDevice(name: string): boolean {
  return /^kvmux\b/i.test(name);
}

/** Whether to open a device at all in `auto` mode. */
export function wanted(cls: DeviceClass, name: string): boolean {
  return !isOwnDevice(name) && (cls.keyboard || cls.pointer !== undefined);
}
