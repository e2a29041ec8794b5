import { isIP } from 'node:net';
import { PORT_ROLES } from '../config/schema.js';
import { ConfigError } from '../util/errors.js';
import type { NetHost } from './ip.js';

/** The one nftables table kvmux owns (bridge family); replaced as a whole, never edited in place. */
export const TABLE = 'kvmux';

/** A bridge port whose ingress frames are checked: a VM tap or a namespace veth. */
export interface GuardedPort {
  readonly ifname: string;
  /** The only Ethernet source allowed from this port (the guest's MAC). */
  readonly mac: string;
  /** Pinned source addresses (IPv4/IPv6, optionally /prefix); empty = only the MAC is checked. */
  readonly ips: readonly string[];
  /** Server roles allowed from this port (config nics[].allow); everything else of the kind is dropped. */
  readonly allow?: readonly PortRole[];
}

export type PortRole = (typeof PORT_ROLES)[number];
export const isPortRole = (s: string): s is PortRole => (PORT_ROLES as readonly string[]).includes(s);

/** The MAC-derived (modified EUI-64, RFC 4291) link-local address: fe80::5054:ff:fe12:3456. */
export function eui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((h) => Number.parseInt(h, 16));
  const w = [((b[0]! ^ 0x02) << 8) | b[1]!, (b[2]! << 8) | 0xff, (0xfe << 8) | b[3]!, (b[4]! << 8) | b[5]!];
  return `fe80::${w.map((x) => x.toString(16)).join(':')}`;
}

export interface Counter {
  readonly packets: number;
  readonly bytes: number;
}

export interface RulesetSpec {
  /**
   * Every port of kvmux bridges (taps, veths, uplinks): the host takes nothing in from them and
   * sends nothing out. Ports, not bridges, because `meta ibrname` is not in every kernel's bridge family.
   */
  readonly silentPorts: readonly string[];
  readonly ports: readonly GuardedPort[];
  /** Counter values carried over the atomic replace, keyed by counter name. */
  readonly counters?: ReadonlyMap<string, Counter>;
}

export const HOST_COUNTER = 'host-drop';

export function dropCounterName(ifname: string): string {
  return `drop-${ifname}`;
}

/** Split pinned addresses by family; throws on anything that is not an address or prefix. */
export function splitIps(ips: readonly string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const ip of ips) {
    const [addr = '', prefix] = ip.split('/');
    const family = isIP(addr);
    const max = family === 4 ? 32 : 128;
    if (family === 0 || (prefix !== undefined && !/^\d+$/.test(prefix)) || Number(prefix ?? 0) > max) {
      throw new ConfigError(`pinned address "${ip}" is not an IPv4/IPv6 address or prefix`);
    }
    (family === 4 ? v4 : v6).push(ip);
  }
  return { v4, v6 };
}

const set = (items: readonly string[]): string => `{ ${items.join(', ')} }`;

/**
 * Rules for one port. The MAC check comes first; pinned IPs then constrain ARP, IPv4 and IPv6.
 * Allowed without pinning: DHCP from 0.0.0.0 (clients ask before they have an address), ARP probes
 * from 0.0.0.0 (RFC 5227), IPv6 from :: (DAD) and fe80::/10 (ND needs link-local). Everything that
 * is not ARP/IPv4/IPv6 (VLAN tags included) is dropped from a pinned port so it cannot bypass checks.
 */
export function portRules(port: GuardedPort): string[] {
  const drop = `counter name "${dropCounterName(port.ifname)}" drop`;
  const rules = [`ether saddr != ${port.mac} ${drop}`, ...roleRules(port, drop)];
  if (port.ips.length === 0) return rules;
  const { v4, v6 } = splitIps(port.ips);
  // fast path first: ordinary traffic from a pinned address leaves after two rules
  if (v4.length > 0) rules.push(`ether type ip ip saddr ${set(v4)} return`);
  if (v6.length > 0) rules.push(`ether type ip6 ip6 saddr ${set(v6)} return`);
  rules.push(`ether type arp arp saddr ether != ${port.mac} ${drop}`);
  rules.push(`ether type arp arp saddr ip != ${set(['0.0.0.0', ...v4])} ${drop}`);
  rules.push('ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return');
  rules.push(v4.length > 0 ? `ether type ip ip saddr != ${set(v4)} ${drop}` : `ether type ip ${drop}`);
  // link-local pinned too: only the MAC-derived address (plus :: for DAD)
  rules.push(`ether type ip6 ip6 saddr != ${set(['::', eui64LinkLocal(port.mac), ...v6])} ${drop}`);
  rules.push(`ether type != { arp, ip, ip6 } ${drop}`);
  return rules;
}

