import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootGuest,
  buildInitramfs,
  findKernel,
  type Guest,
  resolveModules,
} from '../fixtures/linux-guest.js';
import { loudSkip } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';

/**
 * cgroup v2 on a real kernel. This host is hybrid (v1 controllers; its cgroup2 mount holds none) and
 * its hierarchies are not ours to rebind, so the v2 path runs in a Linux guest (Debian's kernel,
 * busybox initramfs, TCG, 2 vCPUs): the host's root shared read-only over 9p, chrooted into with
 * tmpfs for /run, and cgroup2 mounted at /sys/fs/cgroup with every controller. There kvmux's own
 * code (v2-guest-driver.ts, bundled with esbuild: Supervisor, command backend, CgroupResources) puts
 * a CPU burner, a memory hog and a sleeper in their VM cgroups and reports what the kernel did.
 * Measured in the guest's time, which under TCG runs at host wall-clock rate.
 */
const QEMU = '/usr/bin/qemu-system-x86_64';
const why = (() => {
  if (!existsSync(QEMU)) return `${QEMU} missing (apt qemu-system-x86)`;
  if (!existsSync('/bin/busybox')) return '/bin/busybox missing (apt busybox-static)';
  try {
    resolveModules(['virtio_pci', '9p', '9pnet_virtio'], findKernel().version);
  } catch (err) {
    return `no guest kernel with 9p modules: ${String(err)}`;
  }
  return null;
})();

const dir = tempDir('kvmux-cgroup-v2-');
let guest: Guest | undefined;

/** What v2-guest-driver.ts prints on its KVMUX-V2-RESULT line. */
interface Measured {
  used: number;
  cpusSeen: number[];
  cpusAllowed?: string;
  applied: Record<string, unknown>;
  files: Record<string, string | null>;
}
interface Report {
  layout: unknown;
  subtreeControl: string[];
  burn: Measured & { inCgroup: boolean; procCgroup: string };
  changed: Measured & { live: boolean };
  dropped: Measured;
  freeze: { frozenUsed: number; thawedUsed: number };
  hog: {
    lastError: string | null;
    oomKillLine: string | null;
    globalOomKills: string[];
    calm: { pid: number; startPid: number; state: string };
    burn: { state: string };
    driverAlive: boolean;
  };
  afterStop: string[];
}
let result = {} as Report;

