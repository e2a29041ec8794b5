import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isAlive, readProcStat, waitGone } from '../../src/util/proc.js';

/** src/util/proc.ts: liveness that treats zombies as dead (pid 1 here reaps no orphans). */
describe('isAlive', () => {
  it('is true for a running process and false once its start time does not match (pid reuse)', () => {
    const st = readProcStat(process.pid)!;
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(process.pid, st.startTime)).toBe(true);
    expect(isAlive(process.pid, st.startTime + 1)).toBe(false);
    expect(isAlive(2 ** 22 + 12345)).toBe(false);
  });

  it('counts a zombie as dead', async () => {
    // the background sleep ends after its parent exec()ed `sleep 5`, which never reaps it
    const sh = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 5'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const zpid = await new Promise<number>((resolve) =>
      sh.stdout.once('data', (d: Buffer) => resolve(Number(d))),
    );
    try {
      const deadline = Date.now() + 3000;
      while (readProcStat(zpid)?.state !== 'Z' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(readProcStat(zpid)?.state).toBe('Z');
      expect(isAlive(zpid)).toBe(false);
      expect(await waitGone(zpid, undefined, 10, 1000)).toBe(true);
    } finally {
      sh.kill();
    }
  });
});
