import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChunkedTransfer } from '../../src/control/transfer/chunked-file.js';
import { tempDir } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('chunked transfer to a temp file', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir();
  });
  afterEach(() => t.cleanup());

  it('keeps several writes in flight, starts writeback during a large transfer, and lands every byte', async () => {
    const data = randomBytes(72 << 20);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(data));
    const chunk = 4 << 20;
    let peak = 0;
    const released: number[] = [];
    for (let off = 0; off < data.length; off += chunk) {
      // a copy the transfer may hold until it releases it: overwritten after release, as a pool would
      const part = Buffer.from(data.subarray(off, off + chunk));
      await x.write(off, part, (b) => {
        released.push(off);
        b.fill(0);
      });
      peak = Math.max(peak, x.writesInFlight);
    }
    expect(peak).toBeGreaterThan(1);
    expect(x.writebacks).toBeGreaterThanOrEqual(1);
    await x.commit(join(t.dir, 'out.img'), { replace: false });
    expect(released.sort((a, b) => a - b)).toEqual(
      Array.from({ length: data.length / chunk }, (_, i) => i * chunk),
    );
    expect(readFileSync(join(t.dir, 'out.img')).equals(data)).toBe(true);
  });

  it('runs the inspection beside the fsync and installs nothing when it refuses', async () => {
    const data = randomBytes(1 << 20);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(data));
    await x.write(0, data);
    let inspected = '';
    await expect(
      x.commit(join(t.dir, 'out.img'), {
        replace: false,
        inspect: async (tmp) => {
          inspected = readFileSync(tmp).equals(data) ? 'complete' : 'partial';
          throw new Error('refused by inspection');
        },
      }),
    ).rejects.toThrow(/cannot install: refused by inspection/);
    expect(inspected).toBe('complete');
    expect(readdirSync(t.dir)).toEqual([]);
  });

  it('refuses a wrong sha256 computed on the hashing thread, and keeps nothing', async () => {
    const data = randomBytes(3 << 20);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(randomBytes(8)));
    for (let off = 0; off < data.length; off += 1 << 20)
      await x.write(off, data.subarray(off, off + (1 << 20)));
    await expect(x.commit(join(t.dir, 'out.img'), { replace: false })).rejects.toThrow(/sha256 mismatch/);
    expect(readdirSync(t.dir)).toEqual([]);
  });
});
