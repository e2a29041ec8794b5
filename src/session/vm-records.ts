import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VmRecord } from './backends/backend.js';

/** VM records in <stateDir>/vms/NAME.json, written atomically (temp file + rename). */
export class VmRecordStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'vms');
  }

  path(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  save(record: VmRecord): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path(record.name)}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.path(record.name));
  }

  /** The record of `name`, or null when there is none or it is unreadable (then it is removed). */
  load(name: string): VmRecord | null {
    let text: string;
    try {
      text = readFileSync(this.path(name), 'utf8');
    } catch {
      return null;
    }
    try {
      const rec = JSON.parse(text) as VmRecord;
      if (rec.name === name && Number.isInteger(rec.pid) && typeof rec.startTime === 'number') return rec;
    } catch {
      // fall through: a torn or foreign file is as good as none
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
