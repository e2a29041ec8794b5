import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HotplugWatcher, listEventDevices } from '../../src/input/discovery.js';
import { InputSources } from '../../src/input/sources.js';
import { createLogger } from '../../src/util/log.js';
import { tempDir } from '../helpers/temp.js';

describe('device discovery and hotplug (a temp directory stands in for /dev/input)', () => {
  let root: string;
  let dir: string;
  let watcher: HotplugWatcher | undefined;
  const seen: string[] = [];

  beforeEach(() => {
    root = tempDir('kvmux-input-');
    dir = join(root, 'input');
    seen.length = 0;
  });
  afterEach(() => {
    watcher?.close();
    rmSync(root, { recursive: true, force: true });
  });

  const start = () => {
    watcher = new HotplugWatcher(dir, {
      added: (p) => seen.push(`+${p.slice(dir.length + 1)}`),
      removed: (p) => seen.push(`-${p.slice(dir.length + 1)}`),
    });
    watcher.start();
  };

  it('lists event nodes in numeric order, ignoring others, and none when the directory is missing', () => {
    expect(listEventDevices(dir)).toEqual([]);
    mkdirSync(dir);
    for (const n of ['event10', 'event2', 'mouse0', 'event1', 'by-id']) writeFileSync(join(dir, n), '');
    expect(listEventDevices(dir).map((p) => p.slice(dir.length + 1))).toEqual([
      'event1',
      'event2',
      'event10',
    ]);
  });

  it('reports nodes appearing and vanishing', async () => {
    mkdirSync(dir);
    writeFileSync(join(dir, 'event0'), '');
    start();
    writeFileSync(join(dir, 'event3'), '');
    await expect.poll(() => seen).toEqual(['+event3']);
    rmSync(join(dir, 'event0'));
    await expect.poll(() => seen).toEqual(['+event3', '-event0']);
  });

  it('tolerates the directory not existing, and picks it up when it appears', async () => {
    start();
    mkdirSync(dir);
    writeFileSync(join(dir, 'event5'), '');
    await expect.poll(() => seen, { timeout: 3000 }).toEqual(['+event5']);
  });

  it('auto mode starts with no devices at all and keeps running; unusable nodes are skipped', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug' });
    log.warn = ((obj: { path?: string }, msg: string) => {
      lines.push(`${msg} ${obj.path ?? ''}`);
    }) as unknown as typeof log.warn;
    const sources = new InputSources({ devices: 'auto', inputDir: dir, log }, { feed: () => {} });
    sources.start();
    try {
      expect(sources.list()).toEqual([]);
      mkdirSync(dir);
      writeFileSync(join(dir, 'event7'), 'not a device');
      await expect.poll(() => lines.some((l) => l.startsWith('input device not usable'))).toBe(true);
      expect(sources.list()).toEqual([]);
    } finally {
      sources.close();
    }
  });
});

describe('configured device paths', () => {
  it('waits for a configured /dev node that is not there yet instead of failing the start', () => {
    const s = new InputSources({ devices: ['/dev/input/by-id/kvmux-test-absent-kbd'] }, { feed: () => {} });
    s.start();
    try {
      expect(s.missing()).toEqual(['/dev/input/by-id/kvmux-test-absent-kbd']);
      expect(s.list()).toEqual([]);
    } finally {
      s.close();
    }
    expect(s.missing()).toEqual([]);
  });
});
