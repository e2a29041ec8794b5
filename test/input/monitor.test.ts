import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EV, keyCode, SYN_REPORT } from '../../src/input/codes.js';
import { encodeEvent } from '../../src/input/event.js';
import { tempDir } from '../helpers/temp.js';

const root = join(import.meta.dirname, '..', '..');

function record(type: number, code: number, value: number): Buffer {
  return encodeEvent({ type, code, value });
}

function tap(name: string): Buffer[] {
  const code = keyCode(name)!;
  return [
    record(EV.KEY, code, 1),
    record(EV.SYN, SYN_REPORT, 0),
    record(EV.KEY, code, 0),
    record(EV.SYN, SYN_REPORT, 0),
  ];
}

describe('kvmux monitor', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child?.once('exit', r));
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints decoded events and hotkey/guard decisions from a FIFO, and stops on SIGINT', async () => {
    dir = tempDir('kvmux-monitor-');
    const fifo = join(dir, 'in.fifo');
    execFileSync('mkfifo', [fifo]);
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'monitor', '--device', fifo], {
      cwd: root,
      env: { ...process.env, KVMUX_CONFIG: join(dir, 'absent.yaml') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    await expect.poll(() => out, { timeout: 20_000 }).toContain('monitoring');
    const chord = [29, 56, 14, 14, 56, 29].map((code, i) => record(EV.KEY, code, i < 3 ? 1 : 0));
    const fd = openSync(fifo, constants.O_WRONLY);
    writeSync(
      fd,
      Buffer.concat([...tap('scrolllock'), ...tap('scrolllock'), ...tap('3'), ...tap('a'), ...chord]),
    );
    closeSync(fd);
    await expect.poll(() => out, { timeout: 5000 }).toContain('to vm: leftctrl up');
    child.kill('SIGINT');
    const code = await new Promise((r) => child?.once('exit', r));
    expect(code).toBe(0);
    for (const line of [
      'KEY scrolllock down',
      '-> hotkey: menu open',
      '-> SWITCH to display 3',
      'KEY a down',
      '-> to vm: a down',
      '-> guard: swallow alt+ctrl+backspace',
    ])
      expect(out).toContain(line);
    expect(out).not.toContain('to vm: backspace');
    expect(out).not.toContain('to vm: scrolllock');
  });
});
