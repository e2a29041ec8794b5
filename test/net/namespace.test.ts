import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { NetworkManager } from '../../src/net/manager.js';
import { createNetns, type TestNetns } from './netns.js';

const config = configSchema.parse({ networks: [{ name: 'sub' }] });

/** busybox ping: true when every echo came back. */
async function pings(from: TestNetns, to: string, ...opts: string[]): Promise<boolean> {
  const out = await from
    .exec('busybox', 'ping', '-c', '2', '-W', '2', ...opts, to)
    .catch((e) => String(e.stdout));
  return /2 packets transmitted, 2 packets received/.test(out);
}

/** Packets of a kvmux counter in `ns` (the host namespace of a test). */
async function counterIn(ns: TestNetns, name: string): Promise<number> {
  const json = JSON.parse(await ns.exec('nft', '-j', 'list', 'counters', 'table', 'bridge', 'kvmux'));
  const row = json.nftables.find((r: { counter?: { name: string } }) => r.counter?.name === name);
  return row?.counter.packets ?? 0;
}

describe('subhost-style namespace members on an anonymous bridge', () => {
  let host: TestNetns;
  let m1: TestNetns;
  let m2: TestNetns;
  let mgr: NetworkManager;
  const counter = async (name: string): Promise<number> => {
    const json = JSON.parse(await host.exec('nft', '-j', 'list', 'counters', 'table', 'bridge', 'kvmux'));
    return json.nftables.find((r: { counter?: { name: string } }) => r.counter?.name === name)?.counter
      .packets;
  };

  beforeAll(async () => {
    host = await createNetns('sh-');
    m1 = await createNetns('m1-');
    m2 = await createNetns('m2-');
    mgr = new NetworkManager({ netns: host.name });
    await mgr.ensureNetworks(config.networks);
    for (const [m, ip] of [
      [m1, '10.77.1.1'],
      [m2, '10.77.1.2'],
    ] as const) {
      await mgr.attachNamespace('sub', m.name, 'eth0', { ips: [ip] });
      await m.exec('ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
    }
  });
  afterAll(async () => {
    for (const ns of [m1, m2, host]) await ns?.remove();
  });

  it('one member pings the other across the bridge', async () => {
    expect(await pings(m1, '10.77.1.2')).toBe(true);
    const list = await mgr.list();
    expect(list[0]?.members.map((m) => [m.kind, m.namespace, m.ips])).toEqual([
      ['namespace', m1.name, ['10.77.1.1']],
      ['namespace', m2.name, ['10.77.1.2']],
    ]);
  });

  it('a member sending from an address it was not given is dropped and counted', async () => {
    const port = (await mgr.list())[0]?.members[0]?.tap ?? '';
    const before = await counter(`drop-${port}`);
    await m1.exec('ip', 'addr', 'add', '10.77.1.50/24', 'dev', 'eth0');
    expect(await pings(m1, '10.77.1.2', '-I', '10.77.1.50')).toBe(false);
    expect(await counter(`drop-${port}`)).toBeGreaterThan(before);
    await m1.exec('ip', 'addr', 'del', '10.77.1.50/24', 'dev', 'eth0');
    expect(await pings(m1, '10.77.1.2')).toBe(true);
  });

  it('the host answers nothing, even when someone puts an address on the bridge', async () => {
    const before = await counter('host-drop');
    await host.exec('ip', 'addr', 'add', '10.77.1.254/24', 'dev', 'kvbr-sub');
    expect((await mgr.list())[0]?.addresses).toEqual(['10.77.1.254/24']);
    expect(await pings(m1, '10.77.1.254')).toBe(false);
    expect(await counter('host-drop')).toBeGreaterThan(before);
    const neigh = await m1.exec('ip', '-j', 'neigh', 'show', '10.77.1.254');
    expect(neigh).not.toContain('lladdr');
    await host.exec('ip', 'addr', 'flush', 'dev', 'kvbr-sub');
  });

  it('a detached member loses its veth; the other stays', async () => {
    await mgr.detachNamespace(m2.name, 'eth0');
    const inM2 = await m2.ipJson<Array<{ ifname: string }>>('link', 'show');
    expect(inM2.map((l) => l.ifname)).toEqual(['lo']);
    expect((await mgr.list())[0]?.members).toHaveLength(1);
  });
});

describe('a network with an uplink', () => {
  let host: TestNetns;
  let wire: TestNetns;
  let member: TestNetns;
  let mgr: NetworkManager;

  beforeAll(async () => {
    [host, wire, member] = [await createNetns('up-'), await createNetns('wire-'), await createNetns('um-')];
    // phys0 plays the physical NIC; its peer in `wire` plays the LAN behind it.
    await host.exec('ip', 'link', 'add', 'phys0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', wire.name);
    await host.exec('ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'phys0');
    await wire.exec('ip', 'addr', 'add', '10.77.3.9/24', 'dev', 'lan0');
    await wire.exec('ip', 'link', 'set', 'lan0', 'up');
    mgr = new NetworkManager({ netns: host.name });
    await mgr.ensureNetworks(configSchema.parse({ networks: [{ name: 'up', uplink: 'phys0' }] }).networks);
    await mgr.attachNamespace('up', member.name, 'eth0', { ips: ['10.77.3.1'] });
    await member.exec('ip', 'addr', 'add', '10.77.3.1/24', 'dev', 'eth0');
  });
  afterAll(async () => {
    for (const ns of [member, wire, host]) await ns?.remove();
  });

  it('enslaves the uplink without its addresses and forwards members to the wire', async () => {
    const phys = await host.ipJson<Array<{ master?: string; addr_info: unknown[] }>>(
      'addr',
      'show',
      'dev',
      'phys0',
    );
    expect(phys[0]?.master).toBe('kvbr-up');
    expect(phys[0]?.addr_info).toEqual([]);
    expect(await pings(member, '10.77.3.9')).toBe(true);
    const list = await mgr.list();
    expect(list[0]).toMatchObject({ name: 'up', bridge: 'kvbr-up', uplink: 'phys0', addresses: [] });
  });

  it('the host stays unreachable from the wire, even with an address and ARP on the bridge', async () => {
    const before = await counterIn(host, 'host-drop');
    await host.exec('ip', 'addr', 'add', '10.77.3.254/24', 'dev', 'kvbr-up');
    await host.exec('ip', 'link', 'set', 'dev', 'kvbr-up', 'arp', 'on');
    try {
      // the LAN behind the uplink gets no answer (ARP nor ICMP): the uplink is a silent port too
      expect(await pings(wire, '10.77.3.254')).toBe(false);
      expect(await counterIn(host, 'host-drop')).toBeGreaterThan(before);
      const neigh = await wire.exec('ip', '-j', 'neigh', 'show', '10.77.3.254');
      expect(neigh).not.toContain('lladdr');
      // only the host is silent: the member still answers the wire
      expect(await pings(wire, '10.77.3.1')).toBe(true);
    } finally {
      await host.exec('ip', 'link', 'set', 'dev', 'kvbr-up', 'arp', 'off');
      await host.exec('ip', 'addr', 'flush', 'dev', 'kvbr-up');
    }
  });
});
