import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, configSchema } from '../../src/config/schema.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import { Supervisor, type VmStatus } from '../../src/session/supervisor.js';
import { controlSocketOf, vmDirOf } from '../../src/session/vm-paths.js';
import { isAlive } from '../../src/util/proc.js';
import { buildInitramfs, findVirtioPortShell, linuxGuestQemu } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';
import { startTestDisplay, type TestDisplay } from './helpers/display.js';
import { startStandIn } from './helpers/stand-in.js';

/**
 * A real Linux guest (Debian kernel + busybox initramfs, TCG) that waits for one line on the kvmux
 * guest channel, prints it on its serial console and powers off: a clean end, not a crash — also
 * when the VM was adopted from a kvmux that was killed (then only QMP's SHUTDOWN event tells).
 */
const dir = tempDir('kvmux-linux-guest-');
let display: TestDisplay;
let config: Config;
const supervisors: Supervisor[] = [];
let kvmux: ChildProcess | undefined;

beforeAll(async () => {
  display = await startTestDisplay(128);
  const initrd = await buildInitramfs({
    modules: ['virtio_pci', 'virtio_console'],
    // The port shows up in sysfs a moment after the module loads.
    init: [
      'for i in $(seq 100); do',
      `  ${findVirtioPortShell('org.kvmux.control')}`,
      '  [ -n "$PORT" ] && break; sleep 0.1',
      'done',
      'echo "port:$PORT"',
      'read -r line < "$PORT"',
      'echo "got:$line"',
    ].join('\n'),
    outDir: join(dir, 'initrd'),
  });
  config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    vms: [
      {
        name: 'tux',
        backend: 'qemu',
        guestChannel: true,
        qemu: linuxGuestQemu(initrd, { memoryMiB: 192 }),
      },
    ],
  });
}, 120_000);

afterAll(async () => {
  kvmux?.kill('SIGKILL');
  for (const s of supervisors) await s.shutdown({ force: true });
  await display.stop();
});

function supervisor(): Supervisor {
  const s = new Supervisor({
    config,
    backends: { qemu: createQemuBackend() },
    displayFor: () => ({ display: display.display, width: 1024, height: 768 }),
  });
  supervisors.push(s);
  return s;
}

/** Connects to the VM's guest channel (retrying while QEMU sets it up) and sends one line. */
async function sendLine(line: string): Promise<void> {
  const path = controlSocketOf(config.runDir, 'tux');
  for (let i = 0; ; i++) {
    try {
      await new Promise<void>((resolve, reject) => {
        const s = connect(path, () => s.end(`${line}\n`, () => resolve()));
        s.once('error', reject);
      });
      return;
    } catch (err) {
      if (i > 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function settledAfterRunning(sup: Supervisor): Promise<VmStatus> {
  return new Promise((resolve) => {
    const on = (st: VmStatus) => {
      if (st.state === 'running' || st.state === 'starting') return;
      sup.off('state', on);
      resolve(st);
    };
    sup.on('state', on);
  });
}

describe('a real Linux guest under the qemu backend', () => {
  it('reads a line from the guest channel, logs it on its serial console, and its poweroff is a stop', async () => {
    const sup = supervisor();
    await sup.start('tux');
    const ended = settledAfterRunning(sup);
    await sendLine('hello-channel');
    expect(await ended).toMatchObject({ state: 'stopped', crashes: 0, lastError: null });
    expect(readFileSync(join(vmDirOf(config.runDir, 'tux'), 'serial.log'), 'utf8')).toContain(
      'got:hello-channel',
    );
  });

  it('after kill -9 of kvmux, the adopted guest powering off is a stop, not a crash', async () => {
    const standIn = await startStandIn(dir, config, display.display);
    kvmux = standIn.proc;
    const pid = standIn.pids['tux']!;
    kvmux.kill('SIGKILL');
    await new Promise((r) => kvmux!.once('exit', r));

    const sup = supervisor();
    expect(await sup.adoptAll()).toEqual(['tux']);
    expect(sup.get('tux')).toMatchObject({ state: 'running', pid });
    const ended = settledAfterRunning(sup);
    await sendLine('adopted');
    expect(await ended).toMatchObject({ state: 'stopped', crashes: 0 });
    expect(isAlive(pid)).toBe(false);
    expect(readFileSync(join(vmDirOf(config.runDir, 'tux'), 'serial.log'), 'utf8')).toContain('got:adopted');
  });
});
