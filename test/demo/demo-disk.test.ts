import { describe, expect, it } from 'vitest';
import {
  bigTextBitmap,
  bootSector,
  DEMO_DISK_BYTES,
  demoColourIndex,
  demoDisk,
} from '../../src/demo/demo-disk.js';

describe('demo boot-sector disk', () => {
  it('is 1 MiB with a 512-byte boot sector ending in 55 AA', () => {
    const disk = demoDisk({ text: 'alpha' });
    expect(disk.length).toBe(DEMO_DISK_BYTES);
    expect([disk[510], disk[511]]).toEqual([0x55, 0xaa]);
  });

  it('carries its caption, and different names give different sectors', () => {
    const a = Buffer.from(bootSector({ text: 'alpha' }));
    expect(a.includes(Buffer.from('kvmux demo VM "alpha"'))).toBe(true);
    expect(a.equals(Buffer.from(bootSector({ text: 'beta' })))).toBe(false);
  });

  it('draws the big letters inside the 80-column screen, centred', () => {
    const { bytes, rows } = bigTextBitmap('ab');
    expect(rows).toBe(14);
    const cols = Array.from({ length: 80 }, (_, c) =>
      Array.from({ length: rows }, (_, r) => (bytes[r * 10 + (c >> 3)]! >> (7 - (c & 7))) & 1).some(Boolean),
    );
    const first = cols.indexOf(true);
    const last = cols.lastIndexOf(true);
    expect(first).toBeGreaterThan(0);
    expect(Math.abs(first - (79 - last))).toBeLessThanOrEqual(3);
  });

  it('fits the longest name the schema allows (31 characters, 13 drawn big)', () => {
    expect(() => bootSector({ text: 'a'.repeat(31) })).not.toThrow();
  });

  it('picks an explicit colour, or a stable one from the name', () => {
    expect(demoColourIndex({ text: 'x', colour: 2 })).toBe(2);
    expect(demoColourIndex({ text: 'alpha' })).toBe(demoColourIndex({ text: 'alpha' }));
  });
});
