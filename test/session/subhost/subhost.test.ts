import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { NetworkManager } from '../../../src/net/manager.js';
import { vethName } from '../../../src/net/names.js';
import { CgroupResources, detectCgroups } from '../../../src/resources/cgroup.js';
import { V1_CONTROLLERS } from '../../../src/resources/limits.js';
import { createSubhostBackend, subhostAvailable } from '../../../src/session/backends/subhost.js';
import { subhostPaths } from '../../../src/session/backends/subhost-argv.js';
import { Supervisor } from '../../../src/session/supervisor.js';
import { vmDirOf } from '../../../src/session/vm-paths.js';
import { buildInitramfs } from '../../fixtures/linux-guest.js';
import { loudSkip } from '../../helpers/skips.js';
import { tempDir } from '../../helpers/temp.js';
import {
  bootGuestInNetns,
  NET_MODULES,
  type NsGuest,
  tapNicArgs,
  WAIT_GATE,
} from '../../net/guest-helpers.js';
import { startTestDisplay, type TestDisplay } from '../helpers/display.js';

/**
 * A busybox root booted as a subhost (systemd-nspawn, overlay over a read-only base) with eth0 on an
 * anonymous kvmux bridge (inside the test netns ks-sh-host), pinging a real Linux guest under QEMU on
 * the same bridge; anti-spoofing drops a forged source; hibernate freezes it; stop leaves no mount,
 * link, netns or cgroup behind (listed before and after).
 */
const HOST_NS = 'ks-sh-host';
const SUB_NS = 'ks-sh-sub';
const dir = tempDir('kvmux-subhost-');
const base = join(dir, 'base');
let display: TestDisplay;
let mgr: NetworkManager;
let sup: Supervisor;
let guest: NsGuest | undefined;
const layout = detectCgroups();
const group = `kvmux-test-sh-${process.pid}`;
const res = layout ? new CgroupResources({ layout, group }) : null;

const INIT = `#!/bin/sh
echo "subhost $(hostname) up"
trap 'echo bye; exit 0' TERM
ip addr add 10.78.0.3/24 dev eth0; ip link set eth0 up
n=0; until ping -c1 -W1 10.78.0.1 >/dev/null 2>&1; do n=$((n+1)); [ $n -ge 180 ] && break; sleep 1; done
mkdir -p /var/log; ping -c3 -W2 10.78.0.1 > /var/log/ping.out 2>&1; echo "rc=$?" >> /var/log/ping.out
echo "subhost pinged"
while :; do sleep 1; done
`;

const sh = (...a: string[]) => execa(a[0]!, a.slice(1), { reject: false });
async function snapshot() {
  return {
    netns: (await sh('ip', 'netns', 'list')).stdout
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n) => n?.startsWith('ks-sh-sub')),
    links: (await sh('ip', '-n', HOST_NS, '-o', 'link')).stdout
      .split('\n')
      .map((l) => l.split(':')[1]?.trim().split('@')[0])
      .filter(Boolean)
      .sort(),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(dir)),
  };
}

function makeBase(): void {
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'var', 'usr'])
    mkdirSync(join(base, d), { recursive: true });
  copyFileSync('/bin/busybox', join(base, 'bin', 'busybox'));
  for (const a of ['sh', 'ip', 'ping', 'sleep', 'echo', 'cat', 'mkdir', 'hostname', 'ls'])
    symlinkSync('busybox', join(base, 'bin', a));
  writeFileSync(join(base, 'sbin', 'init'), INIT, { mode: 0o755 });
  writeFileSync(join(base, 'etc', 'os-release'), 'ID=busybox\n');
}

const ready = layout && subhostAvailable();
let before: Awaited<ReturnType<typeof snapshot>>;

beforeAll(async () => {
  if (!ready) return;
  await sh('ip', 'netns', 'del', HOST_NS);
  await execa('ip', ['netns', 'add', HOST_NS]);
  makeBase();
  display = await startTestDisplay(138);
  const config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    networks: [{ name: 'lan' }],
    vms: [
      { name: 'alpha', backend: 'qemu', qemu: { accel: 'tcg' }, nics: [{ network: 'lan' }] },
      {
        name: 'sub',
        backend: 'subhost',
        nics: [{ network: 'lan', mac: '06:a7:dd:b4:02:f2', ips: ['10.78.0.3'] }],
        subhost: { root: base, killSignal: 'SIGTERM' },
        resources: { memoryMaxMiB: 64 },
      },
    ],
  });
  mgr = new NetworkManager({ netns: HOST_NS });
  await mgr.ensureNetworks(config.networks);
  const [tap] = await mgr.attachVm(config.vms[0]!);
  const initrd = await buildInitramfs({
    init: `ip link set lo up; ip addr add 10.78.0.1/24 dev eth0; ip link set eth0 up; echo alpha up; ${WAIT_GATE}`,
    modules: NET_MODULES,
    outDir: join(dir, 'alpha'),
  });
  guest = await bootGuestInNetns(HOST_NS, {
    initrd,
    serialLog: join(dir, 'alpha', 'serial.log'),
    qemuArgs: tapNicArgs('n0', tap!.ifname, tap!.mac),
  });
  await guest.waitFor('alpha up', 120_000);
  before = await snapshot();
  sup = new Supervisor({
    config: { ...config, vms: [config.vms[1]!] },
    backends: {
      subhost: createSubhostBackend({
        stateDir: config.stateDir,
        net: () => mgr,
        resources: () => res,
        netnsPrefix: 'ks-sh-',
        stopTimeoutMs: 5000,
      }),
    },
    displayFor: () => ({ display: display.display, width: 1024, height: 768 }),
    resources: res,
  });
}, 180_000);

