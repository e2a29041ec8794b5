import type { Config } from '../config/schema.js';
import { splitIps } from './firewall.js';
import { bridgeName, guestMac, tapName } from './names.js';

/**
 * Network problems zod cannot see, one message per problem naming the key and quoting the value:
 * unknown networks, multicast or duplicate MACs, bad pinned addresses, clashing derived names.
 */
export function networkIssues(config: Config): string[] {
  const issues: string[] = [];
  const networks = new Set(config.networks.map((n) => n.name));
  const macs = new Map<string, string>();
  const taps = new Map<string, string>();
  for (const [v, vm] of config.vms.entries()) {
    for (const [i, nic] of vm.nics.entries()) {
      const key = `vms[${v}].nics[${i}]`;
      if (!networks.has(nic.network)) issues.push(`${key}.network: "${nic.network}" is not in networks`);
      const mac = guestMac(vm.name, i, nic.mac);
      if (Number.parseInt(mac.slice(0, 2), 16) & 1)
        issues.push(`${key}.mac: "${mac}" is a multicast address`);
      const macOwner = macs.get(mac);
      if (macOwner) issues.push(`${key}.mac: "${mac}" is already used by ${macOwner}`);
      macs.set(mac, key);
      const tap = tapName(vm.name, i);
      const tapOwner = taps.get(tap);
      if (tapOwner) issues.push(`${key}: tap name "${tap}" clashes with ${tapOwner}`);
      taps.set(tap, key);
      try {
        splitIps(nic.ips ?? []);
      } catch (err) {
        issues.push(`${key}.ips: ${(err as Error).message}`);
      }
    }
  }
  const bridges = new Map<string, string>();
  for (const [n, net] of config.networks.entries()) {
    const br = net.bridge ?? bridgeName(net.name);
    const owner = bridges.get(br);
    if (owner) issues.push(`networks[${n}]: bridge "${br}" clashes with ${owner}`);
    bridges.set(br, `networks[${n}]`);
  }
  return issues;
}
