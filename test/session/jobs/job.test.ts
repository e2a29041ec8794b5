import { describe, expect, it } from 'vitest';
import { channelSchema, jobText, newJob, progressOf } from '../../../src/session/jobs/job.js';
import { shellQuote, stampMismatch } from '../../../src/session/jobs/saved-state.js';

const t0 = new Date('2026-01-01T00:00:00Z');

describe('job progress from query-migrate', () => {
  it('active → percent from total/remaining; completed → 100 with downtime', () => {
    const j = newJob('migrate', 'tcp:10.0.0.2:4444', t0);
    const a = progressOf(j, { status: 'active', ram: { total: 1000, remaining: 250, transferred: 800 } });
    expect(a).toMatchObject({ status: 'active', percent: 75, transferredBytes: 800, totalBytes: 1000 });
    expect(jobText(a)).toBe('migrate 75% active');
    const c = progressOf(a, { status: 'completed', downtime: 5, 'total-time': 34 });
    expect(c).toMatchObject({
      status: 'completed',
      percent: 100,
      downtimeMs: 5,
      totalMs: 34,
      transferredBytes: 800,
    });
    expect(jobText(c)).toBe('migrate done');
  });

  it('failed and cancelled end the job with QEMU error text', () => {
    const j = newJob('save', '/x', t0);
    expect(progressOf(j, { status: 'failed', 'error-desc': 'gzip: broken pipe' })).toMatchObject({
      status: 'failed',
      error: 'gzip: broken pipe',
    });
    expect(progressOf(j, { status: 'cancelled' })).toMatchObject({
      status: 'failed',
      error: 'migration cancelled',
    });
  });

  it('a receiver without status yet stays listening', () => {
    const j = newJob('receive', 'tcp:0.0.0.0:4444', t0);
    expect(progressOf(j, {})).toMatchObject({ status: 'active', qemuStatus: 'listening' });
  });
});

describe('migration channels', () => {
  it.each(['tcp:10.0.0.2:4444', 'tcp:[fe80::1]:4444', 'tcp:host-b.lan:1', 'unix:/run/kvmux/mig.sock'])(
    'accepts %s',
    (uri) => expect(channelSchema.safeParse(uri).success).toBe(true),
  );
  it.each(['exec:rm -rf /', 'tcp:host', 'unix:relative', 'fd:3', 'tcp:a:1,b', 'unix:/a b'])(
    'refuses %s',
    (uri) => expect(channelSchema.safeParse(uri).success).toBe(false),
  );
});

describe('disk stamps', () => {
  const s = [{ path: '/d.img', size: 10, mtimeMs: 1000 }];
  it('same stamp matches; size, mtime, path or count differences are named', () => {
    expect(stampMismatch(s, s)).toBeNull();
    expect(stampMismatch(s, [{ ...s[0]!, mtimeMs: 2000 }])).toMatch(/\/d.img changed since the save/);
    expect(stampMismatch(s, [{ ...s[0]!, size: 11 }])).toMatch(/size 10 → 11/);
    expect(stampMismatch(s, [{ ...s[0]!, path: '/e.img' }])).toMatch(/was \/d.img/);
    expect(stampMismatch(s, [])).toMatch(/1 disk\(s\) when saved, it has 0/);
    expect(stampMismatch(s, [{ path: '/d.img', size: -1, mtimeMs: -1 }])).toMatch(/gone/);
  });
  it('paths are shell-quoted for the exec: stream', () => {
    expect(shellQuote("/a b/it's")).toBe(`'/a b/it'\\''s'`);
  });
});
