import { describe, expect, it } from 'vitest';
import { KEY_MAX } from '../../src/input/codes.js';
import {
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
  EVIOCGVERSION,
  ioc,
  setBits,
  testBit,
} from '../../src/input/ioctl.js';

describe('evdev ioctl numbers', () => {
  it.each([
    ['EVIOCGRAB', EVIOCGRAB, 0x40044590],
    ['EVIOCGBIT(EV_KEY, KEY_MAX bitmap)', EVIOCGBIT(1, bitmapBytes(KEY_MAX)), 0x80604521],
    ['EVIOCGBIT(0, 8)', EVIOCGBIT(0, 8), 0x80084520],
    ['EVIOCGNAME(256)', EVIOCGNAME(256), 0x81004506],
    ['EVIOCGLED(4)', EVIOCGLED(4), 0x80044519],
    ['EVIOCGKEY(96)', EVIOCGKEY(96), 0x80604518],
    ['EVIOCGABS(ABS_X)', EVIOCGABS(0), 0x80184540],
    ['EVIOCGABS(ABS_Y)', EVIOCGABS(1), 0x80184541],
    ['EVIOCGVERSION', EVIOCGVERSION, 0x80044501],
    ['EVIOCGPROP(8)', EVIOCGPROP(8), 0x80084509],
  ])('%s is 0x%s', (_name, got, want) => {
    expect(got.toString(16)).toBe(want.toString(16));
  });

  it('rejects a size that does not fit the 14-bit size field', () => {
    expect(() => ioc(2, 0x45, 6, 1 << 14)).toThrow(/14 bits/);
  });

  it('sizes a key bitmap as whole longs: KEY_MAX 0x2ff needs 96 bytes', () => {
    expect(bitmapBytes(KEY_MAX)).toBe(96);
    expect(bitmapBytes(0x1f)).toBe(8);
  });
});

describe('bitmaps', () => {
  it('sets, tests and lists bits across byte boundaries', () => {
    const bits = setBits(new Uint8Array(96), [0, 7, 8, 30, 0x110, 0x2ff]);
    expect(bitsSet(bits)).toEqual([0, 7, 8, 30, 0x110, 0x2ff]);
    expect(testBit(bits, 30)).toBe(true);
    expect(testBit(bits, 31)).toBe(false);
    expect(testBit(bits, 10_000)).toBe(false);
  });

  it('decodes struct input_absinfo', () => {
    const buf = Buffer.alloc(24);
    buf.writeInt32LE(512, 0);
    buf.writeInt32LE(-100, 4);
    buf.writeInt32LE(4095, 8);
    expect(decodeAbsInfo(buf)).toEqual({ value: 512, min: -100, max: 4095 });
  });
});
