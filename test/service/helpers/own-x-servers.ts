import { readdirSync, readFileSync } from 'node:fs';
import { readProcStat } from '../../../src/util/proc.js';

/** Pids of the live Xvfb servers this test process started (its children), zombies excluded. */
export function ownXvfbs(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      const st = readProcStat(pid);
      if (!st || st.ppid !== process.pid || st.state === 'Z') return false;
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'Xvfb';
      } catch {
        return false;
      }
    });
}
