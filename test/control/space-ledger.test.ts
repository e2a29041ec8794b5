import { describe, expect, it } from 'vitest';
import { admit, type Reservation, SpaceLedger } from '../../src/control/transfer/space-ledger.js';

const MiB = 1 << 20;
const r = (fs: string, owner: string | null, size: number, received = 0): Reservation => ({
  fs,
  owner,
  size,
  received: () => received,
});

describe('space ledger (pure admission)', () => {
  const base = { fs: 'd1', owner: 'alpha', freeBytes: 100 * MiB, marginBytes: 10 * MiB };

  it.each([
    ['fits alone', [], 90 * MiB, null],
    ['one byte over free minus margin', [], 90 * MiB + 1, /not enough space/],
    ['others still to write count', [r('d1', 'beta', 50 * MiB)], 41 * MiB, /52428800 promised/],
    ['only what others have not written yet', [r('d1', 'beta', 50 * MiB, 40 * MiB)], 80 * MiB, null],
    ['another filesystem does not count', [r('d2', 'beta', 500 * MiB)], 90 * MiB, null],
    ['received beyond size never adds space', [r('d1', null, 10 * MiB, 20 * MiB)], 90 * MiB, null],
  ] as const)('%s', (_label, open, size, want) => {
    const got = admit(open, { ...base, size });
    if (want === null) expect(got).toBeNull();
    else expect(got).toMatch(want);
  });

  it.each([
    ['under quota', [], 0, 4 * MiB, null],
    ['stored images count', [], 4 * MiB, 2 * MiB, /quota of VM "alpha" exceeded/],
    ['own open uploads count in full', [r('d9', 'alpha', 3 * MiB, 3 * MiB)], 0, 3 * MiB, /quota/],
    ['other VMs do not count', [r('d9', 'beta', 30 * MiB)], 0, 4 * MiB, null],
    ['exactly the quota', [r('d9', 'alpha', 2 * MiB)], 1 * MiB, 2 * MiB, null],
  ] as const)('quota: %s', (_label, open, stored, size, want) => {
    const got = admit(open, { ...base, size, quotaBytes: 5 * MiB, storedBytes: stored });
    if (want === null) expect(got).toBeNull();
    else expect(got).toMatch(want);
  });

  it('the local socket has no quota', () => {
    expect(
      admit([], { ...base, owner: null, size: 80 * MiB, quotaBytes: MiB, storedBytes: 50 * MiB }),
    ).toBeNull();
  });

  it('holds and releases reservations', () => {
    const l = new SpaceLedger();
    const a = r('d1', 'alpha', 60 * MiB);
    const refuse = (why: string) => new Error(why);
    l.reserve(a, { freeBytes: 100 * MiB, marginBytes: 0 }, refuse);
    expect(() =>
      l.reserve(r('d1', 'beta', 60 * MiB), { freeBytes: 100 * MiB, marginBytes: 0 }, refuse),
    ).toThrow(/not enough space/);
    expect([l.count, l.held]).toEqual([1, 60 * MiB]);
    l.release(a);
    l.reserve(r('d1', 'beta', 60 * MiB), { freeBytes: 100 * MiB, marginBytes: 0 }, refuse);
    expect(l.count).toBe(1);
  });
});
