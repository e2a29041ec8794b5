import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isAlive, processCpuMs, readProcStat, waitGone } from '../../src/util/proc.js';

/** src/util/proc.ts: liveness that treats zombies as dead (pid 1 here reaps no orphans). */
describe('isAlive', () => {
  it('is true for a running process and false once its start time does not match (pid reuse)', () => {
    const st = readProcStat(process.pid)!;
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(process.pid, st.startTime)).toBe(true);
    expect(isAlive(process.pid, st.startTime + 1)).toBe(false);
    expect(isAlive(2 ** 22 + 12345)).toBe(false);
  });

  it('processCpuMs reads the CPU time of that very process only (null for another at its pid, or none)', () => {
    const st = readProcStat(process.pid)!;
    const end = performance.now() + 30;
    while (performance.now() < end); // some CPU time of its own
    const ms = processCpuMs(process.pid, st.startTime);
    expect(ms).toBeGreaterThan(0);
    expect(processCpuMs(process.pid)).toBeGreaterThanOrEqual(ms!);
    expect(processCpuMs(process.pid, st.startTime + 1)).toBeNull();
    expect(processCpuMs(2 ** 22 + 12345)).toBeNull();
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
      expect(processCpuMs(zpid)).toBeNull();
      expect(await waitGone(zpid, undefined, 10, 1000)).toBe(true);
    } finally {
      sh.kill();
    }
  });
});
