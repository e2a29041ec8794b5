import { NetError } from '../util/errors.js';
import type { NetHost } from './ip.js';
import { bridgeMac, encodeAlias, type Ownership } from './names.js';

/** Bridged IPv4/IPv6/ARP would otherwise traverse the host's iptables (br_netfilter). */
const BRIDGE_NF_KEYS = ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables', 'bridge-nf-call-arptables'];

/**
 * No IPv6 (so no link-local), no address generation, no ARP, no IPv4 address: the host stays
 * anonymous on this interface. disable_ipv6 goes first so the link never gets fe80:: when it comes up.
 */
export async function anonymize(host: NetHost, ifname: string): Promise<void> {
  const key = `net/ipv6/conf/${ifname}/disable_ipv6`;
  // Absent when the kernel runs without IPv6 (ipv6.disable=1): then there is nothing to turn off.
  if ((await host.sysctlGet(ifname, key)) !== undefined) {
    await host.sysctlSet(ifname, key, '1');
    await host.ip(ifname, 'link', 'set', 'dev', ifname, 'addrgenmode', 'none');
  }
  await host.ip(ifname, 'link', 'set', 'dev', ifname, 'arp', 'off');
  await host.ip(ifname, 'addr', 'flush', 'dev', ifname);
}

/**
 * Bridged frames must not traverse the host's iptables/ip6tables/arptables: a host FORWARD policy
 * would silently drop guest traffic and host rules would see (and could log) guest packets. Only
 * `net.bridge.bridge-nf-call-*` turns br_netfilter off (the per-bridge nf_call_* options only add
 * calls), and these sysctls are per network namespace: we set them in `host`'s namespace only,
 * and only when br_netfilter is loaded. kvmux's own filtering is nftables bridge family, unaffected.
 */
export async function bridgeNetfilterOff(host: NetHost): Promise<void> {
  for (const key of BRIDGE_NF_KEYS) {
    const now = await host.sysctlGet('br_netfilter', `net/bridge/${key}`);
    if (now !== undefined && now !== '0') await host.sysctlSet('br_netfilter', `net/bridge/${key}`, '0');
  }
}

export interface BridgeSpec {
  readonly network: string;
  readonly bridge: string;
  readonly uplink?: string;
}

/** Create (or repair) the anonymous bridge of a network; idempotent. */
export async function ensureBridge(host: NetHost, spec: BridgeSpec): Promise<void> {
  const { bridge } = spec;
  const existing = await host.link(bridge);
  if (existing && existing.kind !== 'bridge') {
    throw new NetError(bridge, `exists but is a "${existing.kind ?? 'unknown'}" link, not a bridge`);
  }
  if (!existing) await host.ip(bridge, 'link', 'add', 'name', bridge, 'type', 'bridge', 'stp_state', '0');
  const alias = encodeAlias({ kind: 'bridge', fields: { net: spec.network } });
  await host.ip(bridge, 'link', 'set', 'dev', bridge, 'address', bridgeMac(spec.network), 'alias', alias);
  await anonymize(host, bridge);
  await host.ip(bridge, 'link', 'set', 'dev', bridge, 'up');
  if (spec.uplink) await enslaveUplink(host, spec.uplink, bridge);
}

/** The uplink carries guest traffic only: it loses its addresses, as the seed's host has none. */
async function enslaveUplink(host: NetHost, uplink: string, bridge: string): Promise<void> {
  const link = await host.link(uplink);
  if (!link) throw new NetError(uplink, `uplink of bridge ${bridge} does not exist`);
  await anonymize(host, uplink);
  await host.ip(uplink, 'link', 'set', 'dev', uplink, 'master', bridge, 'up');
}

export interface PortSpec {
  readonly ifname: string;
  readonly bridge: string;
  /** Host-side MAC of the port; never the guest's. */
  readonly hostMac: string;
  readonly owner: Ownership;
}

/** A persistent tap owned by root, enslaved and up; QEMU opens it with `ifname=..., script=no`. */
export async function ensureTap(host: NetHost, port: PortSpec, multiQueue = false): Promise<void> {
  const { ifname } = port;
  const existing = await host.link(ifname);
  if (existing && existing.tapType !== 'tap') throw new NetError(ifname, 'exists but is not a tap');
  if (!existing) {
    await host.ip(
      ifname,
      'tuntap',
      'add',
      'dev',
      ifname,
      'mode',
      'tap',
      ...(multiQueue ? ['multi_queue'] : []),
    );
  }
  await finishPort(host, port);
}

/** A veth pair: `port.ifname` on the bridge, `peer` moved into namespace `nsName`. */
export async function ensureVeth(
  host: NetHost,
  port: PortSpec,
  nsName: string,
  peer: string,
  peerMac: string,
): Promise<void> {
  const { ifname } = port;
  if (!(await host.link(ifname))) {
    const peerArgs = ['peer', 'name', peer, 'address', peerMac, 'netns', nsName];
    await host.ip(ifname, 'link', 'add', 'name', ifname, 'type', 'veth', ...peerArgs);
    await host.ip(`${nsName}/${peer}`, '-n', nsName, 'link', 'set', 'dev', peer, 'up');
  }
  await finishPort(host, port);
}

async function finishPort(host: NetHost, port: PortSpec): Promise<void> {
  const { ifname, bridge } = port;
  await anonymize(host, ifname);
  const alias = encodeAlias(port.owner);
  await host.ip(ifname, 'link', 'set', 'dev', ifname, 'address', port.hostMac, 'alias', alias);
  await host.ip(ifname, 'link', 'set', 'dev', ifname, 'master', bridge, 'up');
}

/** Delete a link if it exists (taps, veths, bridges); a missing one is already gone. */
export async function removeLink(host: NetHost, ifname: string): Promise<boolean> {
  if (!(await host.link(ifname))) return false;
  await host.ip(ifname, 'link', 'del', 'dev', ifname);
  return true;
}
