import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCgroups, instanceGroup } from '../../src/resources/cgroup.js';
import { V1_CONTROLLERS } from '../../src/resources/limits.js';
import { loudSkip } from '../helpers/skips.js';
import { type Kvmux, startKvmux } from './kvmux-harness.js';

/**
 * vm.setResources / vm.resources through a real `kvmux run`: applied live to the running VM's
 * cgroup, read back from the kernel, shown in vm.list, and kept across a restart of kvmux (its
 * config layer), where the next launch starts inside the limits.
 */
const layout = detectCgroups();
let k: Kvmux;

interface Row {
  name: string;
  state: string;
  pid: number | null;
  resources: Record<string, unknown> | null;
}

beforeAll(async () => {
  if (!layout) return;
  k = await startKvmux({
    firstDisplay: 265,
    vms: [{ name: 'busy', backend: 'command', command: ['/bin/sh', '-c', 'while :; do sleep 1; done'] }],
  });
}, 90_000);

afterAll(async () => {
  await k?.stop();
});

/** This kvmux's cgroup folders (its own parent group under each hierarchy), whatever is left. */
function leftGroups(stateDir: string): string[] {
  if (!layout) return [];
  const group = instanceGroup(stateDir);
  const parents =
    layout.mode === 'v2'
      ? [join(layout.root, group)]
      : V1_CONTROLLERS.map((c) => join(layout.root, c, group));
  return parents.filter((d) => existsSync(d));
}

describe.runIf(layout)('per-VM resources in kvmux run', () => {
  it('change live, read back, survive a restart', async () => {
    const set = await k.call<{ live: boolean }>('vm.setResources', {
      name: 'busy',
      cpuQuota: 0.25,
      cpuset: '0',
      memoryMaxMiB: 100,
    });
    expect(set).toMatchObject({ live: true });
    const r = await k.call<{ applied: Record<string, unknown>; cgroup: string }>('vm.resources', {
      name: 'busy',
    });
    process.stderr.write(`[resources-run] cgroup ${r.cgroup}: ${JSON.stringify(r.applied)}\n`);
    expect(r).toMatchObject({
      cgroup: layout?.mode,
      applied: { cpuQuota: 0.25, cpuset: '0', memoryMaxMiB: 100 },
    });
    const rows = await k.call<Row[]>('vm.list');
    expect(rows[0]).toMatchObject({ resources: { cpuQuota: 0.25, cpuset: '0', memoryMaxMiB: 100 } });
    await expect(k.call('vm.setResources', { name: 'busy', cpuset: 'all' })).rejects.toThrow(/cpuset/);

    // SIGTERM: a clean stop of kvmux and its VMs; the same config and state start again
    await k.crash('SIGTERM');
    // a clean stop leaves no cgroup of this kvmux behind (not even its parent group)
    expect(leftGroups(join(k.dir, 'state'))).toEqual([]);
    k = await k.restart();
    const again = await k.call<Row[]>('vm.list');
    expect(again[0]).toMatchObject({ state: 'running', resources: { cpuQuota: 0.25, memoryMaxMiB: 100 } });
    expect(again[0]?.pid).not.toBe(rows[0]?.pid);
    const r2 = await k.call<{ applied: Record<string, unknown> }>('vm.resources', { name: 'busy' });
    expect(r2.applied).toMatchObject({ cpuQuota: 0.25, cpuset: '0', memoryMaxMiB: 100 });
  }, 60_000);
});

if (!layout) loudSkip('resources in kvmux run', 'no usable cgroup hierarchy');
