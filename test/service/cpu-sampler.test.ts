import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CpuSampler } from '../../src/service/cpu-sampler.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('CPU sampler', () => {
  it('tells a spinning process from a sleeping one, and says nothing on the first look', async () => {
    const busy = spawn(process.execPath, ['-e', 'for (;;) {}']);
    const idle = spawn('sleep', ['30']);
    try {
      const s = new CpuSampler();
      await sleep(200);
      expect(s.percent(busy.pid!)).toBeNull();
      expect(s.percent(idle.pid!)).toBeNull();
      await sleep(1000);
      // a loaded machine (2 cores shared with other work) may give the spinner well under a core,
      // so tell them apart by contrast rather than by an absolute share
      const busyPct = s.percent(busy.pid!) ?? 0;
      const idlePct = s.percent(idle.pid!) ?? 0;
      expect(idlePct).toBeLessThan(2);
      expect(busyPct).toBeGreaterThan(10);
      expect(busyPct).toBeGreaterThan(20 * Math.max(idlePct, 0.1));
      expect(s.percent(null)).toBeNull();
    } finally {
      busy.kill('SIGKILL');
      idle.kill('SIGKILL');
    }
  });

  it('returns null for a process that is gone', async () => {
    const p = spawn('true');
    await new Promise((r) => p.once('exit', r));
    expect(new CpuSampler().percent(p.pid!)).toBeNull();
  });
});
