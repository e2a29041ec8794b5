import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PathWatcher } from '../../src/input/path-watcher.js';
import { tempDir } from '../helpers/temp.js';

describe('waiting for a configured device path to come back', () => {
  const root = tempDir('kvmux-pathwatch-');
  let w: PathWatcher | undefined;
  afterEach(() => w?.close());

  it('fires once the path appears, even when its directory appears first', async () => {
    const path = join(root, 'by-id', 'usb-kbd-event-kbd');
    const hits: string[] = [];
    w = new PathWatcher(path, (p) => hits.push(p));
    w.start();
    mkdirSync(join(root, 'by-id'));
    await new Promise((r) => setTimeout(r, 50));
    expect(hits).toEqual([]);
    writeFileSync(path, '');
    await expect.poll(() => hits).toEqual([path]);
  });

  it('treats a path that still exists as the stale node: waits for a change instead of firing at once', async () => {
    const dir = join(root, 'input');
    mkdirSync(dir);
    const path = join(dir, 'event4');
    writeFileSync(path, '');
    const hits: string[] = [];
    w = new PathWatcher(path, (p) => hits.push(p));
    w.start();
    await new Promise((r) => setTimeout(r, 50));
    expect(hits).toEqual([]);
    rmSync(path);
    writeFileSync(path, '');
    await expect.poll(() => hits).toEqual([path]);
  });

  it('stays quiet after close', async () => {
    const path = join(root, 'never');
    const hits: string[] = [];
    w = new PathWatcher(path, (p) => hits.push(p));
    w.start();
    w.close();
    writeFileSync(path, '');
    await new Promise((r) => setTimeout(r, 50));
    expect(hits).toEqual([]);
    rmSync(root, { recursive: true, force: true });
  });
});
