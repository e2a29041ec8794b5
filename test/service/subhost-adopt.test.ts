import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vethName } from '../../src/net/names.js';
import { detectCgroups } from '../../src/resources/cgroup.js';
import { subhostAvailable } from '../../src/session/backends/subhost.js';
import { isAlive } from '../../src/util/proc.js';
import { buildInitramfs, linuxGuestQemu } from '../fixtures/linux-guest.js';
import { loudSkip } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import { NET_MODULES } from '../net/guest-helpers.js';
import { createNetns, type TestNetns } from '../net/netns.js';
import { type Kvmux, reapOrphans, sleep, startKvmux } from './kvmux-harness.js';

/**
 * kill -9 of `kvmux run` while a subhost runs: the subhost (systemd-nspawn, busybox root, eth0 on
 * an anonymous bridge) lives on, and the next kvmux adopts it: the same nspawn pid, still pinging
 * the QEMU Linux guest on the bridge, anti-spoofing rebuilt for its port, and `vm.stop` still takes
 * down its netns, veth and mounts. The whole service runs inside a netns this test makes.
 */
const SUB = 'shadopt';
const SUB_NS = `kvmux-${SUB}`;
const dir = tempDir('kvmux-subhost-adopt-');
const base = join(dir, 'base');
let ns: TestNetns;
let k: Kvmux;

interface Row {
  name: string;
  state: string;
  pid: number | null;
}

const sh = (...a: string[]) => execa(a[0]!, a.slice(1), { reject: false });
const row = async (name: string) => (await k.call<Row[]>('vm.list')).find((r) => r.name === name)!;
const ping = async (from: string) =>
  (
    await sh(
      'ip',
      'netns',
      'exec',
      SUB_NS,
      'busybox',
      'ping',
      '-c',
      '2',
      '-W',
      '2',
      ...(from ? from.split(' ') : []),
      '10.79.0.1',
    )
  ).stdout;

/** What a subhost leaves on the machine: its netns, its veth in kvmux's netns, mounts under the test dir. */
async function leftovers() {
  return {
    netns: (await sh('ip', 'netns', 'list')).stdout
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n) => n === SUB_NS),
    veth: (await sh('ip', '-n', ns.name, '-o', 'link')).stdout.includes(vethName(SUB_NS, 'eth0')),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(dir)),
  };
}

async function drops(): Promise<number> {
  const json = JSON.parse(
    (await sh('ip', 'netns', 'exec', ns.name, 'nft', '-j', 'list', 'counters', 'table', 'bridge', 'kvmux'))
      .stdout || '{"nftables":[]}',
  );
  const port = vethName(SUB_NS, 'eth0');
  return (
    json.nftables.find((r: { counter?: { name: string } }) => r.counter?.name === `drop-${port}`)?.counter
      .packets ?? -1
  );
}

async function until(what: string, fn: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(300);
  }
}

function makeBase(): void {
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'var', 'usr'])
    mkdirSync(join(base, d), { recursive: true });
  copyFileSync('/bin/busybox', join(base, 'bin', 'busybox'));
  for (const a of ['sh', 'ip', 'ping', 'sleep', 'echo', 'hostname'])
    symlinkSync('busybox', join(base, 'bin', a));
  writeFileSync(
    join(base, 'sbin', 'init'),
    `#!/bin/sh
echo "subhost $(hostname) up"
trap 'echo bye; exit 0' TERM
ip addr add 10.79.0.3/24 dev eth0; ip link set eth0 up
while :; do sleep 1; done
`,
    { mode: 0o755 },
  );
  // nspawn refuses a root without one
  writeFileSync(join(base, 'etc', 'os-release'), 'ID=busybox\n');
}

const why = !subhostAvailable()
  ? 'systemd-nspawn is not installed (apt: systemd-container)'
  : !detectCgroups()
    ? 'no usable cgroups'
    : null;

beforeAll(async () => {
  if (why) return;
  await sh('ip', 'netns', 'del', SUB_NS);
  makeBase();
  ns = await createNetns('sha');
  const initrd = await buildInitramfs({
    init: 'ip link set lo up; ip addr add 10.79.0.1/24 dev eth0; ip link set eth0 up; echo alpha up; while :; do sleep 1; done',
    modules: NET_MODULES,
    outDir: join(dir, 'alpha'),
  });
  k = await startKvmux({
    netns: ns.name,
    // nspawn needs the cgroup mounts, which `ip netns exec` hides
    netnsKeepSys: true,
    firstDisplay: 275,
    readyTimeoutMs: 120_000,
    vms: [
      {
        name: 'alpha',
        backend: 'qemu',
        qemu: linuxGuestQemu(initrd),
        nics: [{ network: 'lan', mac: '06:a7:dd:b4:03:01', ips: ['10.79.0.1'] }],
      },
      {
        name: SUB,
        backend: 'subhost',
        nics: [{ network: 'lan', mac: '06:a7:dd:b4:03:03', ips: ['10.79.0.3'] }],
        subhost: { root: base, killSignal: 'SIGTERM' },
      },
    ],
    extra: { networks: [{ name: 'lan' }] },
  });
}, 180_000);

afterAll(async () => {
  await k?.stop();
  reapOrphans();
  await ns?.remove();
  await sh('ip', 'netns', 'del', SUB_NS);
});

describe.skipIf(why)('a subhost adopted after kill -9 of kvmux', () => {
  it('lives on, is adopted with the same pid, still pings, anti-spoofing still applies', async () => {
    await until('the subhost pings the QEMU guest', async () =>
      /2 packets received/.test(await ping('')),
    ).catch(async (err: unknown) => {
      const log = k
        .log()
        .split('\n')
        .filter((l) => l.includes(SUB) || l.includes('alpha'));
      throw new Error(
        `${String(err)}\n${JSON.stringify(await k.call('vm.list'))}\n${log.slice(-20).join('\n')}`,
      );
    });
    const sub = (await row(SUB)).pid ?? 0;
    expect(isAlive(sub)).toBe(true);

    await k.crash('SIGKILL');
    // no kvmux: the subhost and its network go on by themselves
    expect(isAlive(sub)).toBe(true);
    expect(await ping('')).toMatch(/2 packets received/);

    k = await k.restart();
    expect(await row(SUB)).toMatchObject({ state: 'running', pid: sub });
    expect(await ping('')).toMatch(/2 packets received/);
    // the restarted kvmux rebuilt its ruleset: the subhost's port is still guarded
    const d0 = await drops();
    expect(d0).toBeGreaterThanOrEqual(0);
    await sh('ip', '-n', SUB_NS, 'addr', 'add', '10.79.0.99/24', 'dev', 'eth0');
    expect(await ping('-I 10.79.0.99')).toMatch(/0 packets received/);
    expect(await drops()).toBeGreaterThan(d0);
  }, 240_000);

  it('stop of the adopted subhost still takes down its netns, veth and mounts', async () => {
    const sub = (await row(SUB)).pid ?? 0;
    expect(await leftovers()).toMatchObject({ netns: [SUB_NS], veth: true });
    await k.call('vm.stop', { name: SUB });
    expect(await row(SUB)).toMatchObject({ state: 'stopped' });
    expect(isAlive(sub)).toBe(false);
    const after = await leftovers();
    process.stderr.write(`[subhost-adopt] after stop: ${JSON.stringify(after)}\n`);
    expect(after).toEqual({ netns: [], veth: false, mounts: [] });
    expect(existsSync(join(k.dir, 'state', 'vms', `${SUB}.json`))).toBe(false);
  }, 120_000);
});

if (why) loudSkip('subhost adoption e2e', why);