afterAll(async () => {
  await sup?.shutdown({ force: true });
  await guest?.stop();
  await display?.stop();
  await sh('ip', 'netns', 'del', HOST_NS);
  await sh('ip', 'netns', 'del', SUB_NS);
  if (layout) {
    const parents =
      layout.mode === 'v2'
        ? [join(layout.root, group)]
        : V1_CONTROLLERS.map((c) => join(layout.root, c, group));
    for (const p of parents) if (existsSync(p)) await sh('rmdir', p);
  }
});

const upperFile = (p: string) => join(dir, 'state', 'subhost', 'sub', 'upper', p);
const consoleText = async () =>
  (
    await sh(
      'tmux',
      '-S',
      subhostPaths(vmDirOf(join(dir, 'run'), 'sub')).tmux,
      'capture-pane',
      '-p',
      '-t',
      'console',
    )
  ).stdout;

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.runIf(ready)('a subhost on systemd-nspawn', () => {
  it('boots, gets eth0 on the anonymous bridge and pings the QEMU guest; its writes land in its upper layer', async () => {
    const st = await sup.start('sub');
    expect(st).toMatchObject({ state: 'running', backend: 'subhost' });
    await until(
      'the subhost pinged',
      () =>
        existsSync(upperFile('var/log/ping.out')) &&
        readFileSync(upperFile('var/log/ping.out'), 'utf8').includes('rc='),
      60_000,
    ).catch(async (err: unknown) => {
      const diag = [
        await consoleText(),
        (await sh('ip', '-n', SUB_NS, 'addr')).stdout,
        (await sh('ip', 'netns', 'exec', SUB_NS, 'busybox', 'ping', '-c', '1', '-W', '2', '10.78.0.1'))
          .stdout,
        (await sh('ip', '-n', HOST_NS, 'link')).stdout,
      ];
      throw new Error(`${String(err)}\n${diag.join('\n---\n')}`);
    });
    const out = readFileSync(upperFile('var/log/ping.out'), 'utf8');
    expect(out, out).toMatch(/3 packets transmitted, 3 packets received/);
    expect(existsSync(join(base, 'var', 'log', 'ping.out'))).toBe(false);
    expect(await consoleText()).toContain('subhost sub up');
    const mac = (await sh('ip', '-n', SUB_NS, '-j', 'link', 'show', 'eth0')).stdout;
    expect(mac).toContain('06:a7:dd:b4:02:f2');
    expect(res?.pids('sub').length).toBeGreaterThan(2);
    // what the clean stop must take down again
    const during = await snapshot();
    expect(during.netns).toEqual([SUB_NS]);
    expect(during.links).toContain(vethName(SUB_NS, 'eth0'));
  }, 180_000);

  it('anti-spoofing applies: a forged source address is dropped and counted', async () => {
    const port = vethName(SUB_NS, 'eth0');
    const drops = async () => {
      const json = JSON.parse(
        (
          await sh(
            'ip',
            'netns',
            'exec',
            HOST_NS,
            'nft',
            '-j',
            'list',
            'counters',
            'table',
            'bridge',
            'kvmux',
          )
        ).stdout,
      );
      return json.nftables.find((r: { counter?: { name: string } }) => r.counter?.name === `drop-${port}`)
        ?.counter.packets as number;
    };
    const honest = await sh(
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
      '10.78.0.1',
    );
    expect(honest.stdout).toMatch(/2 packets received/);
    const d0 = await drops();
    await sh('ip', '-n', SUB_NS, 'addr', 'add', '10.78.0.99/24', 'dev', 'eth0');
    const forged = await sh(
      'ip',
      'netns',
      'exec',
      SUB_NS,
      'busybox',
      'ping',
      '-c',
      '2',
      '-W',
      '1',
      '-I',
      '10.78.0.99',
      '10.78.0.1',
    );
    expect(forged.stdout).toMatch(/0 packets received/);
    expect(await drops()).toBeGreaterThan(d0);
  }, 60_000);

  it('hibernate freezes every process; start thaws it', async () => {
    expect(sup.hibernate('sub')).toMatchObject({ frozen: true, state: 'running' });
    expect(res?.frozen('sub')).toBe(true);
    // the kernel stops the processes a moment after the request (cgroup v1 reads FREEZING meanwhile)
    await expect.poll(() => res?.stopped('sub'), { timeout: 10_000 }).toBe(true);
    expect((await sup.start('sub')).frozen).toBe(false);
    expect(res?.frozen('sub')).toBe(false);
    expect(res?.stopped('sub')).toBe(false);
  }, 30_000);

  it('stop is clean: no mount, link, netns or cgroup left behind', async () => {
    const st = await sup.stop('sub');
    expect(st).toMatchObject({ state: 'stopped', crashes: 0 });
    const after = await snapshot();
    process.stderr.write(
      `[subhost] before ${JSON.stringify(before)}\n[subhost] after  ${JSON.stringify(after)}\n`,
    );
    expect(after).toEqual(before);
    expect([...(res?.dirs('sub').values() ?? [])].filter((d) => existsSync(d))).toEqual([]);
  }, 60_000);
});

if (!ready)
  loudSkip(
    'subhost e2e',
    layout ? 'systemd-nspawn is not installed (apt: systemd-container)' : 'no usable cgroups',
  );
