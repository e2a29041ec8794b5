import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { imageHash } from '../../src/control/transfer/image-hash.js';
import { tempDir } from '../helpers/temp.js';
import { mainThreadCpu } from './helpers.js';

describe('image hashing', () => {
  it('hashes off the main thread (the SCHED_RR input thread), with the right digest', async () => {
    const dir = tempDir('kvmux-hash-');
    const path = join(dir, 'disk.img');
    const block = Buffer.alloc(1 << 20);
    const want = createHash('sha256');
    const fd = openSync(path, 'w');
    for (let i = 0; i < 384; i++) {
      block.fill(i & 0xff);
      writeSync(fd, block);
      want.update(block);
    }
    closeSync(fd);
    const cpu0 = mainThreadCpu();
    const t0 = performance.now();
    expect(await imageHash(path)).toBe(want.digest('hex'));
    const wall = (performance.now() - t0) / 1000;
    const mainCpu = mainThreadCpu() - cpu0;
    // 384 MiB of sha256 costs a core ~0.3-1 s; on the main thread it would all show up here
    expect(mainCpu, `main thread used ${mainCpu} s CPU of ${wall.toFixed(2)} s`).toBeLessThan(0.1);
  });
});
