import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, configSchema } from '../../src/config/schema.js';
import { networkIssues } from '../../src/net/config-check.js';
import { NetworkManager } from '../../src/net/manager.js';
import { guestMac } from '../../src/net/names.js';
import { createNetns, type TestNetns } from './netns.js';
import { longIpv6s, mostThatFit } from './pinned-ips.js';

interface IpLink {
  ifname: string;
  flags: string[];
  master?: string;
  address: string;
  ifalias?: string;
}
interface IpAddr {
  ifname: string;
  addr_info: Array<{ family: string; local: string }>;
}

const config = (vms: unknown[], networks: unknown[] = [{ name: 'lan' }]): Config =>
  configSchema.parse({ vms, networks });
const qemuVm = (name: string, nics: unknown[]) => ({ name, backend: 'qemu', qemu: {}, nics });
const base = config([
  qemuVm('alpha', [{ network: 'lan' }, { network: 'lan', ips: ['10.77.0.1'] }]),
  qemuVm('beta', [{ network: 'lan', mac: '52:54:00:00:00:be' }]),
]);
const vm = (name: string) => base.vms.find((v) => v.name === name)!;

describe('anonymous bridge and taps (inside a test netns)', () => {
  let ns: TestNetns;
  let mgr: NetworkManager;
  const links = () => ns.ipJson<IpLink[]>('link', 'show');
  const names = async () => (await links()).map((l) => l.ifname).sort();
  const addrsOf = async (ifname: string) =>
    (await ns.ipJson<IpAddr[]>('addr', 'show', 'dev', ifname))[0]?.addr_info ?? [];

  beforeAll(async () => {
    ns = await createNetns('mgr-');
    mgr = new NetworkManager({ netns: ns.name });
    await mgr.ensureNetworks(base.networks);
  });
  afterAll(async () => {
    await ns?.remove();
  });

  it('creates the bridge without addresses, with IPv6 and ARP off', async () => {
    const br = (await links()).find((l) => l.ifname === 'kvbr-lan');
    expect(br?.flags).toEqual(expect.arrayContaining(['NOARP', 'UP']));
    expect(await addrsOf('kvbr-lan')).toEqual([]);
    expect((await ns.exec('cat', '/proc/sys/net/ipv6/conf/kvbr-lan/disable_ipv6')).trim()).toBe('1');
  });

  it('turns bridge netfilter off in its own namespace only', async () => {
    const inNs = (await ns.exec('cat', '/proc/sys/net/bridge/bridge-nf-call-iptables')).trim();
    expect(inNs).toBe('0');
    // The root namespace's value is only read, never written by this test.
    const root = readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim();
    expect(['0', '1']).toContain(root);
  });

  it('attaches VM taps with the derived or given guest MAC, enslaved and address-free', async () => {
    const taps = await mgr.attachVm(vm('alpha'));
    expect(taps).toEqual([
      { ifname: 'kvt-alpha-0', mac: guestMac('alpha', 0) },
      { ifname: 'kvt-alpha-1', mac: guestMac('alpha', 1) },
    ]);
    expect(await mgr.attachVm(vm('beta'))).toEqual([{ ifname: 'kvt-beta-0', mac: '52:54:00:00:00:be' }]);
    for (const t of ['kvt-alpha-0', 'kvt-alpha-1', 'kvt-beta-0']) {
      const link = (await links()).find((l) => l.ifname === t);
      expect(link?.master).toBe('kvbr-lan');
      expect(link?.address.startsWith('fe:')).toBe(true);
      expect(await addrsOf(t)).toEqual([]);
    }
  });

  it('keeps the bridge free of any link-local address once it has carrier (a plain bridge gets one)', async () => {
    await mgr.attachNamespace('lan', ns.name, 'probe0');
    await ns.exec('ip', 'link', 'add', 'ctl0', 'type', 'bridge');
    await ns.exec('ip', 'link', 'add', 'ctlv0', 'type', 'veth', 'peer', 'name', 'ctlv1');
    await ns.exec('ip', 'link', 'set', 'ctlv0', 'master', 'ctl0', 'up');
    await ns.exec('ip', 'link', 'set', 'ctlv1', 'up');
    await ns.exec('ip', 'link', 'set', 'ctl0', 'up');
    await ns.exec('ip', 'link', 'set', 'probe0', 'up');
    const control = await addrsOf('ctl0');
    expect(control.some((a) => a.family === 'inet6' && a.local.startsWith('fe80:'))).toBe(true);
    const ours = (await links()).find((l) => l.ifname === 'kvbr-lan');
    expect(ours?.flags).toContain('LOWER_UP');
    expect(await addrsOf('kvbr-lan')).toEqual([]);
    await ns.exec('ip', 'link', 'del', 'ctl0');
    await ns.exec('ip', 'link', 'del', 'ctlv0');
    await mgr.detachNamespace(ns.name, 'probe0');
  });

  it('lists networks in the net.list shape with per-NIC drop counters', async () => {
    const list = await mgr.list();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: 'lan', bridge: 'kvbr-lan', uplink: null, addresses: [] });
    expect(list[0]?.members.map((m) => [m.vm, m.nic, m.tap, m.ips])).toEqual([
      ['alpha', 0, 'kvt-alpha-0', []],
      ['alpha', 1, 'kvt-alpha-1', ['10.77.0.1']],
      ['beta', 0, 'kvt-beta-0', []],
    ]);
    for (const m of list[0]?.members ?? []) expect(m.drops).toEqual({ packets: 0, bytes: 0 });
    const counters = JSON.parse(await ns.exec('nft', '-j', 'list', 'counters', 'table', 'bridge', 'kvmux'));
    const counterNames = counters.nftables.flatMap((r: { counter?: { name: string } }) =>
      r.counter ? [r.counter.name] : [],
    );
    expect(counterNames).toEqual(
      expect.arrayContaining(['drop-kvt-alpha-0', 'drop-kvt-alpha-1', 'drop-kvt-beta-0']),
    );
  });

  it('detaching a VM removes its taps and their rules', async () => {
    await mgr.detachVm('beta');
    expect(await names()).not.toContain('kvt-beta-0');
    expect(await ns.exec('nft', 'list', 'table', 'bridge', 'kvmux')).not.toContain('kvt-beta-0');
  });

  it('re-attaching a VM whose config lost a NIC removes the extra tap', async () => {
    const fewer = config([qemuVm('alpha', [{ network: 'lan' }])]).vms[0]!;
    expect(await mgr.attachVm(fewer)).toEqual([{ ifname: 'kvt-alpha-0', mac: guestMac('alpha', 0) }]);
    expect(await names()).not.toContain('kvt-alpha-1');
    await mgr.attachVm(vm('alpha'));
    expect(await names()).toContain('kvt-alpha-1');
  });

  it('a restarted service reconciles: leftovers go, running VMs keep one tap per NIC, foreign links stay', async () => {
    await ns.exec('ip', 'tuntap', 'add', 'dev', 'kvt-ghost-0', 'mode', 'tap');
    await ns.exec('ip', 'link', 'add', 'kvbr-old', 'type', 'bridge');
    await ns.exec('ip', 'tuntap', 'add', 'dev', 'vnet3', 'mode', 'tap');
    await mgr.attachVm(vm('beta'));
    const restarted = new NetworkManager({ netns: ns.name });
    const first = await restarted.reconcile(base, ['alpha']);
    expect(first.removed.sort()).toEqual(['kvbr-old', 'kvt-beta-0', 'kvt-ghost-0']);
    expect(first.adopted.sort()).toEqual(['kvt-alpha-0', 'kvt-alpha-1']);
    expect(first.created).toEqual([]);
    const second = await restarted.reconcile(base, ['alpha']);
    expect(second).toEqual({ removed: [], adopted: ['kvt-alpha-0', 'kvt-alpha-1'], created: [] });
    expect(await names()).toEqual(['kvbr-lan', 'kvt-alpha-0', 'kvt-alpha-1', 'lo', 'vnet3']);
    expect((await restarted.list())[0]?.members.map((m) => m.tap)).toEqual(['kvt-alpha-0', 'kvt-alpha-1']);
  });

  it('reconcile recreates a missing tap of a running VM and a deleted bridge', async () => {
    await ns.exec('ip', 'link', 'del', 'kvt-alpha-1');
    await ns.exec('ip', 'link', 'del', 'kvbr-lan');
    const m = new NetworkManager({ netns: ns.name });
    const report = await m.reconcile(base, ['alpha']);
    expect(report.created).toEqual(['kvt-alpha-1']);
    const byName = new Map((await links()).map((l) => [l.ifname, l]));
    expect(byName.get('kvt-alpha-0')?.master).toBe('kvbr-lan');
    expect(byName.get('kvt-alpha-1')?.master).toBe('kvbr-lan');
    expect(await addrsOf('kvbr-lan')).toEqual([]);
  });

  it('a network dropped from the config loses its bridge and taps', async () => {
    const m = new NetworkManager({ netns: ns.name });
    const report = await m.reconcile(config([], []));
    expect(report.removed.sort()).toEqual(['kvbr-lan', 'kvt-alpha-0', 'kvt-alpha-1']);
    expect(await names()).toEqual(['lo', 'vnet3']);
  });
});

