import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { networkIssues } from '../../src/net/config-check.js';
import { longIpv6s, mostThatFit } from './pinned-ips.js';

const vm = (name: string, nics: unknown[]) => ({ name, backend: 'qemu', qemu: {}, nics });
const issues = (vms: unknown[], networks: unknown[] = [{ name: 'lan' }]) =>
  networkIssues(configSchema.parse({ vms, networks }));

describe('network config checks', () => {
  it('a sound config has no issues', () => {
    expect(issues([vm('a', [{ network: 'lan', ips: ['10.0.0.1'] }]), vm('b', [{ network: 'lan' }])])).toEqual(
      [],
    );
  });

  it.each([
    [[vm('a', [{ network: 'wan' }])], 'vms[0].nics[0].network: no network named "wan" in networks'],
    [
      [vm('a', [{ network: 'lan', mac: '01:00:5e:00:00:01' }])],
      'vms[0].nics[0].mac: "01:00:5e:00:00:01" is a multicast address',
    ],
    [
      [
        vm('a', [{ network: 'lan', mac: '52:54:00:00:00:01' }]),
        vm('b', [{ network: 'lan', mac: '52:54:00:00:00:01' }]),
      ],
      'vms[1].nics[0].mac: "52:54:00:00:00:01" is already used by vms[0].nics[0] (VM "a")',
    ],
    [[vm('a', [{ network: 'lan', ips: ['10.0.0.256'] }])], 'vms[0].nics[0].ips: pinned address "10.0.0.256"'],
  ])('reports %#: %s', (vms, want) => {
    expect(issues(vms as unknown[]).join('\n')).toContain(want);
  });

  it('reports two VMs whose derived tap names clash (a long name is cut and hashed)', () => {
    // "alphabetica" does not fit: cut to "alpha" plus the hash "3458", the tap of VM "alpha3458"
    const got = issues([vm('alphabetica', [{ network: 'lan' }]), vm('alpha3458', [{ network: 'lan' }])]);
    expect(got).toEqual(['vms[1].nics[0]: tap name "kvt-alpha3458-0" clashes with vms[0].nics[0]']);
  });

  it("counts a subhost's port at its namespace alias, longer than a VM tap's", () => {
    const nic = (n: number) => [{ network: 'lan', ips: longIpv6s(n) }];
    const tooMany = (v: unknown) => issues([v]).some((m) => m.includes('do not fit the port'));
    const most = mostThatFit((n) => !tooMany(vm('a', nic(n))));
    // the most addresses a VM's tap alias holds: too many for a subhost's namespace veth
    const sub = { name: 'a', backend: 'subhost', subhost: { root: '/srv/a' }, nics: nic(most) };
    expect(tooMany(vm('a', nic(most)))).toBe(false);
    expect(tooMany(sub)).toBe(true);
  });

  it('reports two networks whose explicit bridge names clash', () => {
    const got = issues([], [{ name: 'lan' }, { name: 'dmz', bridge: 'kvbr-lan' }]);
    expect(got).toEqual(['networks[1]: bridge "kvbr-lan" clashes with networks[0]']);
  });
});
