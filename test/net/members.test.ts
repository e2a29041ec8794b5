import { describe, expect, it } from 'vitest';
import type { Link } from '../../src/net/ip.js';
import { adoptableNamespace } from '../../src/net/members.js';

/** src/net/members.ts: what a namespace veth's alias gives back after a restart. */
describe('adoptableNamespace', () => {
  const link = { ifname: 'kvn-abc-0', kind: 'veth' } as Link;
  const nets = new Map([['lan', {}]]);
  const fields = (allow: string) => ({
    kind: 'namespace',
    owner: 'sub',
    slot: '0',
    net: 'lan',
    mac: '52:54:00:00:00:01',
    ips: '10.77.0.9',
    allow,
  });

  it('keeps the allow roles kvmux wrote, and grants nothing for a word it does not know', () => {
    expect(adoptableNamespace(link, fields('dhcp-server,vlan'), nets)?.allow).toEqual([
      'dhcp-server',
      'vlan',
    ]);
    expect(adoptableNamespace(link, fields('dhcp-server,all,*'), nets)?.allow).toEqual(['dhcp-server']);
    expect(adoptableNamespace(link, fields(''), nets)?.allow).toEqual([]);
    const { allow: _, ...older } = fields(''); // an alias from before allow was written
    expect(adoptableNamespace(link, older, nets)).toMatchObject({ allow: [], ips: ['10.77.0.9'] });
  });

  it('is no member when its network is gone or the link is no veth', () => {
    expect(adoptableNamespace(link, fields(''), new Map())).toBeUndefined();
    expect(adoptableNamespace({ ...link, kind: 'bridge' } as Link, fields(''), nets)).toBeUndefined();
  });
});
