import type { Config, VmConfig } from '../config/schema.js';
import { isPortRole, type PortRole } from './firewall.js';
import type { Link } from './ip.js';
import { guestMac, type Ownership, tapName } from './names.js';

/** A bridge port kvmux made: a VM NIC's tap or a namespace's veth. */
export interface Member {
  readonly kind: 'vm' | 'namespace';
  /** VM name, or the namespace name for `kind: namespace`. */
  readonly owner: string;
  /** NIC index for VMs; the interface name inside the namespace otherwise. */
  readonly slot: string;
  readonly network: string;
  /** Host-side port: the tap or the veth end on the bridge. */
  readonly port: string;
  /** The guest's (or namespace interface's) MAC: the only source allowed from `port`. */
  readonly mac: string;
  readonly ips: readonly string[];
  /** Server roles allowed from this port (nics[].allow). */
  readonly allow?: readonly PortRole[];
}

export interface NetListMember {
  readonly kind: 'vm' | 'namespace';
  /** VM name (null for a namespace member). */
  readonly vm: string | null;
  readonly namespace: string | null;
  readonly nic: number | null;
  readonly tap: string;
  readonly mac: string;
  readonly ips: readonly string[];
  readonly drops: { packets: number; bytes: number };
}

export interface NetListEntry {
  readonly name: string;
  readonly bridge: string;
  readonly uplink: string | null;
  readonly antiSpoof: boolean;
  readonly addresses: string[];
  readonly members: NetListMember[];
}

export function toListMember(
  m: Member,
  drops: { packets: number; bytes: number } | undefined,
): NetListMember {
  const vm = m.kind === 'vm';
  return {
    kind: m.kind,
    vm: vm ? m.owner : null,
    namespace: vm ? null : m.owner,
    nic: vm ? Number(m.slot) : null,
    tap: m.port,
    mac: m.mac,
    ips: m.ips,
    drops: { packets: drops?.packets ?? 0, bytes: drops?.bytes ?? 0 },
  };
}

export function vmMember(vm: VmConfig, index: number): Member {
  const nic = vm.nics[index];
  return {
    kind: 'vm',
    owner: vm.name,
    slot: String(index),
    network: nic?.network ?? '',
    port: tapName(vm.name, index),
    mac: guestMac(vm.name, index, nic?.mac),
    ips: nic?.ips ?? [],
    allow: nic?.allow ?? [],
  };
}

/**
 * What a port's interface alias records of its member (names.ts encodeAlias): a namespace member
 * is re-learnt from it after a restart (adoptableNamespace).
 */
export function portOwner(m: Member): Ownership {
  return {
    kind: 'tap',
    fields: {
      kind: m.kind,
      owner: m.owner,
      slot: m.slot,
      net: m.network,
      mac: m.mac,
      ips: m.ips.join(','),
      allow: (m.allow ?? []).join(','),
    },
  };
}

/** Taps that may stay: every NIC of configured VMs (only running ones when that is known). */
export function wantedTaps(config: Config, running: Set<string> | undefined): Map<string, Member> {
  const out = new Map<string, Member>();
  for (const vm of config.vms) {
    if (running && !running.has(vm.name)) continue;
    for (const i of vm.nics.keys()) {
      const m = vmMember(vm, i);
      out.set(m.port, m);
    }
  }
  return out;
}

/** A namespace veth survives a restart while its network exists (it dies with its namespace anyway). */
export function adoptableNamespace(
  link: Link,
  fields: Readonly<Record<string, string>> | undefined,
  networks: ReadonlyMap<string, unknown>,
): Member | undefined {
  if (fields?.['kind'] !== 'namespace') return undefined;
  const { owner = '', slot = '', net = '', mac = '', ips = '', allow = '' } = fields;
  if (!networks.has(net) || link.kind !== 'veth') return undefined;
  return {
    kind: 'namespace',
    owner,
    slot,
    network: net,
    port: link.ifname,
    mac,
    ips: ips ? ips.split(',') : [],
    // what kvmux wrote; anything else in the alias grants nothing
    allow: allow.split(',').filter(isPortRole),
  };
}
