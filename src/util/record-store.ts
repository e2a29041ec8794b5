import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from './atomic-file.js';

/**
 * One JSON record per name in <stateDir>/<subdir>/NAME.json, written atomically (util/atomic-file):
 * what a restarted kvmux reads to re-adopt the VMs and X servers that outlived the last one.
 */
export class JsonRecordStore<T> {
  readonly dir: string;

  constructor(
    stateDir: string,
    subdir: string,
    /** A torn, foreign or stale-format file is as good as none: it is removed on load. */
    private readonly valid: (name: string, record: unknown) => record is T,
  ) {
    this.dir = join(stateDir, subdir);
  }

  path(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  put(name: string, record: T): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomicSync(this.path(name), `${JSON.stringify(record, null, 2)}\n`);
  }

  /** The record of `name`, or null when there is none or it is unreadable (then it is removed). */
  load(name: string): T | null {
    let text: string;
    try {
      text = readFileSync(this.path(name), 'utf8');
    } catch {
      return null;
    }
    try {
      const record = JSON.parse(text) as unknown;
      if (this.valid(name, record)) return record;
    } catch {
      // fall through: unparsable
    }
    this.remove(name);
    return null;
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true });
  }

  names(): string[] {
    try {
      return readdirSync(this.dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.slice(0, -5));
    } catch {
      return [];
    }
  }
}
