import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from './atomic-file.js';

let bootId: string | null | undefined;
/** This boot's id (/proc/sys/kernel/random/boot_id), or null where the kernel has none. */
export function currentBootId(): string | null {
  if (bootId === undefined) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootId = null;
    }
  }
  return bootId;
}

/**
 * A record written in an earlier boot keeps its data (a VT to give back, a job to account for),
 * but the process it names cannot exist any more: pids and start times (ticks since boot) repeat
 * across the appliance's identical boots, so adopting by them could take, and later kill, an
 * unrelated process. Its start time becomes -1, which no live process matches (util/proc isAlive).
 */
function fromThisBoot(record: unknown): unknown {
  if (typeof record !== 'object' || record === null) return record;
  const r = record as { bootId?: unknown; startTime?: unknown };
  const now = currentBootId();
  if (now === null || r.bootId === undefined || r.bootId === now) return record;
  return typeof r.startTime === 'number' ? { ...r, startTime: -1 } : record;
}

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
    const stamped = { ...record, bootId: currentBootId() };
    writeFileAtomicSync(this.path(name), `${JSON.stringify(stamped, null, 2)}\n`);
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
      const record = fromThisBoot(JSON.parse(text) as unknown);
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