describe('a configured bridge name that is already a real NIC', () => {
  let ns: TestNetns;

  beforeAll(async () => {
    ns = await createNetns('nic-');
    // eth7 plays a physical NIC someone named as the bridge (`bridge: eth7`)
    await ns.exec('ip', 'link', 'add', 'eth7', 'type', 'veth', 'peer', 'name', 'eth7p');
    await ns.exec('ip', 'addr', 'add', '192.0.2.7/24', 'dev', 'eth7');
    await ns.exec('ip', 'link', 'set', 'eth7', 'up');
  });
  afterAll(async () => {
    await ns?.remove();
  });

  it('is refused as "not a bridge" and keeps its addresses', async () => {
    const mgr = new NetworkManager({ netns: ns.name });
    const nets = config([], [{ name: 'lan', bridge: 'eth7' }]).networks;
    await expect(mgr.ensureNetworks(nets)).rejects.toThrow(/eth7.*not a bridge/);
    const addrs = (await ns.ipJson<IpAddr[]>('addr', 'show', 'dev', 'eth7'))[0]?.addr_info ?? [];
    expect(addrs.map((a) => a.local)).toContain('192.0.2.7');
    const link = (await ns.ipJson<IpLink[]>('link', 'show', 'dev', 'eth7'))[0];
    expect(link?.flags).not.toContain('NOARP');
    expect(link?.ifalias).toBeUndefined();
  });
});

