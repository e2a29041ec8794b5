import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CLI } from '../../src/demo/kvmux-process.js';
import { packageVersion } from '../../src/util/version.js';
import { tempDir } from '../helpers/temp.js';

/** The built `kvmux` as a person runs it: exit codes, stdout, stderr. */
function kvmux(...args: string[]) {
  return kvmuxWith({}, ...args);
}

function kvmuxWith(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, KVMUX_CONFIG: '', ...env },
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const dir = tempDir('kvmux-cli-');
const good = join(dir, 'good.yaml');
writeFileSync(good, 'console: virtual\nvms:\n  - { name: notes, backend: command, command: [xterm] }\n');
const bad = join(dir, 'bad.yaml');
writeFileSync(bad, 'console: virtual\nvms:\n  - name: notes\n    backend: command\n    comand: [xterm]\n');

describe('kvmux CLI', () => {
  it('--help lists every subcommand and --version prints the package version', () => {
    const help = kvmux('--help');
    expect(help.code).toBe(0);
    for (const cmd of ['run', 'check', 'ctl', 'admin', 'passwd', 'doctor', 'monitor', 'config'])
      expect(help.out).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
    expect(kvmux('--version').out.trim()).toBe(packageVersion());
  });

  it('check prints the effective config with defaults filled in', () => {
    const r = kvmux('check', '--config', good);
    expect(r.code).toBe(0);
    const cfg = parse(r.out) as { runDir: string; input: { hotkey: { windowMs: number } }; vms: unknown[] };
    expect(cfg.runDir).toBe('/run/kvmux');
    expect(cfg.input.hotkey.windowMs).toBe(500);
    expect(r.err).toContain('OK (1 VM(s)');
  });

  it('check and run refuse a bad config with the file, line and key, and exit 1', () => {
    for (const sub of ['check', 'run']) {
      const r = kvmux(sub, '--config', bad);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`${bad}:5: vms.0.comand: unknown key "comand"`);
    }
  });

  it('run exits 1 with a clear message when no X server can start, instead of waiting forever', () => {
    const cfg = join(dir, 'no-x.yaml');
    writeFileSync(
      cfg,
      `runDir: ${dir}/run\nstateDir: ${dir}/state\nconsole: virtual\ninput: { devices: [] }\n` +
        'vms:\n  - { name: notes, backend: command, command: [xterm] }\n',
    );
    // no Xvfb on this PATH
    const r = kvmuxWith({ PATH: '/nonexistent' }, 'run', '--config', cfg);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/kvmux run: .*Xvfb/);
    expect(r.err).toContain('kvmux doctor');
  });

  it('config schema prints a JSON Schema that rejects unknown keys', () => {
    const r = kvmux('config', 'schema', '--config', good); // --config is accepted like everywhere
    expect(r.code, r.err).toBe(0);
    const schema = JSON.parse(r.out) as {
      additionalProperties: boolean;
      properties: Record<string, unknown>;
    };
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['vms', 'networks', 'policy', 'input']),
    );
  });

  it('doctor reports every check and exits 1 exactly when one of them fails', () => {
    const r = kvmux('doctor', '--config', good);
    for (const name of ['root', 'node', '/dev/kvm', 'X server', 'qemu', 'nft', 'config'])
      expect(r.out).toMatch(new RegExp(`^(ok  |WARN|FAIL|skip)  ${name.replace('/', '\\/')}\\b`, 'm'));
    expect(r.code).toBe(/^FAIL/m.test(r.out) ? 1 : 0);
    expect(r.out).toMatch(/^ok {4}config +1 VM\(s\), console: virtual$/m);
  });
});
