import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { NetworkManager } from '../../src/net/manager.js';
import { buildInitramfs } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';
import { bootGuestInNetns, NET_MODULES, type NsGuest, tapNicArgs, WAIT_GATE } from './guest-helpers.js';
import { createNetns, type TestNetns } from './netns.js';

/** Ping up to N times; the sleep matters: after a failed ARP, ping fails at once for a while. */
const REACH =
  'reach() { n=0; until ping -c1 -W1 "$1" >/dev/null 2>&1; do n=$((n+1)); [ $n -ge "$2" ] && return 1; sleep 1; done; }';
const phase = (name: string, tries: number) =>
  `if reach 10.77.0.1 ${tries}; then echo "${name} reached"; else echo "${name} blocked"; fi; echo "${name} done"; ${WAIT_GATE}`;

const ALPHA = `
ip link set lo up; ip addr add 10.77.0.1/24 dev eth0; ip link set eth0 up
${REACH}
if reach 10.77.0.2 120; then echo "ALPHA-TO-BETA reached"; else echo "ALPHA-TO-BETA blocked"; fi
${WAIT_GATE}
`;

/** Beta: honest, then a changed MAC, then honest again, then a forged (unpinned) source IP. */
const BETA = `
ORIG=$(cat /sys/class/net/eth0/address)
ip link set lo up; ip addr add 10.77.0.2/24 dev eth0; ip link set eth0 up
${REACH}
${phase('HONEST', 120)}
ip link set eth0 down; ip link set eth0 address 02:66:66:66:66:66; ip link set eth0 up
${phase('MAC-SPOOF', 5)}
ip link set eth0 down; ip link set eth0 address "$ORIG"; ip link set eth0 up
${phase('RESTORED', 60)}
ip addr flush dev eth0; ip addr add 10.77.0.99/24 dev eth0
${phase('IP-SPOOF', 5)}
`;

const config = configSchema.parse({
  networks: [{ name: 'lan' }],
  vms: [
    { name: 'alpha', backend: 'qemu', qemu: { accel: 'tcg' }, nics: [{ network: 'lan' }] },
    { name: 'beta', backend: 'qemu', qemu: { accel: 'tcg' }, nics: [{ network: 'lan', ips: ['10.77.0.2'] }] },
  ],
});

describe('two real Linux guests on an anonymous bridge with anti-spoofing', () => {
  let ns: TestNetns;
  let member: TestNetns | undefined;
  let mgr: NetworkManager;
  let work: string;
  const guests = new Map<string, NsGuest>();
  const drops = async (tap: string): Promise<number> => {
    const json = JSON.parse(await ns.exec('nft', '-j', 'list', 'counters', 'table', 'bridge', 'kvmux'));
    const row = json.nftables.find((r: { counter?: { name: string } }) => r.counter?.name === `drop-${tap}`);
    if (!row) throw new Error(`no counter drop-${tap}`);
    return row.counter.packets as number;
  };

  beforeAll(async () => {
    work = tempDir('kvmux-net-guests-');
    ns = await createNetns('vm-');
    mgr = new NetworkManager({ netns: ns.name });
    await mgr.ensureNetworks(config.networks);
    for (const [vm, init] of [
      [config.vms[0]!, ALPHA],
      [config.vms[1]!, BETA],
    ] as const) {
      const [tap] = await mgr.attachVm(vm);
      const initrd = await buildInitramfs({ init, modules: NET_MODULES, outDir: join(work, vm.name) });
      const qemuArgs = tapNicArgs('n0', tap!.ifname, tap!.mac);
      const serialLog = join(work, vm.name, 'serial.log');
      guests.set(vm.name, await bootGuestInNetns(ns.name, { initrd, serialLog, qemuArgs }));
    }
  }, 120_000);

  afterAll(async () => {
    for (const g of guests.values()) await g.stop();
    await member?.remove();
    await ns?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the guests ping each other across the bridge', async () => {
    const beta = guests.get('beta')!;
    expect(await beta.waitFor('HONEST done', 240_000)).toContain('HONEST reached');
    expect(await guests.get('alpha')!.waitFor('ALPHA-TO-BETA', 240_000)).toContain('ALPHA-TO-BETA reached');
    expect(await drops('kvt-alpha-0')).toBe(0);
  }, 300_000);

  it('a namespace member on the same bridge reaches a guest', async () => {
    member = await createNetns('member-');
    await mgr.attachNamespace('lan', member.name, 'eth0', { ips: ['10.77.0.3'] });
    await member.exec('ip', 'addr', 'add', '10.77.0.3/24', 'dev', 'eth0');
    const out = await member.exec('busybox', 'ping', '-c', '3', '-W', '5', '10.77.0.1');
    expect(out, out).toMatch(/3 packets transmitted, 3 (packets )?received/);
  }, 60_000);

  it('after beta changes its MAC its frames are dropped and its counter rises', async () => {
    const beta = guests.get('beta')!;
    const before = await drops('kvt-beta-0');
    beta.send('go');
    expect(await beta.waitFor('MAC-SPOOF done', 120_000)).toContain('MAC-SPOOF blocked');
    expect(await drops('kvt-beta-0')).toBeGreaterThan(before);
    expect(await drops('kvt-alpha-0')).toBe(0);
  }, 180_000);

  it('with its own MAC back, beta is reachable again', async () => {
    const beta = guests.get('beta')!;
    beta.send('go');
    expect(await beta.waitFor('RESTORED done', 180_000)).toContain('RESTORED reached');
  }, 240_000);

  it('a forged source IP on the pinned NIC is dropped and counted; net.list shows the drops', async () => {
    const beta = guests.get('beta')!;
    const before = await drops('kvt-beta-0');
    beta.send('go');
    expect(await beta.waitFor('IP-SPOOF done', 120_000)).toContain('IP-SPOOF blocked');
    const after = await drops('kvt-beta-0');
    expect(after).toBeGreaterThan(before);
    const lan = (await mgr.list())[0]!;
    expect(lan.addresses).toEqual([]);
    const row = lan.members.find((m) => m.vm === 'beta');
    expect(row?.drops.packets).toBeGreaterThanOrEqual(after);
    expect(row?.ips).toEqual(['10.77.0.2']);
  }, 180_000);

  it('stopping a VM and detaching it removes its tap', async () => {
    await guests.get('beta')!.stop();
    await mgr.detachVm('beta');
    const links = await ns.ipJson<Array<{ ifname: string }>>('link', 'show');
    expect(links.map((l) => l.ifname)).not.toContain('kvt-beta-0');
    expect(links.map((l) => l.ifname)).toContain('kvt-alpha-0');
  });
});
