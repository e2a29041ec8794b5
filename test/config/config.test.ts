import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/config.js';
import { ConfigError } from '../../src/util/errors.js';

function errorOf(text: string): ConfigError {
  try {
    parseConfigText(text, 'k.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('fills defaults so a one-VM config is a few lines', () => {
    const cfg = parseConfigText('vms:\n  - { name: notes, backend: command, command: [xterm] }\n');
    expect(cfg.runDir).toBe('/run/kvmux');
    expect(cfg.console).toBe('vt');
    expect(cfg.input.devices).toBe('auto');
    expect(cfg.input.hotkey.windowMs).toBe(500);
    expect(cfg.vms[0]?.guestChannel).toBe(false);
  });

  it('parses the contract example', () => {
    const cfg = parseConfigText(`
runDir: /run/kvmux
stateDir: /var/lib/kvmux
console: vt
imageDirs: []
input:
  devices: auto
  hotkey: { windowMs: 500 }
vms:
  - name: alpha
    backend: qemu
    qemu: { disk: /srv/alpha.img, memoryMiB: 512 }
    nics: [{ network: lan }]
    guestChannel: true
  - name: notes
    backend: command
    command: [xterm]
networks:
  - name: lan
    uplink: eth0
policy:
  - { from: alpha, method: "*", action: allow }
  - { from: "*", method: "vm.list", action: allow }
`);
    expect(cfg.vms.map((v) => v.name)).toEqual(['alpha', 'notes']);
    expect(cfg.vms[0]?.qemu?.accel).toBe('auto');
    expect(cfg.policy).toHaveLength(2);
  });

  it.each([
    ['an unknown top-level key', 'bogus: 1\n', 'k.yaml:1: bogus: unknown key "bogus"'],
    [
      'an unknown nested key',
      'input:\n  devices: auto\n  hotky: {}\n',
      'k.yaml:3: input.hotky: unknown key "hotky"',
    ],
    [
      'a bad VM name',
      'vms:\n  - name: Alpha\n    backend: command\n    command: [x]\n',
      'k.yaml:2: vms.0.name: must match',
    ],
    ['a bad backend', 'vms:\n  - name: a\n    backend: vmware\n', 'k.yaml:3: vms.0.backend:'],
    [
      'a duplicate VM',
      'vms:\n  - {name: a, backend: command, command: [x]}\n  - {name: a, backend: command, command: [y]}\n',
      'k.yaml:3: vms.1.name: duplicate VM name "a"',
    ],
    [
      'a command VM without command',
      'vms:\n  - name: a\n    backend: command\n',
      'vms.0.command: required for backend "command"',
    ],
    [
      'a NIC on an unknown network',
      'vms:\n  - name: a\n    backend: command\n    command: [x]\n    nics: [{network: wan}]\n',
      'vms.0.nics.0.network: no network named "wan"',
    ],
    [
      'the reserved name admin',
      'vms:\n  - {name: admin, backend: command, command: [x]}\n',
      '"admin" is reserved',
    ],
    ['broken YAML', 'vms: [\n', 'k.yaml:'],
  ])('rejects %s with an error naming the key', (_what, text, expected) => {
    expect(errorOf(text).message).toContain(expected);
  });

  // VM names become runDir/stateDir/cgroup path components: the whole name must match, not a prefix
  it.each([['a/b'], ['a/../../etc'], ['a..'], ['a b'], ['a.b'], ['a'.repeat(32)], ['a'.repeat(200)]])(
    'rejects the VM name %j with an error naming the key and line',
    (name) => {
      expect(
        errorOf(`vms:\n  - name: "${name}"\n    backend: command\n    command: [x]\n`).message,
      ).toContain('k.yaml:2: vms.0.name: must match');
    },
  );

  it('accepts a 31-character VM name, the longest allowed', () => {
    const name = `a${'-0'.repeat(15)}`;
    expect(name).toHaveLength(31);
    const cfg = parseConfigText(`vms:\n  - { name: ${name}, backend: command, command: [x] }\n`);
    expect(cfg.vms[0]?.name).toBe(name);
  });

  it.each([
    ['key = next', 'input:\n  hotkey: { key: right }\n'],
    ['key = previous', 'input:\n  hotkey: { previous: scrolllock }\n'],
    ['next = previous', 'input:\n  hotkey: { next: left }\n'],
  ])('rejects hotkey keys that are not three different keys (%s)', (_what, text) => {
    expect(errorOf(text).message).toBe(
      'k.yaml:2: input.hotkey: key, next and previous must be three different keys',
    );
  });

  it('accepts three different hotkey keys', () => {
    const cfg = parseConfigText('input:\n  hotkey: { key: pause, next: up, previous: down }\n');
    expect(cfg.input.hotkey).toMatchObject({ key: 'pause', next: 'up', previous: 'down' });
  });

  it('rejects a subhost without a root directory or a DISKS root, and accepts either', () => {
    expect(errorOf('vms:\n  - name: sub\n    backend: subhost\n').message).toBe(
      'k.yaml:2: vms.0.subhost: backend "subhost" needs subhost.root or a DISKS root',
    );
    expect(
      errorOf('vms:\n  - name: sub\n    backend: subhost\n    subhost: { overlay: false }\n').message,
    ).toBe('k.yaml:4: vms.0.subhost: backend "subhost" needs subhost.root or a DISKS root');
    const ok = parseConfigText(`vms:
  - { name: a, backend: subhost, subhost: { root: /srv/a } }
  - { name: b, backend: subhost, subhost: { disks: [{ dev: vda, part: 1, image: /srv/b.img }] } }
`);
    expect(ok.vms.map((v) => v.name)).toEqual(['a', 'b']);
  });

  it('collects every problem, not just the first', () => {
    const err = errorOf('bogus: 1\nconsole: tv\n');
    expect(err.issues).toHaveLength(2);
  });
});
