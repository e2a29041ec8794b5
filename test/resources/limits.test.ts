import { describe, expect, it } from 'vitest';
import { blkioWeight, cgroupWrites, parseApplied, quotaUs } from '../../src/resources/limits.js';

const d = { cpus: '0-1', mems: '0' };
const asMap = (w: ReturnType<typeof cgroupWrites>) => Object.fromEntries(w.map((x) => [x.file, x.value]));

describe('cgroup writes from resources', () => {
  it.each([
    [{}, { 'cpu.max': 'max 100000', 'cpuset.cpus': '0-1', 'memory.max': 'max', 'io.weight': 'default 100' }],
    [
      { cpuQuota: 0.3, cpuset: '1', memoryMaxMiB: 64, ioWeight: 500 },
      {
        'cpu.max': '30000 100000',
        'cpuset.cpus': '1',
        'memory.max': String(64 << 20),
        'io.weight': 'default 500',
      },
    ],
    [{ cpuQuota: 2 }, { 'cpu.max': '200000 100000' }],
  ])('v2 %j', (r, want) => {
    expect(asMap(cgroupWrites('v2', r, d))).toMatchObject(want);
  });

  it.each([
    [
      {},
      { 'cpu.cfs_quota_us': '-1', 'cpuset.cpus': '0-1', 'cpuset.mems': '0', 'memory.limit_in_bytes': '-1' },
    ],
    [
      { cpuQuota: 0.3, cpuset: '0', memoryMaxMiB: 64, ioWeight: 100 },
      {
        'cpu.cfs_period_us': '100000',
        'cpu.cfs_quota_us': '30000',
        'cpuset.cpus': '0',
        'memory.limit_in_bytes': String(64 << 20),
        'memory.memsw.limit_in_bytes': String(64 << 20),
        'blkio.weight': '500',
      },
    ],
  ])('v1 %j', (r, want) => {
    expect(asMap(cgroupWrites('v1', r, d))).toMatchObject(want);
  });

  it('v1 sets cpuset.mems before cpuset.cpus is usable, and orders memsw around the limit', () => {
    const files = (r: object) => cgroupWrites('v1', r, d).map((w) => w.file);
    const lim = files({ memoryMaxMiB: 64 });
    expect(lim.indexOf('cpuset.mems')).toBeLessThan(lim.indexOf('cpuset.cpus'));
    // lowering: the limit first (memsw may not go below it); removing: memsw first
    expect(lim.indexOf('memory.limit_in_bytes')).toBeLessThan(lim.indexOf('memory.memsw.limit_in_bytes'));
    const unl = files({});
    expect(unl.indexOf('memory.memsw.limit_in_bytes')).toBeLessThan(unl.indexOf('memory.limit_in_bytes'));
  });

  it('quota has the kernel minimum of 1 ms; io weight maps onto blkio 10..1000', () => {
    expect(quotaUs(0.001)).toBe(1000);
    expect(quotaUs(0.5)).toBe(50_000);
    expect([1, 100, 200, 10_000].map(blkioWeight)).toEqual([10, 500, 1000, 1000]);
  });
});

describe('reading the enforced limits back', () => {
  it('v2', () => {
    expect(
      parseApplied('v2', {
        'cpu.max': '30000 100000',
        'cpuset.cpus': '1',
        'memory.max': String(64 << 20),
        'io.weight': 'default 500',
      }),
    ).toEqual({ cpuQuota: 0.3, cpuset: '1', memoryMaxMiB: 64, ioWeight: 500 });
    expect(parseApplied('v2', { 'cpu.max': 'max 100000', 'memory.max': 'max', 'cpuset.cpus': '' })).toEqual({
      cpuQuota: null,
      cpuset: null,
      memoryMaxMiB: null,
      ioWeight: null,
    });
  });

  it('v1 (unlimited memory is a page-rounded LONG_MAX)', () => {
    expect(
      parseApplied('v1', {
        'cpu.cfs_quota_us': '-1',
        'cpu.cfs_period_us': '100000',
        'memory.limit_in_bytes': '9223372036854771712',
        'cpuset.cpus': '0-1',
        'blkio.weight': '500',
      }),
    ).toEqual({ cpuQuota: null, cpuset: '0-1', memoryMaxMiB: null, ioWeight: 100 });
    expect(
      parseApplied('v1', {
        'cpu.cfs_quota_us': '30000',
        'cpu.cfs_period_us': '100000',
        'memory.limit_in_bytes': '67108864',
      }),
    ).toMatchObject({ cpuQuota: 0.3, memoryMaxMiB: 64 });
  });
});