describe('namespace members (subhosts) across a service restart', () => {
  let ns: TestNetns;
  let member: TestNetns;
  const nets = config([]);
  /** The member with pinned IPs only, and the one allowed server roles. */
  let plain = '';
  let server = '';
  const chain = (port: string) => ns.exec('nft', 'list', 'chain', 'bridge', 'kvmux', `port-${port}`);

  beforeAll(async () => {
    ns = await createNetns('nsr-');
    member = await createNetns('nsm-');
    const first = new NetworkManager({ netns: ns.name });
    await first.ensureNetworks(nets.networks);
    plain = (await first.attachNamespace('lan', member.name, 'eth0', { ips: ['10.77.0.9'] })).ifname;
    server = (
      await first.attachNamespace('lan', member.name, 'eth1', {
        ips: ['10.77.0.10'],
        allow: ['dhcp-server', 'router-advertisements'],
      })
    ).ifname;
  });
  afterAll(async () => {
    for (const n of [member, ns]) await n?.remove();
  });

  it('a member attached with allow roles has only those role drops lifted from its port', async () => {
    const rules = await chain(server);
    expect(rules).not.toContain('udp sport 67');
    expect(rules).not.toContain('udp sport 547');
    expect(rules).not.toContain('nd-router-advert');
    expect(rules).toMatch(/8021q.*drop/);
    expect(await chain(plain)).toContain('udp sport 67');
  });

  it('a new manager adopts the veths with their pinned IPs', async () => {
    const restarted = new NetworkManager({ netns: ns.name });
    const report = await restarted.reconcile(nets);
    expect({ ...report, adopted: report.adopted.sort() }).toEqual({
      removed: [],
      adopted: [plain, server].sort(),
      created: [],
    });
    const inMember = await member.ipJson<IpLink[]>('link', 'show');
    expect(inMember.map((l) => l.ifname).sort()).toEqual(['eth0', 'eth1', 'lo']);
    const members = (await restarted.list())[0]?.members ?? [];
    expect(members.map((m) => [m.kind, m.namespace, m.tap, m.ips])).toEqual(
      expect.arrayContaining([
        ['namespace', member.name, plain, ['10.77.0.9']],
        ['namespace', member.name, server, ['10.77.0.10']],
      ]),
    );
    expect(await chain(plain)).toMatch(/ip saddr 10\.77\.0\.9 return/);
  });

  it('adopted members keep their allow roles', async () => {
    const rules = await chain(server);
    expect(rules).toMatch(/ip saddr 10\.77\.0\.10 return/);
    expect(rules).not.toContain('udp sport 67');
    expect(rules).not.toContain('nd-router-advert');
    expect(rules).toMatch(/8021q.*drop/);
    expect(await chain(plain)).toContain('udp sport 67');
  });
});

describe('pinned addresses and the port alias that keeps them', () => {
  let ns: TestNetns;
  afterAll(async () => {
    await ns?.remove();
  });

  it('the most addresses the config check lets through fit the kernel alias; one more is a config error', async () => {
    const name = `v${'x'.repeat(30)}`; // the longest VM name
    const cfg = (n: number) =>
      config([qemuVm(name, [{ network: 'lan', ips: longIpv6s(n), allow: ['dhcp-server'] }])]);
    const most = mostThatFit((n) => networkIssues(cfg(n)).length === 0);
    expect(most).toBeGreaterThanOrEqual(2);
    expect(most).toBeLessThan(20); // 20 such addresses are 800 bytes: the check must have stopped them
    expect(networkIssues(cfg(most + 1))).toEqual([
      expect.stringMatching(
        new RegExp(
          `^vms\\[0\\]\\.nics\\[0\\]\\.ips: ${most + 1} pinned addresses do not fit the port's interface alias.*\\(\\d+ of 255 bytes\\)`,
        ),
      ),
    ]);
    // what the check lets through, the kernel takes: the tap is made and its alias holds every address
    ns = await createNetns('alias-');
    const mgr = new NetworkManager({ netns: ns.name });
    const c = cfg(most);
    await mgr.ensureNetworks(c.networks);
    const [tap] = await mgr.attachVm(c.vms[0]!);
    const link = (await ns.ipJson<IpLink[]>('link', 'show', 'dev', tap!.ifname))[0];
    expect(link?.ifalias?.length).toBeLessThanOrEqual(255);
    expect(link?.ifalias).toContain(`ips=${longIpv6s(most).join(',')}`);
  });
});
