import { describe, expect, it } from 'vitest';
import {
  bridgeMac,
  bridgeName,
  decodeAlias,
  encodeAlias,
  guestMac,
  IFNAME_MAX,
  isMac,
  tapHostMac,
  tapName,
  vethName,
} from '../../src/net/names.js';

const firstByte = (mac: string): number => Number.parseInt(mac.slice(0, 2), 16);

describe('interface names', () => {
  it.each([
    ['lan', 'kvbr-lan'],
    ['abcdefghij', 'kvbr-abcdefghij'],
  ])('a short network "%s" keeps its name as bridge %s', (net, want) => {
    expect(bridgeName(net)).toBe(want);
  });

  it('a long network name is cut and hashed to fit 15 chars, distinct from its siblings', () => {
    const a = bridgeName('very-long-network-a');
    const b = bridgeName('very-long-network-b');
    expect(a.length).toBeLessThanOrEqual(IFNAME_MAX);
    expect(a.startsWith('kvbr-very')).toBe(true);
    expect(a).not.toBe(b);
    expect(bridgeName('very-long-network-a')).toBe(a);
  });

  it.each([
    ['alpha', 0, 'kvt-alpha-0'],
    ['web', 12, 'kvt-web-12'],
  ])('tap of %s nic %i is %s', (vm, idx, want) => {
    expect(tapName(vm, idx)).toBe(want);
  });

  it('a long VM name still gives ≤15-char taps that keep the NIC index and differ per VM', () => {
    const names = [
      tapName('a-rather-long-vm-name', 0),
      tapName('a-rather-long-vm-name', 1),
      tapName('a-rather-long-vm-other', 0),
    ];
    for (const n of names) expect(n.length).toBeLessThanOrEqual(IFNAME_MAX);
    expect(names[0]?.endsWith('-0')).toBe(true);
    expect(names[1]?.endsWith('-1')).toBe(true);
    expect(new Set(names).size).toBe(3);
  });

  it('veth names are ≤15 chars and depend on namespace and interface', () => {
    const a = vethName('kvmux-t-some-long-namespace', 'eth0');
    expect(a.length).toBeLessThanOrEqual(IFNAME_MAX);
    expect(a).not.toBe(vethName('kvmux-t-some-long-namespace', 'eth1'));
  });
});

describe('MAC derivation', () => {
  it('is stable, unicast and locally administered, and differs per NIC and per VM', () => {
    const macs = [guestMac('alpha', 0), guestMac('alpha', 1), guestMac('beta', 0)];
    expect(guestMac('alpha', 0)).toBe(macs[0]);
    expect(new Set(macs).size).toBe(3);
    for (const m of macs) {
      expect(isMac(m)).toBe(true);
      expect(firstByte(m) & 0x01).toBe(0);
      expect(firstByte(m) & 0x02).toBe(2);
    }
  });

  it('a MAC given in the config wins (lower-cased)', () => {
    expect(guestMac('alpha', 0, '52:54:00:AB:CD:EF')).toBe('52:54:00:ab:cd:ef');
  });

  it('the tap host side never equals the guest MAC (0xfe first byte), for many seeds', () => {
    for (let i = 0; i < 200; i++) {
      const g = guestMac(`vm${i}`, i % 3);
      expect(firstByte(g)).toBeLessThan(0x80);
      expect(tapHostMac(g)).not.toBe(g);
      expect(tapHostMac(g).startsWith('fe:')).toBe(true);
    }
  });

  it('bridge MACs are stable per network', () => {
    expect(bridgeMac('lan')).toBe(bridgeMac('lan'));
    expect(bridgeMac('lan')).not.toBe(bridgeMac('dmz'));
  });
});

describe('ownership alias', () => {
  it('round-trips kind and fields', () => {
    const owner = {
      kind: 'tap' as const,
      fields: { kind: 'vm', owner: 'alpha', slot: '0', mac: '02:00:00:00:00:01' },
    };
    expect(decodeAlias(encodeAlias(owner))).toEqual(owner);
  });

  it.each([undefined, '', 'docker bridge', 'kvmux weird x=1'])('ignores foreign alias %j', (alias) => {
    expect(decodeAlias(alias)).toBeUndefined();
  });
});
