import type { Config, NetworkConfig, VmConfig } from '../config/schema.js';
import { BackendError, NetError } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/log.js';
import { anonymize, bridgeNetfilterOff, ensureBridge, ensureTap, ensureVeth, removeLink } from './bridge.js';
import {
  applyRuleset,
  dropCounterName,
  type GuardedPort,
  type PortRole,
  readCounters,
  splitIps,
} from './firewall.js';
import { type Link, NetHost } from './ip.js';
import {
  adoptableNamespace,
  type Member,
  type NetListEntry,
  portOwner,
  toListMember,
  vmMember,
  wantedTaps,
} from './members.js';
import { bridgeName, decodeAlias, macFromSeed, PREFIX, tapHostMac, tapName, vethName } from './names.js';

interface Network {
  readonly name: string;
  readonly bridge: string;
  readonly uplink?: string;
  readonly antiSpoof: boolean;
}

export interface TapInfo {
  readonly ifname: string;
  readonly mac: string;
}

export interface ReconcileReport {
  readonly removed: string[];
  readonly adopted: string[];
  readonly created: string[];
}

export interface NetworkManagerOptions {
  /** Run every ip/nft/sysctl inside this network namespace (tests); absent = current namespace. */
  readonly netns?: string;
  readonly log?: Logger;
  /** Create taps with IFF_MULTI_QUEUE (QEMU then needs `queues=N`). */
  readonly multiQueue?: boolean;
}

/**
 * Anonymous bridges, taps and the anti-spoofing table. Every change ends with one atomic nft
 * replace; operations run one at a time so two VM starts cannot interleave their rulesets.
 */
