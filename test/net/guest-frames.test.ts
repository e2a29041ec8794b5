import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { eui64LinkLocal } from '../../src/net/firewall.js';
import { NetworkManager } from '../../src/net/manager.js';
import { deliver, routerAdvert, udp4, udp6 } from './raw-frames.js';

/**
 * Issue 11 finding 7 (network): a guest must not play router, DHCP server or VLAN trunk for its
 * neighbours, nor use a link-local address other than its MAC's once its IPs are pinned. Raw
 * frames from one bridge member (a namespace veth, guarded exactly like a VM tap) to another.
 */
const config = configSchema.parse({ networks: [{ name: 'lan' }] });
const ns = (tag: string) => `kg-${tag}-${randomBytes(3).toString('hex')}`;
const names = { host: ns('host'), evil: ns('evil'), peer: ns('peer'), router: ns('rtr') };
const inNs = (n: string, ...args: string[]) => execa('ip', ['netns', 'exec', n, ...args]);

describe('server roles from guest ports (raw frames across a kvmux bridge)', () => {
  let mgr: NetworkManager;
  const macs: Record<string, string> = {};

  beforeAll(async () => {
    for (const n of Object.values(names)) {
      await execa('ip', ['netns', 'add', n]);
      await inNs(n, 'ip', 'link', 'set', 'lo', 'up');
    }
    mgr = new NetworkManager({ netns: names.host });
    await mgr.ensureNetworks(config.networks);
    macs['evil'] = (await mgr.attachNamespace('lan', names.evil, 'eth0', { ips: ['10.77.3.1'] })).mac;
    macs['peer'] = (await mgr.attachNamespace('lan', names.peer, 'eth0', { ips: ['10.77.3.2'] })).mac;
    macs['router'] = (
      await mgr.attachNamespace('lan', names.router, 'eth0', {
        ips: ['10.77.3.254'],
        allow: ['router-advertisements', 'dhcp-server', 'vlan'],
      })
    ).mac;
    for (const n of [names.evil, names.peer, names.router]) await inNs(n, 'ip', 'link', 'set', 'eth0', 'up');
  });
  afterAll(async () => {
    for (const n of Object.values(names)) await execa('ip', ['netns', 'del', n], { reject: false });
  });

  const evil = () => ({ netns: names.evil, ifname: 'eth0' });
  const peer = () => ({ netns: names.peer, ifname: 'eth0' });

  it('drops RAs, DHCP/DHCPv6 server replies, VLAN tags and foreign link-local; lets the rest through', async () => {
    const src = macs['evil']!;
    const ll = eui64LinkLocal(src);
    const frames = {
      'ok-v4': udp4({ src }, '10.77.3.1', '255.255.255.255', 5000, 5001, 'KG-ok-v4'),
      'ok-ll': udp6({ src, dst: '33:33:00:00:00:01' }, ll, 'ff02::1', 5000, 5001, 'KG-ok-ll'),
      ra: routerAdvert({ src }, ll, 'KG-ra'),
      dhcp: udp4({ src }, '10.77.3.1', '255.255.255.255', 67, 68, 'KG-dhcp'),
      dhcp6: udp6({ src, dst: '33:33:00:01:00:02' }, ll, 'ff02::1:2', 547, 546, 'KG-dhcp6'),
      vlan: udp4({ src, vlan: 7 }, '10.77.3.1', '255.255.255.255', 5000, 5001, 'KG-vlan'),
      'foreign-ll': udp6(
        { src, dst: '33:33:00:00:00:01' },
        'fe80::1234',
        'ff02::1',
        5000,
        5001,
        'KG-foreign-ll',
      ),
    };
    const markers = Object.keys(frames).map((k) => `KG-${k}`);
    const end = udp4({ src }, '10.77.3.1', '255.255.255.255', 5000, 5001, 'KG-end');
    const got = await deliver(evil(), peer(), Object.values(frames), markers, end);
    expect(got).toEqual(['KG-ok-ll', 'KG-ok-v4']);
  });

  it('a NIC allowed those roles may send them', async () => {
    const src = macs['router']!;
    const ll = eui64LinkLocal(src);
    const frames = [
      routerAdvert({ src }, ll, 'KG-ra'),
      udp4({ src }, '10.77.3.254', '255.255.255.255', 67, 68, 'KG-dhcp'),
      udp4({ src, vlan: 7 }, '10.77.3.254', '255.255.255.255', 5000, 5001, 'KG-vlan'),
    ];
    const end = udp4({ src }, '10.77.3.254', '255.255.255.255', 5000, 5001, 'KG-end');
    const from = { netns: names.router, ifname: 'eth0' };
    const got = await deliver(from, peer(), frames, ['KG-ra', 'KG-dhcp', 'KG-vlan'], end);
    expect(got).toEqual(['KG-dhcp', 'KG-ra', 'KG-vlan']);
  });
});
