import { readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootSectorDisk } from '../fixtures/boot-sector.js';
import { createNetns, type TestNetns } from '../net/netns.js';
import { adoptOrphans, type Kvmux, reapOrphans, startKvmux } from './kvmux-harness.js';

/**
 * `kvmux run` with networks, the whole service inside a network namespace this test creates:
 * anonymous bridges, one tap per VM NIC, `net.list`, taps removed on stop, and a restart that
 * reconciles without duplicates. The machine's own interfaces are never touched.
 */
interface NetRow {
  name: string;
  bridge: string;
  addresses: string[];
  members: Array<{ vm: string | null; tap: string; mac: string }>;
}

describe('kvmux run with anonymous networks (inside a test netns)', () => {
  let ns: TestNetns;
  let k: Kvmux;
  const links = async () => (await ns.ipJson<Array<{ ifname: string }>>('link', 'show')).map((l) => l.ifname);

  beforeAll(async () => {
    adoptOrphans();
    ns = await createNetns('run');
    k = await startKvmux({
      netns: ns.name,
      vms: [
        { name: 'web', backend: 'command', command: ['xterm'], nics: [{ network: 'lan' }] },
        {
          name: 'db',
          backend: 'command',
          command: ['xterm'],
          nics: [{ network: 'lan', mac: '02:00:00:00:00:02' }],
        },
      ],
      extra: { networks: [{ name: 'lan' }] },
    });
  }, 90_000);

  afterAll(async () => {
    await k?.stop();
    reapOrphans();
    await ns?.remove();
  });

  it('runs kvmux inside the test namespace, not the host one', () => {
    expect(readlinkSync(`/proc/${k.pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
  });

  it('creates the bridge with no host address and one tap per VM NIC', async () => {
    const nets = await k.call<NetRow[]>('net.list');
    expect(nets).toHaveLength(1);
    const lan = nets[0]!;
    expect(lan.addresses).toEqual([]);
    expect(lan.members.map((m) => m.vm).sort()).toEqual(['db', 'web']);
    expect(lan.members.find((m) => m.vm === 'db')!.mac).toBe('02:00:00:00:00:02');
    const addrs = await ns.ipJson<Array<{ ifname: string; addr_info: unknown[] }>>(
      'addr',
      'show',
      'dev',
      lan.bridge,
    );
    expect(addrs[0]!.addr_info).toEqual([]);
    const names = await links();
    for (const m of lan.members) expect(names).toContain(m.tap);
  });

  it('removes a VM tap when the VM stops and recreates it when it starts', async () => {
    const tap = (await k.call<NetRow[]>('net.list'))[0]!.members.find((m) => m.vm === 'web')!.tap;
    await k.call('vm.stop', { name: 'web', force: true });
    for (let i = 0; i < 40 && (await links()).includes(tap); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await links()).not.toContain(tap);
    await k.call('vm.start', { name: 'web' });
    expect(await links()).toContain(tap);
  });

  it('reconciles after a crash and restart: same bridge and taps, no duplicates', async () => {
    const before = (await links()).filter((n) => n.startsWith('kv')).sort();
    await k.crash();
    k = await k.restart();
    const after = (await links()).filter((n) => n.startsWith('kv')).sort();
    expect(after).toEqual(before);
    const lan = (await k.call<NetRow[]>('net.list'))[0]!;
    expect(lan.members).toHaveLength(2);
    expect(lan.addresses).toEqual([]);
  });

  it('gives a VM created at run time its tap on the bridge and its anti-spoofing rule, like a configured one', async () => {
    const disk = bootSectorDisk({ text: 'late', colour: 3 });
    await k.call('vm.create', {
      name: 'late',
      disk,
      memoryMiB: 32,
      autostart: true,
      nics: [{ network: 'lan', mac: '02:00:00:00:00:33' }],
    });
    await k.call('vm.start', { name: 'late' }).catch(() => undefined); // autostart may have won
    let member: NetRow['members'][number] | undefined;
    for (let i = 0; i < 100 && !member; i++) {
      member = (await k.call<NetRow[]>('net.list'))[0]!.members.find((m) => m.vm === 'late');
      if (!member) await new Promise((r) => setTimeout(r, 100));
    }
    expect(member).toMatchObject({ mac: '02:00:00:00:00:33' });
    expect(await links()).toContain(member!.tap);
    // the tap is a port of the anonymous bridge, and frames from it must carry its MAC
    const master = await ns.ipJson<Array<{ master?: string }>>('link', 'show', 'dev', member!.tap);
    expect(master[0]!.master).toBe((await k.call<NetRow[]>('net.list'))[0]!.bridge);
    const rules = await ns.exec('nft', 'list', 'table', 'bridge', 'kvmux');
    const chain = new RegExp(`chain port-${member!.tap} \\{\\s*ether saddr != 02:00:00:00:00:33 [^\\n]*drop`);
    expect(rules).toMatch(chain);
    await k.call('vm.stop', { name: 'late', force: true });
    await k.call('vm.delete', { name: 'late' });
  });
});