export class NetworkManager {
  readonly host: NetHost;
  private readonly log: Logger;
  private readonly networks = new Map<string, Network>();
  private readonly members = new Map<string, Member>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: NetworkManagerOptions = {}) {
    this.host = new NetHost(opts.netns);
    this.log = opts.log ?? silentLogger;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  ensureNetworks(networks: readonly NetworkConfig[]): Promise<void> {
    return this.serial(async () => {
      await this.createNetworks(networks);
      await this.applyFirewall();
    });
  }

  /** Create the taps of a VM's NICs (before the VM starts); returns them in `nics` order. */
  attachVm(vm: VmConfig): Promise<TapInfo[]> {
    return this.serial(async () => {
      const ports = new Set(vm.nics.map((_, i) => tapName(vm.name, i)));
      await this.removeMembers((m) => m.kind === 'vm' && m.owner === vm.name && !ports.has(m.port));
      const taps = await this.createTaps(vm);
      await this.applyFirewall();
      return taps;
    });
  }

  /** Remove a VM's taps (after it stopped). */
  detachVm(vm: string): Promise<void> {
    return this.serial(async () => {
      await this.removeMembers((m) => m.kind === 'vm' && m.owner === vm);
      await this.applyFirewall();
    });
  }

  /** Subhost-style member: a veth whose peer `ifname` lives in namespace `nsName`. */
  attachNamespace(
    network: string,
    nsName: string,
    ifname: string,
    opts: { mac?: string; ips?: string[]; allow?: PortRole[] } = {},
  ) {
    return this.serial(async (): Promise<TapInfo> => {
      const net = this.network(network, `namespace ${nsName}`);
      const port = vethName(nsName, ifname);
      const mac = opts.mac?.toLowerCase() ?? macFromSeed(`kvmux/ns/${nsName}/${ifname}`);
      const m: Member = {
        kind: 'namespace',
        owner: nsName,
        slot: ifname,
        network,
        port,
        mac,
        ips: opts.ips ?? [],
        allow: opts.allow ?? [],
      };
      splitIps(m.ips);
      await ensureVeth(this.host, this.portSpec(m, net), nsName, ifname, mac);
      this.members.set(port, m);
      await this.applyFirewall();
      return { ifname: port, mac };
    });
  }

  detachNamespace(nsName: string, ifname: string): Promise<void> {
    return this.serial(async () => {
      await this.removeMembers((m) => m.kind === 'namespace' && m.owner === nsName && m.slot === ifname);
      await this.applyFirewall();
    });
  }

  /**
   * On service start: bridges of `config` created or repaired, kvmux links not in it removed,
   * taps of configured VMs adopted. With `running`, taps of VMs not running are removed and the
   * missing taps of running VMs are created, so a restart leaves exactly one tap per running NIC.
   */
  reconcile(config: Config, running?: Iterable<string>): Promise<ReconcileReport> {
    return this.serial(async () => {
      const report: ReconcileReport = { removed: [], adopted: [], created: [] };
      const live = running ? new Set(running) : undefined;
      // The system is the truth now: forget what this manager believed and re-learn it from the links.
      this.networks.clear();
      this.members.clear();
      await this.createNetworks(config.networks);
      const wanted = wantedTaps(config, live);
      for (const link of await this.host.links()) {
        const verdict = await this.reconcileLink(link, wanted);
        if (verdict) report[verdict].push(link.ifname);
      }
      for (const vm of config.vms.filter((v) => live?.has(v.name))) {
        const before = new Set(this.members.keys());
        for (const t of await this.createTaps(vm)) if (!before.has(t.ifname)) report.created.push(t.ifname);
      }
      await this.applyFirewall();
      this.log.info({ ...report }, 'network reconcile');
      return report;
    });
  }

  /** `net.list`: networks with their members and drop counters; `addresses` must stay empty. */
  async list(): Promise<NetListEntry[]> {
    const counters = await readCounters(this.host);
    const out: NetListEntry[] = [];
    for (const net of this.networks.values()) {
      const addrs = await this.host.addrs(net.bridge).catch(() => []);
      const members = [...this.members.values()].filter((m) => m.network === net.name);
      out.push({
        name: net.name,
        bridge: net.bridge,
        uplink: net.uplink ?? null,
        antiSpoof: net.antiSpoof,
        addresses: addrs.map((a) => `${a.local}/${a.prefixlen}`),
        members: members.map((m) => toListMember(m, counters.get(dropCounterName(m.port)))),
      });
    }
    return out;
  }

  private network(name: string, who: string): Network {
    const net = this.networks.get(name);
    if (!net) throw new NetError(bridgeName(name), `${who}: network "${name}" is not configured`);
    return net;
  }

  private async createNetworks(networks: readonly NetworkConfig[]): Promise<void> {
    await bridgeNetfilterOff(this.host);
    for (const n of networks) {
      const net: Network = { name: n.name, bridge: n.bridge ?? bridgeName(n.name), antiSpoof: n.antiSpoof };
      const full = n.uplink ? { ...net, uplink: n.uplink } : net;
      await ensureBridge(this.host, {
        network: n.name,
        bridge: full.bridge,
        ...(n.uplink ? { uplink: n.uplink } : {}),
      });
      this.networks.set(n.name, full);
    }
  }

  private async createTaps(vm: VmConfig): Promise<TapInfo[]> {
    const taps: TapInfo[] = [];
    for (const [i, nic] of vm.nics.entries()) {
      const net = this.networks.get(nic.network);
      if (!net) throw new BackendError(vm.name, `nic ${i}: network "${nic.network}" is not configured`);
      const m = vmMember(vm, i);
      splitIps(m.ips);
      await ensureTap(this.host, this.portSpec(m, net), this.opts.multiQueue ?? false);
      this.members.set(m.port, m);
      taps.push({ ifname: m.port, mac: m.mac });
    }
    return taps;
  }

  private portSpec(m: Member, net: Network) {
    return { ifname: m.port, bridge: net.bridge, hostMac: tapHostMac(m.mac), owner: portOwner(m) };
  }

  /** Keep a kvmux link that config still wants, drop the rest; foreign links are never touched. */
  private async reconcileLink(
    link: Link,
    wanted: Map<string, Member>,
  ): Promise<keyof ReconcileReport | undefined> {
    const owner = decodeAlias(link.ifalias);
    const isPort =
      link.ifname.startsWith(PREFIX.tap) || link.ifname.startsWith(PREFIX.veth) || owner?.kind === 'tap';
    const isBridge = link.ifname.startsWith(PREFIX.bridge) || owner?.kind === 'bridge';
    if (isBridge && ![...this.networks.values()].some((n) => n.bridge === link.ifname)) {
      await removeLink(this.host, link.ifname);
      return 'removed';
    }
    if (!isPort) return undefined;
    const want = wanted.get(link.ifname) ?? adoptableNamespace(link, owner?.fields, this.networks);
    const net = want && this.networks.get(want.network);
    if (!want || !net || owner?.fields['mac'] !== want.mac) {
      await removeLink(this.host, link.ifname);
      return 'removed';
    }
    if (want.kind === 'vm')
      await ensureTap(this.host, this.portSpec(want, net), this.opts.multiQueue ?? false);
    else await anonymize(this.host, link.ifname);
    this.members.set(want.port, want);
    return 'adopted';
  }

  private async removeMembers(match: (m: Member) => boolean): Promise<void> {
    for (const m of [...this.members.values()].filter(match)) {
      await removeLink(this.host, m.port);
      this.members.delete(m.port);
    }
  }

  private async applyFirewall(): Promise<void> {
    const members = [...this.members.values()];
    const guarded = members.filter((m) => this.networks.get(m.network)?.antiSpoof !== false);
    const ports: GuardedPort[] = guarded.map((m) => ({
      ifname: m.port,
      mac: m.mac,
      ips: m.ips,
      allow: m.allow ?? [],
    }));
    const uplinks = [...this.networks.values()].flatMap((n) => (n.uplink ? [n.uplink] : []));
    await applyRuleset(this.host, { ports, silentPorts: [...members.map((m) => m.port), ...uplinks] });
  }
}
