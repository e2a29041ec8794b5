import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfigText } from '../../src/config/config.js';
import {
  emptyOverlay,
  layerConfig,
  loadEffectiveConfig,
  mergeVms,
  overlayPath,
  overlayText,
  patchVm,
  saveOverlay,
  vmFromCreate,
  withoutVm,
  withVm,
} from '../../src/config/overlay.js';
import { CLI } from '../../src/demo/kvmux-process.js';
import { ConfigError } from '../../src/util/errors.js';

const dir = mkdtempSync('/tmp/kvmux-overlay-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = parseConfigText(
  `stateDir: ${dir}/state
networks: [{ name: lan }]
vms:
  - { name: alpha, backend: qemu, qemu: { disk: /srv/alpha.img, memoryMiB: 512 } }
  - { name: notes, backend: command, command: [xterm] }
`,
  'base.yaml',
);

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return [...(err.issues ?? [err.message])];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration as state (kvmux own layer over the read-only file)', () => {
  it('an overlay entry replaces the file entry of the same name in place; new ones come last; removed ones go', () => {
    const alpha2 = patchVm(base.vms[0]!, { memoryMiB: 2048, cpus: 2 });
    const beta = vmFromCreate({ name: 'beta', disk: '/srv/beta.qcow2', memoryMiB: 256 });
    const ov = withoutVm(withVm(withVm(emptyOverlay(), alpha2), beta), 'notes', true);
    const vms = mergeVms(base.vms, ov);
    expect(vms.map((v) => v.name)).toEqual(['alpha', 'beta']);
    expect(vms[0]?.qemu).toMatchObject({ disk: '/srv/alpha.img', memoryMiB: 2048, cpus: 2 });
    expect(vms[1]).toMatchObject({ backend: 'qemu', qemu: { disk: '/srv/beta.qcow2', memoryMiB: 256 } });
    // creating a deleted name again brings it back
    expect(withVm(ov, { ...base.vms[1]! }).removed).toEqual([]);
  });

  it('deleting a VM only kvmux made forgets it; hiding (a file VM or a found image) is recorded once', () => {
    const own = withVm(emptyOverlay(), vmFromCreate({ name: 'beta', disk: '/srv/beta.qcow2' }));
    // an image of that name found again later is a VM again: nothing hides it
    expect(withoutVm(own, 'beta', false)).toEqual({ vms: [], removed: [] });
    const hidden = withoutVm(own, 'notes', true);
    expect(hidden.removed).toEqual(['notes']);
    expect(withoutVm(hidden, 'notes', true).removed).toEqual(['notes']);
  });

  it('a bad change is refused with the overlay file, its line and the key (same schema, same semantic rules)', () => {
    const bad = withVm(emptyOverlay(), {
      ...vmFromCreate({ name: 'beta', disk: '/srv/b.img' }),
      nics: [{ network: 'nowhere' }],
      blockedKeys: ['ctrl+alt+nosuchkey'],
    });
    const issues = problems(() => layerConfig(base, bad, '/st/config.yaml'));
    expect(issues).toContainEqual(
      expect.stringMatching(/^\/st\/config\.yaml:\d+: vms\.0\.nics\.0\.network: no network named "nowhere"/),
    );
    expect(issues).toContainEqual(
      expect.stringMatching(
        /^\/st\/config\.yaml:\d+: vms\.0\.blockedKeys\.0: chord "ctrl\+alt\+nosuchkey": unknown key/,
      ),
    );
    const dup = withVm(emptyOverlay(), { ...vmFromCreate({ name: 'admin', disk: '/x.img' }) });
    expect(problems(() => layerConfig(base, dup, 'o.yaml')).join('\n')).toContain('"admin" is reserved');
  });

  it('is written atomically and read back by kvmux run/check; a broken file names its line', async () => {
    mkdirSync(join(dir, 'state'), { recursive: true });
    const file = join(dir, 'base.yaml');
    writeFileSync(
      file,
      `stateDir: ${dir}/state\nvms:\n  - { name: notes, backend: command, command: [xterm] }\n`,
    );
    await saveOverlay(
      join(dir, 'state'),
      withVm(emptyOverlay(), vmFromCreate({ name: 'web', disk: '/srv/w.img', cpus: 3 })),
    );
    expect(readFileSync(overlayPath(join(dir, 'state')), 'utf8')).toContain('# Written by kvmux');
    expect(loadEffectiveConfig(file).config.vms.map((v) => [v.name, v.qemu?.cpus])).toEqual([
      ['notes', undefined],
      ['web', 3],
    ]);
    writeFileSync(
      overlayPath(join(dir, 'state')),
      'vms:\n  - name: web\n    backend: qemu\n    qemu: { cpus: many }\n',
    );
    const r = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${dir}/state/config.yaml:4: vms.0.qemu.cpus:`);
  });

  it('kvmux check parses chords and key names: a bad one is an error with its line, not a run-time crash', () => {
    const cases: Array<[string, string]> = [
      ['input:\n  hotkey: { key: scrolllockk }\n', ':3: input.hotkey.key: unknown key name "scrolllockk"'],
      ['input:\n  hotkey:\n    next: rigth\n', ':4: input.hotkey.next: unknown key name "rigth"'],
      [
        'input:\n  blocked:\n    - ctrl+alt+backspace\n    - ctrl+altt+f1\n',
        ':5: input.blocked.1: chord "ctrl+altt+f1": unknown modifier',
      ],
      [
        'vms:\n  - name: notes\n    backend: command\n    command: [xterm]\n    blockedKeys: [ctrl+alt+h, ctrl+]\n',
        ':6: vms.0.blockedKeys.1: chord "ctrl+"',
      ],
    ];
    // line numbers count the stateDir line written first
    for (const [text, want] of cases) {
      const file = join(dir, 'keys.yaml');
      writeFileSync(file, `stateDir: ${dir}/keys-state\n${text}`);
      const r = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
      expect(r.status, text).toBe(1);
      expect(r.stderr).toContain(`${file}${want}`);
    }
  });

  it('writes only what differs from the defaults (and the sizes chosen), and reads back the same VM', () => {
    const web = patchVm(vmFromCreate({ name: 'web', disk: '/srv/w.img', nics: [{ network: 'lan' }] }), {
      memoryMiB: 512, // today's default, chosen explicitly: kept
      autostart: false,
    });
    const text = overlayText(withVm(emptyOverlay(), web));
    const written = (parse(text) as { vms: Array<Record<string, unknown>> }).vms[0]!;
    expect(written).toEqual({
      name: 'web',
      backend: 'qemu',
      qemu: { disk: '/srv/w.img', memoryMiB: 512, cpus: 1 },
      nics: [{ network: 'lan' }],
      autostart: false,
    });
    expect(text).not.toMatch(/accel|tablet|serialLog|extraArgs|guestChannel|blockedKeys/);
    const back = layerConfig(base, withVm(emptyOverlay(), web), 'o.yaml').vms.find((v) => v.name === 'web');
    expect(back).toEqual(web);
  });

  it('kvmux run starts from the file alone when its layer no longer fits it (moved aside, never lost); check still fails', async () => {
    const state = join(dir, 'q-state');
    mkdirSync(state, { recursive: true });
    const file = join(dir, 'q.yaml');
    writeFileSync(
      file,
      `stateDir: ${state}
networks: [{ name: lan }]
`,
    );
    await saveOverlay(
      state,
      withVm(emptyOverlay(), vmFromCreate({ name: 'web', disk: '/srv/w.img', nics: [{ network: 'lan' }] })),
    );
    writeFileSync(
      file,
      `stateDir: ${state}
`,
    ); // a new read-only file without that network
    const layer = readFileSync(overlayPath(state), 'utf8');
    const r = spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no network named "lan"');
    const eff = loadEffectiveConfig(file, { quarantine: true });
    expect(eff.config.vms).toEqual([]);
    expect(eff.quarantined?.error).toContain('no network named "lan"');
    expect(existsSync(overlayPath(state))).toBe(false);
    const moved = readdirSync(state).filter((f) => f.startsWith('config.yaml.bad-'));
    expect(moved).toHaveLength(1);
    expect(readFileSync(join(state, moved[0]!), 'utf8')).toBe(layer);
  });

  it('empty resources remove the limits (the admin prompt\'s "none", vm.setResources {name}); absent ones keep them', () => {
    const vm = vmFromCreate({ name: 'lim', disk: '/srv/lim.img' });
    const limited = patchVm(vm, { resources: { cpuQuota: 0.5, cpuset: '0', memoryMaxMiB: 256 } });
    expect(limited.resources).toEqual({ cpuQuota: 0.5, cpuset: '0', memoryMaxMiB: 256 });
    expect(patchVm(limited, { cpus: 2 }).resources).toEqual(limited.resources);
    expect(patchVm(limited, { resources: { ioWeight: 50 } }).resources).toEqual({ ioWeight: 50 });
    const cleared = patchVm(limited, { resources: {} });
    expect(cleared.resources).toBeUndefined();
    expect('resources' in cleared).toBe(false);
    expect(overlayText(withVm(emptyOverlay(), cleared))).not.toMatch(/resources|cpuQuota|memoryMaxMiB/);
  });

  it('memory above the balloon ceiling is kept for the next start: the ceiling follows instead of an error', () => {
    const vm = vmFromCreate({ name: 'big', disk: '/srv/big.img', memoryMiB: 256 });
    const ceiled = { ...vm, qemu: { ...vm.qemu!, maxMemoryMiB: 512 } };
    expect(patchVm(ceiled, { memoryMiB: 384 }).qemu).toMatchObject({ memoryMiB: 384, maxMemoryMiB: 512 });
    const grown = patchVm(ceiled, { memoryMiB: 1024 });
    expect(grown.qemu).toMatchObject({ memoryMiB: 1024, maxMemoryMiB: 1024 });
    expect(() => layerConfig(base, withVm(emptyOverlay(), grown), 'o.yaml')).not.toThrow();
  });
});
