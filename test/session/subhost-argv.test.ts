import { describe, expect, it } from 'vitest';
import { vmSchema } from '../../src/config/schema.js';
import { type NspawnInput, nspawnArgv } from '../../src/session/backends/subhost-argv.js';

function input(over: Partial<NspawnInput> = {}, subhost: Record<string, unknown> = {}): NspawnInput {
  const vm = vmSchema.parse({
    name: 'sub',
    backend: 'subhost',
    subhost: { root: '/srv/sub/root', ...subhost },
  });
  return {
    vm,
    sh: vm.subhost!,
    root: '/srv/sub/root',
    upper: '/var/lib/kvmux/subhost/sub/upper',
    netns: null,
    binds: [],
    ...over,
  };
}

describe('nspawn argv', () => {
  it('without a netns the subhost gets a private network, never the host namespace', () => {
    const argv = nspawnArgv(input());
    expect(argv).toContain('--private-network');
    expect(argv.some((a) => a.startsWith('--network-namespace-path'))).toBe(false);
    expect(argv).not.toContain('--capability=CAP_NET_ADMIN');
  });

  it('with a netns it joins that namespace (and may configure its links), not a private one', () => {
    const argv = nspawnArgv(input({ netns: 'kvmux-sub' }));
    expect(argv).toContain('--network-namespace-path=/run/netns/kvmux-sub');
    expect(argv).toContain('--capability=CAP_NET_ADMIN');
    expect(argv).not.toContain('--private-network');
  });

  it('no machined: keeps kvmux cgroup as the unit and does not register', () => {
    const argv = nspawnArgv(input());
    expect(argv[0]).toBe('systemd-nspawn');
    expect(argv).toEqual(
      expect.arrayContaining([
        '--keep-unit',
        '--register=no',
        '--machine=sub',
        '--directory=/srv/sub/root',
        '--kill-signal=SIGRTMIN+3',
        '--boot',
      ]),
    );
  });

  it('overlay (default): the base stays read-only below the upper layer; off: no overlay', () => {
    expect(nspawnArgv(input())).toContain('--overlay=/srv/sub/root:/var/lib/kvmux/subhost/sub/upper:/');
    expect(nspawnArgv(input({}, { overlay: false })).some((a) => a.startsWith('--overlay'))).toBe(false);
  });

  it('binds exactly the given DISKS mounts, and nothing else of the host', () => {
    const argv = nspawnArgv(
      input({ binds: [{ host: '/run/kvmux/vm/sub/disks/vdb1', inside: '/mnt/vdb1' }] }),
    );
    expect(argv.filter((a) => a.startsWith('--bind'))).toEqual([
      '--bind=/run/kvmux/vm/sub/disks/vdb1:/mnt/vdb1',
    ]);
    expect(nspawnArgv(input()).some((a) => a.startsWith('--bind'))).toBe(false);
  });
});