/**
 * Server roles a guest must not take over from its neighbours unless its NIC allows them: router
 * advertisements (ICMPv6 134), DHCP and DHCPv6 server replies (UDP sport 67 / 547), and VLAN tags
 * (802.1Q and 802.1ad), which would carry frames past every other check. Before the pinned fast path.
 */
function roleRules(port: GuardedPort, drop: string): string[] {
  const allow = new Set(port.allow ?? []);
  const rules: string[] = [];
  // a trunk's tagged frames: MAC-checked only, the pinned-IP rules cannot see inside the tag
  if (!allow.has('vlan')) rules.push(`ether type { 8021q, 8021ad } ${drop}`);
  else if (port.ips.length > 0) rules.push('ether type { 8021q, 8021ad } return');
  if (!allow.has('router-advertisements')) rules.push(`ether type ip6 icmpv6 type nd-router-advert ${drop}`);
  if (!allow.has('dhcp-server')) {
    rules.push(`ether type ip udp sport 67 ${drop}`);
    rules.push(`ether type ip6 udp sport 547 ${drop}`);
  }
  return rules;
}

function counterDecl(name: string, counters: ReadonlyMap<string, Counter> | undefined): string {
  const c = counters?.get(name);
  return `  counter ${name} { packets ${c?.packets ?? 0} bytes ${c?.bytes ?? 0} }`;
}

const chainOf = (ifname: string): string => `port-${ifname}`;
const quoted = (names: readonly string[]): string => set(names.map((n) => `"${n}"`));

/**
 * The whole table as one `nft -f` script: create-then-delete makes the replace atomic and
 * idempotent on nft 1.0.6 (no `destroy`). Prerouting dispatches by ingress port through a verdict
 * map, so the per-frame cost is one hash lookup however many guests there are.
 */
export function renderRuleset(spec: RulesetSpec): string {
  const lines = [`table bridge ${TABLE} {}`, `delete table bridge ${TABLE}`, `table bridge ${TABLE} {`];
  lines.push(counterDecl(HOST_COUNTER, spec.counters));
  for (const p of spec.ports) lines.push(counterDecl(dropCounterName(p.ifname), spec.counters));
  for (const p of spec.ports) {
    lines.push(`  chain ${chainOf(p.ifname)} {`, ...portRules(p).map((r) => `    ${r}`), '  }');
  }
  lines.push('  chain prerouting {', '    type filter hook prerouting priority -200; policy accept;');
  if (spec.ports.length > 0) {
    const map = spec.ports.map((p) => `"${p.ifname}" : jump ${chainOf(p.ifname)}`);
    lines.push(`    iifname vmap { ${map.join(', ')} }`);
  }
  lines.push('  }');
  if (spec.silentPorts.length > 0) {
    // The host has no addresses here; dropping local delivery keeps it silent even if one is added.
    const drop = `counter name "${HOST_COUNTER}" drop`;
    lines.push('  chain input {', '    type filter hook input priority 0; policy accept;');
    lines.push(`    iifname ${quoted(spec.silentPorts)} ${drop}`, '  }');
    lines.push('  chain output {', '    type filter hook output priority 0; policy accept;');
    lines.push(`    oifname ${quoted(spec.silentPorts)} ${drop}`, '  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

interface NftCounterRow {
  counter?: { family: string; table: string; name: string; packets: number; bytes: number };
}

/** Current counters of the kvmux table (empty when the table does not exist yet). */
export async function readCounters(host: NetHost): Promise<Map<string, Counter>> {
  const out = new Map<string, Counter>();
  let json: { nftables?: NftCounterRow[] };
  try {
    json = (await host.nftJson(TABLE, 'list', 'counters', 'table', 'bridge', TABLE)) as typeof json;
  } catch {
    return out;
  }
  for (const row of json.nftables ?? []) {
    const c = row.counter;
    if (c && c.table === TABLE && c.family === 'bridge')
      out.set(c.name, { packets: c.packets, bytes: c.bytes });
  }
  return out;
}

/** Replace the table atomically, carrying counters over so drop counts survive membership changes. */
export async function applyRuleset(host: NetHost, spec: Omit<RulesetSpec, 'counters'>): Promise<void> {
  const counters = await readCounters(host);
  await host.nft(TABLE, renderRuleset({ ...spec, counters }));
}
