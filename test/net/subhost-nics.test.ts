import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import type { PortRole } from '../../src/net/firewall.js';
import { NetworkManager, type TapInfo } from '../../src/net/manager.js';
import { createSubhostBackend } from '../../src/session/backends/subhost.js';
import { tempDir } from '../helpers/temp.js';
import { createNetns, listTestNetns, type TestNetns } from './netns.js';

type AttachOpts = { mac?: string; ips?: string[]; allow?: PortRole[] };

/** A real manager (in a test netns) that records each attach and its port chain, then stops the start. */
class Recording extends NetworkManager {
  readonly attaches: Array<{ network: string; ifname: string; opts: AttachOpts; chain: string }> = [];

  override async attachNamespace(
    network: string,
    nsName: string,
    ifname: string,
    opts: AttachOpts = {},
  ): Promise<TapInfo> {
    const tap = await super.attachNamespace(network, nsName, ifname, opts);
    const chain = await this.host.run('chain', 'nft', [
      'list',
      'chain',
      'bridge',
      'kvmux',
      `port-${tap.ifname}`,
    ]);
    this.attaches.push({ network, ifname, opts, chain });
    // nothing past the network step is wanted here: no nspawn, no tmux
    throw new Error('stop after the first NIC');
  }
}

describe('subhost NICs are cabled with their allow roles', () => {
  let host: TestNetns;
  let mgr: Recording;
  const dir = tempDir('kvmux-shnic-');
  const prefix = `kvmux-t-sh${randomBytes(2).toString('hex')}-`;

  beforeAll(async () => {
    host = await createNetns('shnic-');
    mgr = new Recording({ netns: host.name });
    await mgr.ensureNetworks(configSchema.parse({ networks: [{ name: 'lan' }] }).networks);
  });
  afterAll(async () => {
    await host?.remove();
  });

  it('start() passes nics[].allow to attachNamespace; the port keeps only the other role drops', async () => {
    const vm = configSchema.parse({
      networks: [{ name: 'lan' }],
      vms: [
        {
          name: 'router',
          backend: 'subhost',
          nics: [{ network: 'lan', ips: ['10.77.5.1'], allow: ['dhcp-server', 'router-advertisements'] }],
          subhost: { root: join(dir, 'root') },
        },
      ],
    }).vms[0]!;
    const backend = createSubhostBackend({
      stateDir: join(dir, 'state'),
      net: () => mgr,
      netnsPrefix: prefix,
      tmux: '/bin/false',
    });
    const ctx = { display: ':0', vmDir: join(dir, 'vm'), width: 640, height: 480, taps: [] };
    await expect(backend.start(vm, ctx)).rejects.toThrow(/stop after the first NIC/);
    expect(mgr.attaches).toHaveLength(1);
    const [attach] = mgr.attaches;
    expect(attach?.opts.allow).toEqual(['dhcp-server', 'router-advertisements']);
    expect(attach?.chain).not.toContain('udp sport 67');
    expect(attach?.chain).not.toContain('nd-router-advert');
    expect(attach?.chain).toMatch(/8021q.*drop/);
    // the failed start took its namespace down again
    expect((await listTestNetns()).filter((n) => n.startsWith(prefix))).toEqual([]);
  });
});
