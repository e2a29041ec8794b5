import { existsSync, type FSWatcher, readdirSync, watch } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errnoName } from '../util/errors.js';

export const INPUT_DIR = '/dev/input';
const EVENT_NODE = /^event\d+$/;

/** `/dev/input/event*` in numeric order; none (not an error) when the directory does not exist. */
export function listEventDevices(dir = INPUT_DIR): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (errnoName(err) === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => EVENT_NODE.test(n))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))
    .map((n) => join(dir, n));
}

export interface HotplugCallbacks {
  added(path: string): void;
  removed(path: string): void;
}

/**
 * Watches the input directory (inotify) for event nodes appearing and vanishing. When the
 * directory itself is missing (machines without input devices), watches its parent until it
 * appears, then reports the nodes already in it.
 */
export class HotplugWatcher {
  private watcher: FSWatcher | undefined;
  private known = new Set<string>();
  private closed = false;

  constructor(
    readonly dir: string,
    private readonly cb: HotplugCallbacks,
  ) {}

  /** Start watching; `initial` are the nodes the caller already opened. */
  start(initial: readonly string[] = listEventDevices(this.dir)): void {
    this.known = new Set(initial);
    if (existsSync(this.dir)) this.watchDir();
    else this.watchParent();
  }

  private watchDir(): void {
    this.watcher = watch(this.dir, () => this.rescan());
    this.watcher.on('error', () => this.onDirGone());
    this.rescan();
  }

  private watchParent(): void {
    const parent = dirname(this.dir);
    const name = basename(this.dir);
    this.watcher = watch(parent, (_event, file) => {
      if (file !== name || !existsSync(this.dir)) return;
      this.watcher?.close();
      this.watchDir();
    });
  }

  private onDirGone(): void {
    this.watcher?.close();
    this.rescan();
    if (!this.closed) this.watchParent();
  }

  /** Diff the directory against what we know: inotify names a file, but a rescan cannot miss one. */
  private rescan(): void {
    if (this.closed) return;
    const now = new Set(listEventDevices(this.dir));
    for (const p of this.known) if (!now.has(p)) this.cb.removed(p);
    for (const p of now) if (!this.known.has(p)) this.cb.added(p);
    this.known = now;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
  }
}
