import { existsSync, type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Waits for a path to exist again (a configured keyboard unplugged and replugged; its
 * /dev/input/by-id directory may vanish and come back too). Watches the nearest existing
 * ancestor with inotify and moves down as directories reappear: no polling.
 */
export class PathWatcher {
  private watcher: FSWatcher | undefined;
  private watchedDir: string | undefined;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly onAppear: (path: string) => void,
  ) {}

  /**
   * If the path exists right now it is taken as the stale node of the device just lost: wait for
   * the next change in its directory instead of reopening it at once (no retry loop).
   */
  start(): void {
    this.check(existsSync(this.path));
  }

  private check(stale = false): void {
    if (this.closed) return;
    let dir = dirname(this.path);
    while (!existsSync(dir) && dir !== dirname(dir)) dir = dirname(dir);
    // Watch before looking, so a node created in between still wakes us.
    if (dir !== this.watchedDir) this.watchDir(dir);
    if (stale || !existsSync(this.path)) return;
    this.close();
    this.onAppear(this.path);
  }

  private watchDir(dir: string): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.watchedDir = dir;
    try {
      this.watcher = watch(dir, () => this.check());
      this.watcher.on('error', () => {
        this.watchedDir = undefined;
        this.check();
      });
    } catch {
      // The ancestor vanished between the check and the watch: look again.
      this.watchedDir = undefined;
      queueMicrotask(() => this.check());
    }
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
  }
}
