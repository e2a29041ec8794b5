import { describe, expect, it } from 'vitest';
import { classify, type DeviceCaps, isOwnDevice, wanted } from '../../src/input/capabilities.js';
import { EV, KEY } from '../../src/input/codes.js';
import { setBits } from '../../src/input/ioctl.js';

const BTN_LEFT = 0x110;
const BTN_TOUCH = 0x14a;
const KEY_POWER = 116;

function caps(types: number[], keys: number[] = [], rel: number[] = [], abs: number[] = []): DeviceCaps {
  return {
    types: setBits(new Uint8Array(8), types),
    keys: setBits(new Uint8Array(96), keys),
    rel: setBits(new Uint8Array(8), rel),
    abs: setBits(new Uint8Array(8), abs),
  };
}

const letters = Object.values(KEY).filter((c) => c < 0x100);

describe('device classification from capability bits', () => {
  it.each([
    [
      'a full keyboard with LEDs',
      caps([EV.SYN, EV.KEY, EV.MSC, EV.LED, EV.REP], letters),
      true,
      undefined,
      true,
    ],
    [
      'a mouse',
      caps([EV.SYN, EV.KEY, EV.REL], [BTN_LEFT, 0x111, 0x112], [0, 1, 8]),
      false,
      'relative',
      false,
    ],
    ['a tablet', caps([EV.SYN, EV.KEY, EV.ABS], [BTN_LEFT], [], [0, 1]), false, 'absolute', false],
    ['a touchscreen', caps([EV.SYN, EV.KEY, EV.ABS], [BTN_TOUCH], [], [0, 1]), false, 'absolute', false],
    ['a power button', caps([EV.SYN, EV.KEY], [KEY_POWER]), false, undefined, false],
    ['volume keys of a headset', caps([EV.SYN, EV.KEY], [113, 114, 115]), false, undefined, false],
    [
      'an accelerometer (ABS without buttons)',
      caps([EV.SYN, EV.ABS], [], [], [0, 1, 2]),
      false,
      undefined,
      false,
    ],
    [
      'a touchpad (finger tool, no properties)',
      caps([EV.SYN, EV.KEY, EV.ABS], [BTN_LEFT, BTN_TOUCH, 0x145], [], [0, 1]),
      false,
      'touchpad',
      false,
    ],
    [
      'a touchpad (INPUT_PROP_POINTER)',
      {
        ...caps([EV.SYN, EV.KEY, EV.ABS], [BTN_LEFT, BTN_TOUCH], [], [0, 1]),
        props: setBits(new Uint8Array(8), [0]),
      },
      false,
      'touchpad',
      false,
    ],
    [
      'a touchscreen with a finger tool (INPUT_PROP_DIRECT)',
      {
        ...caps([EV.SYN, EV.KEY, EV.ABS], [BTN_TOUCH, 0x145], [], [0, 1]),
        props: setBits(new Uint8Array(8), [1]),
      },
      false,
      'absolute',
      false,
    ],
    [
      'a pen tablet (pen tool)',
      caps([EV.SYN, EV.KEY, EV.ABS], [BTN_TOUCH, 0x140, 0x145], [], [0, 1]),
      false,
      'absolute',
      false,
    ],
    [
      'a keyboard with a built-in touchpad',
      caps([EV.SYN, EV.KEY, EV.REL], [...letters, BTN_LEFT], [0, 1]),
      true,
      'relative',
      false,
    ],
  ])('%s', (_what, c, keyboard, pointer, leds) => {
    expect(classify(c)).toEqual({ keyboard, pointer, leds });
  });

  it('never wants kvmux’s own virtual devices, whatever they can do', () => {
    const kbd = classify(caps([EV.SYN, EV.KEY], letters));
    expect(isOwnDevice('kvmux virtual keyboard')).toBe(true);
    expect(wanted(kbd, 'kvmux virtual keyboard')).toBe(false);
    expect(wanted(kbd, 'AT Translated Set 2 keyboard')).toBe(true);
    expect(wanted(classify(caps([EV.KEY], [KEY_POWER])), 'Power Button')).toBe(false);
  });
});
