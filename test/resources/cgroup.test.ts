import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { CgroupResources, detectCgroups, instanceGroup } from '../../src/resources/cgroup.js';
import { V1_CONTROLLERS } from '../../src/resources/limits.js';
import { createCommandBackend } from '../../src/session/backends/command.js';
import { Supervisor } from '../../src/session/supervisor.js';
import { loudSkip } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';

/**
 * Real cgroups, through the supervisor: a CPU burner held to its quota, memory.max enforced by an
 * OOM kill inside the VM's cgroup (kvmux and its other VMs unaffected), live changes, freeze/thaw.
 * Measured over the cgroup's own CPU accounting. Which cgroup version ran is printed.
 */
const layout = detectCgroups();
const group = `kvmux-test-${process.pid}`;
const dir = tempDir('kvmux-cgroup-');
let sup: Supervisor;
let supOpts: ConstructorParameters<typeof Supervisor>[0];
let res: CgroupResources;

const burner = ['/bin/sh', '-c', 'while :; do :; done'];
// allocates and touches 256 MiB in 16 MiB steps, then sleeps: far above its 48 MiB ceiling
const hog = [
  process.execPath,
  '-e',
  'const a=[];for(let i=0;i<16;i++)a.push(Buffer.alloc(16<<20,1));setInterval(()=>{},1e6)',
];

beforeAll(() => {
  if (!layout) return;
  process.stderr.write(`[cgroup] running on cgroup ${layout.mode} (${layout.root})\n`);
  res = new CgroupResources({ layout, group });
  const config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    vms: [
      { name: 'burn', backend: 'command', command: burner, resources: { cpuQuota: 0.3, cpuset: '0' } },
      { name: 'hog', backend: 'command', command: hog, resources: { memoryMaxMiB: 48 } },
      { name: 'calm', backend: 'command', command: ['/bin/sleep', '600'] },
      { name: 'forks', backend: 'command', command: ['/bin/sh', '-c', 'sleep 600 & sleep 600'] },
    ],
  });
  supOpts = {
    config,
    backends: { command: createCommandBackend({ termTimeoutMs: 1000 }) },
    displayFor: () => ({ display: ':99', width: 0, height: 0 }),
    resources: res,
  };
  sup = new Supervisor(supOpts);
});

afterAll(async () => {
  await sup?.shutdown({ force: true });
  if (!layout) return;
  const parents =
    layout.mode === 'v2'
      ? [join(layout.root, group)]
      : V1_CONTROLLERS.map((c) => join(layout.root, c, group));
  for (const p of parents) if (existsSync(p)) rmdirSync(p);
});

/** The cgroup's CPU use over `ms`, in CPUs. */
async function cpuOver(name: string, ms: number): Promise<number> {
  const a = res.cpuUsageUs(name) ?? 0;
  const t = performance.now();
  await sleep(ms);
  return ((res.cpuUsageUs(name) ?? 0) - a) / ((performance.now() - t) * 1000);
}

