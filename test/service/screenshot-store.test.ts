import { readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pruneScreenshots, SCREENSHOTS_KEPT } from '../../src/service/screenshot-store.js';
import { encodePng, encodePngAsync } from '../../src/x/screenshot.js';
import { tempDir } from '../helpers/temp.js';

describe('screenshots kvmux names itself', () => {
  it('keeps only the newest SCREENSHOTS_KEPT PNGs, and nothing else is touched', async () => {
    const dir = tempDir('kvmux-shots-');
    try {
      for (let i = 0; i < SCREENSHOTS_KEPT + 5; i++) {
        const p = join(dir, `alpha-${i}.png`);
        writeFileSync(p, 'x');
        utimesSync(p, 1000 + i, 1000 + i);
      }
      writeFileSync(join(dir, 'notes.txt'), 'keep me');
      const gone = await pruneScreenshots(dir);
      expect(gone.sort()).toEqual([
        'alpha-0.png',
        'alpha-1.png',
        'alpha-2.png',
        'alpha-3.png',
        'alpha-4.png',
      ]);
      expect(readdirSync(dir)).toHaveLength(SCREENSHOTS_KEPT + 1);
      expect(await pruneScreenshots(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compresses off the event loop to the same PNG bytes', async () => {
    const rgb = Buffer.alloc(64 * 48 * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 7) & 0xff;
    const img = { width: 64, height: 48, rgb };
    expect((await encodePngAsync(img)).equals(encodePng(img))).toBe(true);
  });
});