beforeAll(async () => {
  if (why) return;
  const driver = join(dir, 'driver.mjs');
  await build({
    entryPoints: [join(import.meta.dirname, 'v2-guest-driver.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: driver,
    logLevel: 'warning',
    // bundled CommonJS dependencies call require() for node built-ins
    banner: {
      js: "import { createRequire as kvmuxReq } from 'node:module'; const require = kvmuxReq(import.meta.url);",
    },
  });
  const initrd = await buildInitramfs({
    modules: ['virtio_pci', '9p', '9pnet_virtio'],
    outDir: join(dir, 'initrd'),
    init: `mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host || exit 2
mount -t tmpfs tmpfs /host/run
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || exit 3
echo "controllers: $(cat /host/sys/fs/cgroup/cgroup.controllers)"
chroot /host ${process.execPath} ${driver} /run/kvmux-v2`,
  });
  guest = await bootGuest({
    initrd,
    serialLog: join(dir, 'serial.log'),
    memoryMiB: 512,
    // multidevs=remap: /proc, /sys, /run … share inode numbers across host devices; unremapped, the
    // guest's 9p takes them for one directory and proc lands where sysfs was mounted
    qemuArgs: [
      ...['-smp', '2', '-virtfs'],
      'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    ],
  });
  const log = await guest.waitFor(/KVMUX-GUEST-DONE/, 240_000);
  const line = /KVMUX-V2-RESULT (.*)/.exec(log)?.[1];
  if (!line) throw new Error(`the driver in the guest did not report:\n${log.slice(-3000)}`);
  result = JSON.parse(line);
  process.stderr.write(`[cgroup-v2] guest (TCG, 2 vCPUs) ${/controllers: .*/.exec(log)?.[0]}\n`);
  const fig = (k: 'burn' | 'changed' | 'dropped') => result[k].used.toFixed(3);
  process.stderr.write(
    `[cgroup-v2] burner: quota 0.3 → ${fig('burn')} CPUs, live 0.6 → ${fig('changed')}, no limit → ${fig('dropped')}; frozen ${result.freeze.frozenUsed.toFixed(4)}\n`,
  );
  process.stderr.write(`[cgroup-v2] OOM: ${result.hog.oomKillLine}\n`);
  // a busy host starves the vCPU thread at the start of a quota period: the burner then falls short
  process.stderr.write(`[cgroup-v2] host load average: ${readFileSync('/proc/loadavg', 'utf8')}`);
}, 300_000);

afterAll(async () => {
  await guest?.stop();
});

describe.skipIf(why)('per-VM resources on cgroup v2 (in a Linux guest)', () => {
  it('kvmux finds the unified hierarchy and delegates the controllers to its group', () => {
    expect(result.layout).toEqual({ mode: 'v2', root: '/sys/fs/cgroup' });
    // the root and kvmux's own group both hand cpu, cpuset, memory and io down
    for (const enabled of result.subtreeControl)
      expect(enabled.split(' ')).toEqual(expect.arrayContaining(['cpu', 'cpuset', 'memory', 'io']));
  });

  it('a CPU burner is held to its cpu.max quota within ±10%, on its cpuset', () => {
    const b = result.burn;
    expect(b.inCgroup).toBe(true);
    expect(b.procCgroup).toBe('0::/kvmux/burn');
    expect(b.files).toMatchObject({
      'cpu.max': '30000 100000',
      'cpuset.cpus': '1',
      'io.weight': 'default 250',
    });
    expect(b.applied).toEqual({ cpuQuota: 0.3, cpuset: '1', memoryMaxMiB: null, ioWeight: 250 });
    expect(b.used).toBeGreaterThanOrEqual(0.27);
    expect(b.used).toBeLessThanOrEqual(0.33);
    expect(b.cpusAllowed).toBe('1');
    expect(b.cpusSeen).toEqual([1]);
  });

  it('vm.setResources changes quota, cpuset, memory.max and io.weight live', () => {
    const c = result.changed;
    expect(c.live).toBe(true);
    expect(c.files).toMatchObject({
      'cpu.max': '60000 100000',
      'cpuset.cpus': '0',
      'memory.max': String(100 * 1024 * 1024),
      'memory.swap.max': '0',
      'io.weight': 'default 40',
    });
    expect(c.applied).toEqual({ cpuQuota: 0.6, cpuset: '0', memoryMaxMiB: 100, ioWeight: 40 });
    expect(c.used).toBeGreaterThanOrEqual(0.54);
    expect(c.used).toBeLessThanOrEqual(0.66);
    expect(c.cpusAllowed).toBe('0');
    expect(c.cpusSeen).toEqual([0]);
  });

  it('dropping every limit really drops it: the burner takes a whole CPU', () => {
    const d = result.dropped;
    expect(d.files).toMatchObject({ 'cpu.max': 'max 100000', 'memory.max': 'max', 'cpuset.cpus': '0-1' });
    expect(d.applied).toEqual({ cpuQuota: null, cpuset: '0-1', memoryMaxMiB: null, ioWeight: 100 });
    expect(d.used).toBeGreaterThan(0.85);
  });

  it('hibernate freezes the whole cgroup (cgroup.freeze) and thaw lets it run', () => {
    expect(result.freeze.frozenUsed).toBeLessThan(0.005);
    expect(result.freeze.thawedUsed).toBeGreaterThan(0.5);
  });

  it('memory.max is enforced by an OOM kill inside the cgroup; the rest lives on', () => {
    const h = result.hog;
    expect(h.lastError).toMatch(/signal SIGKILL/);
    // the memory cgroup's OOM killer, not the whole guest's
    expect(h.oomKillLine).toMatch(/Memory cgroup out of memory: Killed process \d+ \(tail\)/);
    expect(h.globalOomKills).toEqual([]);
    expect(h.calm).toMatchObject({ state: 'running', pid: h.calm.startPid });
    expect(h.burn.state).toBe('running');
    expect(h.driverAlive).toBe(true);
  });

  it('a stopped VM leaves no cgroup behind', () => {
    expect(result.afterStop).toEqual([]);
  });
});

if (why) loudSkip('cgroup v2 in a Linux guest', why);
