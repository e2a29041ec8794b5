import type { Config } from '../config/schema.js';
import { splitIps } from './firewall.js';
import { portOwner, vmMember } from './members.js';
import { ALIAS_MAX_BYTES, bridgeName, encodeAlias, guestMac, NETNS_NAME_MAX, tapName } from './names.js';

/** One problem: the config path it concerns and what is wrong (the shape of config/config.ts Problem). */
export interface NetworkProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Network problems zod cannot see, naming the key and quoting the value: unknown networks,
 * multicast or duplicate MACs, bad pinned addresses, clashing derived names. `kvmux check`,
 * `kvmux run` and every run-time change (vm.create/update, found images) go through it.
 */
export function networkProblems(config: Config): NetworkProblem[] {
  const problems: NetworkProblem[] = [];
  const networks = new Set(config.networks.map((n) => n.name));
  const macs = new Map<string, string>();
  const taps = new Map<string, string>();
  for (const [v, vm] of config.vms.entries()) {
    for (const [i, nic] of vm.nics.entries()) {
      const at = (...rest: (string | number)[]) => ['vms', v, 'nics', i, ...rest];
      const key = `vms[${v}].nics[${i}]`;
      if (!networks.has(nic.network))
        problems.push({ path: at('network'), message: `no network named "${nic.network}" in networks` });
      const mac = guestMac(vm.name, i, nic.mac);
      if (Number.parseInt(mac.slice(0, 2), 16) & 1)
        problems.push({ path: at('mac'), message: `"${mac}" is a multicast address` });
      const macOwner = macs.get(mac);
      if (macOwner) problems.push({ path: at('mac'), message: `"${mac}" is already used by ${macOwner}` });
      macs.set(mac, `${key} (VM "${vm.name}")`);
      const tap = tapName(vm.name, i);
      const tapOwner = taps.get(tap);
      if (tapOwner) problems.push({ path: at(), message: `tap name "${tap}" clashes with ${tapOwner}` });
      taps.set(tap, key);
      try {
        splitIps(nic.ips ?? []);
      } catch (err) {
        problems.push({ path: at('ips'), message: (err as Error).message });
      }
      const aliasBytes = Buffer.byteLength(encodeAlias(portOwner(portMember(vm, i))));
      if (aliasBytes > ALIAS_MAX_BYTES)
        problems.push({
          path: at('ips'),
          message:
            `${nic.ips?.length ?? 0} pinned addresses do not fit the port's interface alias, where kvmux ` +
            `keeps them across restarts (${aliasBytes} of ${ALIAS_MAX_BYTES} bytes): pin fewer, or shorter ones`,
        });
    }
  }
  const bridges = new Map<string, string>();
  for (const [n, net] of config.networks.entries()) {
    const br = net.bridge ?? bridgeName(net.name);
    const owner = bridges.get(br);
    if (owner) problems.push({ path: ['networks', n], message: `bridge "${br}" clashes with ${owner}` });
    bridges.set(br, `networks[${n}]`);
  }
  return problems;
}

/**
 * The member a NIC becomes on its bridge, for the length of its alias: a VM's tap, or for a
 * subhost a veth owned by its namespace (counted at the longest namespace name).
 */
function portMember(vm: Config['vms'][number], index: number) {
  const m = vmMember(vm, index);
  if (vm.backend !== 'subhost') return m;
  return { ...m, kind: 'namespace' as const, owner: 'x'.repeat(NETNS_NAME_MAX), slot: `eth${index}` };
}

/** The same problems as `key: message` lines (`vms[0].nics[1].mac: …`). */
export function networkIssues(config: Config): string[] {
  const key = (path: (string | number)[]) =>
    path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
  return networkProblems(config).map((p) => `${key(p.path)}: ${p.message}`);
}