describe.runIf(layout)('per-VM resources through cgroups', () => {
  it('a CPU burner is held to its quota, which changes live and reads back', async () => {
    const st = await sup.start('burn');
    expect(res.pids('burn')).toContain(st.pid);
    const used = await cpuOver('burn', 2000);
    process.stderr.write(`[cgroup] burner at quota 0.3 used ${used.toFixed(3)} CPUs\n`);
    // enforcement can only hold it down: at most the quota (+10% for period edges)
    expect(used).toBeLessThanOrEqual(0.33);
    expect(used).toBeGreaterThan(0.05);
    expect(sup.appliedResources('burn')).toMatchObject({ cpuQuota: 0.3, cpuset: '0' });

    expect(sup.setResources('burn', { cpuQuota: 0.1 })).toBe(true);
    expect(sup.appliedResources('burn')).toMatchObject({ cpuQuota: 0.1, cpuset: '0-1' });
    expect(await cpuOver('burn', 1500)).toBeLessThanOrEqual(0.11);
  }, 30_000);

  it('freeze stops the whole tree and thaw lets it run again', async () => {
    res.freeze('burn', true);
    expect(res.frozen('burn')).toBe(true);
    await expect.poll(() => res.stopped('burn'), { timeout: 5000 }).toBe(true);
    expect(await cpuOver('burn', 700)).toBeLessThan(0.005);
    res.freeze('burn', false);
    expect(res.frozen('burn')).toBe(false);
    expect(res.stopped('burn')).toBe(false);
    expect(await cpuOver('burn', 700)).toBeGreaterThan(0.02);
  }, 30_000);

  it('memory.max is enforced by an OOM kill inside; kvmux and the other VMs go on', async () => {
    await sup.start('calm');
    const calm = sup.get('calm').pid;
    let hogPid = 0;
    sup.on('state', (st) => {
      if (st.name === 'hog' && st.pid) hogPid = st.pid;
    });
    await sup.start('hog').catch(() => {});
    const end = Date.now() + 20_000;
    while (sup.get('hog').state === 'running' && Date.now() < end) await sleep(100);
    const hog = sup.get('hog');
    process.stderr.write(`[cgroup] hog (pid ${hogPid}) ended: ${hog.state}, ${hog.lastError}\n`);
    expect(hog.lastError).toMatch(/signal SIGKILL/);
    // the kernel says who killed it: the memory cgroup's OOM killer, not the host's
    expect(execFileSync('dmesg', { encoding: 'utf8' })).toMatch(
      new RegExp(`Memory cgroup out of memory: Killed process ${hogPid}\\b`),
    );
    expect(sup.get('calm')).toMatchObject({ state: 'running', pid: calm });
    expect(sup.get('burn').state).toBe('running');
  }, 30_000);

  it('a hibernated VM is still frozen for the next kvmux, which stops it gracefully (woken first: a frozen process takes no signal, on v1 not even SIGKILL)', async () => {
    expect(sup.hibernate('burn')).toMatchObject({ frozen: true });
    await expect.poll(() => res.stopped('burn'), { timeout: 5000 }).toBe(true);
    // this kvmux goes (VMs left running, as an upgrade does); the next adopts the frozen VM
    await sup.shutdown({ leaveRunning: true });
    sup = new Supervisor(supOpts);
    expect(await sup.adoptAll()).toContain('burn');
    expect(sup.get('burn')).toMatchObject({ state: 'running', frozen: true });
    const t0 = Date.now();
    expect(await sup.stop('burn')).toMatchObject({ state: 'stopped', frozen: false });
    expect(Date.now() - t0).toBeLessThan(5000);
  }, 30_000);

  it('a stopped VM leaves no cgroup behind, nor a process it forked', async () => {
    await sleep(300);
    expect([...res.dirs('burn').values()].filter((d) => existsSync(d))).toEqual([]);
    const st = await sup.start('forks');
    await sleep(300);
    const inside = res.pids('forks');
    expect(inside.length).toBe(3);
    expect(inside).toContain(st.pid);
    await sup.stop('forks', { force: true });
    await sleep(500);
    expect(
      inside.filter(
        (p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z'),
      ),
    ).toEqual([]);
    expect([...res.dirs('forks').values()].filter((d) => existsSync(d))).toEqual([]);
  }, 30_000);
});

describe('instanceGroup: one parent cgroup per kvmux', () => {
  it('is "kvmux" for the service stateDir, another stable name for any other', () => {
    expect(instanceGroup('/var/lib/kvmux')).toBe('kvmux');
    expect(instanceGroup('/var/lib/kvmux/')).toBe('kvmux');
    const a = instanceGroup('/tmp/a/state');
    expect(a).toMatch(/^kvmux-[0-9a-f]{8}$/);
    expect(instanceGroup('/tmp/a/../a/state')).toBe(a);
    expect(instanceGroup('/tmp/b/state')).not.toBe(a);
  });
});

describe.runIf(layout)('two kvmux on one machine with a VM of the same name', () => {
  it("ending one's VM kills nothing of the other's; each parent group goes with its last VM", async () => {
    const one = new CgroupResources({ layout: layout!, group: instanceGroup(join(dir, 'one')) });
    const two = new CgroupResources({ layout: layout!, group: instanceGroup(join(dir, 'two')) });
    const a = spawn('/bin/sleep', ['600'], { stdio: 'ignore' });
    const b = spawn('/bin/sleep', ['600'], { stdio: 'ignore' });
    const exited = (c: typeof a) =>
      new Promise<void>((r) => (c.exitCode !== null || c.signalCode ? r() : c.once('exit', () => r())));
    try {
      one.apply('same', a.pid!, {});
      two.apply('same', b.pid!, {});
      expect(one.pids('same')).toEqual([a.pid]);
      expect(two.pids('same')).toEqual([b.pid]);
      await one.release('same');
      await exited(a);
      await sleep(200);
      expect(b.exitCode).toBeNull();
      expect(b.signalCode).toBeNull();
      expect(two.pids('same')).toEqual([b.pid]);
      const parent = (r: CgroupResources) => dirname([...r.dirs('same').values()][0]!);
      expect(existsSync(parent(one))).toBe(false);
      expect(existsSync(parent(two))).toBe(true);
      await two.release('same');
      await exited(b);
      expect(existsSync(parent(two))).toBe(false);
    } finally {
      a.kill('SIGKILL');
      b.kill('SIGKILL');
    }
  }, 30_000);
});

describe.runIf(layout)('a limit the kernel refuses', () => {
  it('is an error naming the file, never silently skipped (the VM would run unlimited)', async () => {
    const refusing = new CgroupResources({ layout: layout!, group: `kvmux-test-${process.pid}-refused` });
    const dirs = [...refusing.dirs('bad').values()];
    const parents = dirs.map((d) => dirname(d));
    const file = join(refusing.dirs('bad').get(layout!.mode === 'v2' ? '' : 'cpuset')!, 'cpuset.cpus');
    const refused = new RegExp(
      `^bad: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot write "4095": E[A-Z]+$`,
    );
    try {
      // no machine here has CPU 4095: the kernel answers EINVAL to cpuset.cpus (a non-optional write)
      expect(() => refusing.prepare('bad', { cpuset: '4095' })).toThrow(refused);
      // the same on a live change of a VM whose cgroup exists
      expect(refusing.prepare('bad', { cpuset: '0' })).toHaveLength(dirs.length);
      expect(() => refusing.update('bad', { cpuset: '4095' })).toThrow(refused);
    } finally {
      await refusing.release('bad');
      for (const d of [...dirs, ...parents]) if (existsSync(d)) rmdirSync(d);
    }
    expect([...dirs, ...parents].filter((d) => existsSync(d))).toEqual([]);
  });
});

if (!layout) loudSkip('cgroup resources', 'no usable cgroup v2 or v1 hierarchy under /sys/fs/cgroup');
