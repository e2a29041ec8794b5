import { describe, expect, it } from 'vitest';
import { jobShort, limitsText, parseLimits, vmLine, vmRows } from '../../src/admin/format.js';

describe('admin VMs pane: limits, jobs, hibernated and saved VMs', () => {
  it('shows limits and a job in progress on the VM line', () => {
    const [r] = vmRows([
      {
        name: 'alpha',
        backend: 'qemu',
        state: 'running',
        pid: 42,
        memoryMiB: 512,
        resources: { cpuQuota: 0.3, cpuset: '0', memoryMaxMiB: 640, ioWeight: 200 },
        job: {
          kind: 'migrate',
          status: 'active',
          qemuStatus: 'active',
          percent: 42.7,
          transferredBytes: 50,
          totalBytes: 100,
        },
      },
    ]);
    expect(r).toMatchObject({
      limits: 'cpu 0.3 set 0 mem 640M io 200',
      job: expect.stringMatching(/^migrate 42% /),
    });
    expect(vmLine(r!).text).toMatch(/\[cpu 0\.3 set 0 mem 640M io 200\] <migrate 42% .*>$/);
  });

  it.each([
    [{ kind: 'save', status: 'completed' }, 'save done'],
    [{ kind: 'migrate', status: 'completed', downtimeMs: 5 }, 'migrate done (downtime 5 ms)'],
    [{ kind: 'restore', status: 'failed', error: 'disk changed' }, 'restore FAILED: disk changed'],
    [{ kind: 'receive', status: 'active', qemuStatus: 'listening', percent: null }, 'receive listening'],
    [null, ''],
  ])('job %j reads "%s"', (job, text) => {
    expect(jobShort(job)).toBe(text);
  });

  it('a frozen VM reads frozen, a saved stopped VM reads saved; no limits, no brackets', () => {
    const rows = vmRows([
      { name: 'sub', backend: 'subhost', state: 'running', frozen: true },
      { name: 'tux', backend: 'qemu', state: 'stopped', savedAt: '2026-01-01T00:00:00Z' },
    ]);
    expect(rows.map((r) => [r.state, vmLine(r).colour])).toEqual([
      ['frozen', 'cyan'],
      ['saved', 'cyan'],
    ]);
    expect(vmLine(rows[1]!).text).not.toContain('[');
    expect(limitsText(undefined)).toBe('');
  });

  it.each([
    ['cpu=0.5 cpuset=0-1 mem=256 io=200', { cpuQuota: 0.5, cpuset: '0-1', memoryMaxMiB: 256, ioWeight: 200 }],
    ['mem=64', { memoryMaxMiB: 64 }],
    ['none', {}],
  ])('limits prompt "%s"', (text, value) => {
    expect(parseLimits(text)).toEqual({ ok: true, value });
  });

  it.each([
    ['cpu=lots', /cpu must be a number/],
    ['ram=5', /use cpu=N/],
    ['cpu=', /use cpu=N/],
  ])('bad limits "%s" are named', (text, err) => {
    const r = parseLimits(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(err);
  });
});
