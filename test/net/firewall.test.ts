import { describe, expect, it } from 'vitest';
import { eui64LinkLocal, portRules, renderRuleset, splitIps } from '../../src/net/firewall.js';

const MAC = '02:11:22:33:44:55';

describe('anti-spoofing rules per port', () => {
  const roles = (d: string) => [
    `ether type { 8021q, 8021ad } ${d}`,
    `ether type ip6 icmpv6 type nd-router-advert ${d}`,
    `ether type ip udp sport 67 ${d}`,
    `ether type ip6 udp sport 547 ${d}`,
  ];

  it('without pinned IPs the source MAC is checked and server roles are dropped', () => {
    const d = 'counter name "drop-kvt-a-0" drop';
    expect(portRules({ ifname: 'kvt-a-0', mac: MAC, ips: [] })).toEqual([
      `ether saddr != ${MAC} ${d}`,
      ...roles(d),
    ]);
  });

  it('a NIC allowed a role keeps it, and only it', () => {
    const d = 'counter name "drop-kvt-a-0" drop';
    const allowed = (allow: ('router-advertisements' | 'dhcp-server' | 'vlan')[]) =>
      portRules({ ifname: 'kvt-a-0', mac: MAC, ips: [], allow });
    expect(allowed(['vlan'])).not.toContain(roles(d)[0]);
    expect(allowed(['router-advertisements'])).not.toContain(roles(d)[1]);
    expect(allowed(['dhcp-server'])).toEqual([`ether saddr != ${MAC} ${d}`, ...roles(d).slice(0, 2)]);
  });

  it.each([
    ['52:54:00:12:34:56', 'fe80::5054:ff:fe12:3456'],
    ['02:11:22:33:44:55', 'fe80::11:22ff:fe33:4455'],
    ['00:00:00:00:00:01', 'fe80::200:ff:fe00:1'],
  ])('derives the EUI-64 link-local address of %s', (mac, want) => {
    expect(eui64LinkLocal(mac)).toBe(want);
  });

  it('pinned IPs check ARP sender MAC/IP, IPv4 and IPv6 sources, and drop other ethertypes', () => {
    const rules = portRules({ ifname: 'kvt-b-0', mac: MAC, ips: ['10.77.0.2', 'fd00::2/128'] });
    const d = 'counter name "drop-kvt-b-0" drop';
    expect(rules).toEqual([
      `ether saddr != ${MAC} ${d}`,
      ...roles(d),
      'ether type ip ip saddr { 10.77.0.2 } return',
      'ether type ip6 ip6 saddr { fd00::2/128 } return',
      `ether type arp arp saddr ether != ${MAC} ${d}`,
      `ether type arp arp saddr ip != { 0.0.0.0, 10.77.0.2 } ${d}`,
      'ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return',
      `ether type ip ip saddr != { 10.77.0.2 } ${d}`,
      `ether type ip6 ip6 saddr != { ::, fe80::11:22ff:fe33:4455, fd00::2/128 } ${d}`,
      `ether type != { arp, ip, ip6 } ${d}`,
    ]);
  });

  it('IPv6-only pinning drops every IPv4 packet except the DHCP request', () => {
    const rules = portRules({ ifname: 'kvt-c-0', mac: MAC, ips: ['fd00::3'] });
    expect(rules).toContain('ether type ip counter name "drop-kvt-c-0" drop');
  });

  it.each([['10.0.0.300'], ['fd00::1/129'], ['lan'], ['10.0.0.1/x']])('rejects pinned address %s', (ip) => {
    expect(() => splitIps([ip])).toThrow(`"${ip}"`);
  });

  it('accepts prefixes and splits by family', () => {
    expect(splitIps(['10.0.0.0/24', '::1', '192.168.1.5'])).toEqual({
      v4: ['10.0.0.0/24', '192.168.1.5'],
      v6: ['::1'],
    });
  });
});

describe('whole ruleset', () => {
  const text = renderRuleset({
    ports: [
      { ifname: 'kvt-a-0', mac: MAC, ips: [] },
      { ifname: 'kvt-b-0', mac: '02:00:00:00:00:02', ips: ['10.0.0.2'] },
    ],
    silentPorts: ['kvt-a-0', 'kvt-b-0', 'eth9'],
    counters: new Map([['drop-kvt-a-0', { packets: 7, bytes: 420 }]]),
  });

  it('replaces the one kvmux table atomically (create, delete, define in one script)', () => {
    expect(text.split('\n').slice(0, 3)).toEqual([
      'table bridge kvmux {}',
      'delete table bridge kvmux',
      'table bridge kvmux {',
    ]);
    expect(text.match(/^table /gm)).toHaveLength(2);
  });

  it('carries counter values over and gives every port its own counter', () => {
    expect(text).toContain('counter drop-kvt-a-0 { packets 7 bytes 420 }');
    expect(text).toContain('counter drop-kvt-b-0 { packets 0 bytes 0 }');
  });

  it('dispatches ports through one verdict map in prerouting', () => {
    expect(text).toContain('iifname vmap { "kvt-a-0" : jump port-kvt-a-0, "kvt-b-0" : jump port-kvt-b-0 }');
  });

  it('keeps the host silent on every port, uplink included', () => {
    expect(text).toContain('iifname { "kvt-a-0", "kvt-b-0", "eth9" } counter name "host-drop" drop');
    expect(text).toContain('oifname { "kvt-a-0", "kvt-b-0", "eth9" } counter name "host-drop" drop');
  });

  it('with no ports the table is empty but valid (no empty vmap or sets)', () => {
    const empty = renderRuleset({ ports: [], silentPorts: [] });
    expect(empty).not.toContain('vmap');
    expect(empty).not.toContain('{  }');
    expect(empty).toContain('chain prerouting');
  });
});
