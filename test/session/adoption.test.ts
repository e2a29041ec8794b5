import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import { Supervisor } from '../../src/session/supervisor.js';
import { VmRecordStore } from '../../src/session/vm-records.js';
import { isAlive, readProcStat } from '../../src/util/proc.js';
import { bootSectorDisk, DEMO_PALETTE } from '../fixtures/boot-sector.js';
import { tempDir } from '../helpers/temp.js';
import { startTestDisplay, type TestDisplay, waitForColour } from './helpers/display.js';
import { startStandIn } from './helpers/stand-in.js';

const dir = tempDir('kvmux-adopt-test-');
const rgb = DEMO_PALETTE[4]!.rgb;
const config = configSchema.parse({
  runDir: join(dir, 'run'),
  stateDir: join(dir, 'state'),
  vms: [
    {
      name: 'gamma',
      backend: 'qemu',
      qemu: { disk: bootSectorDisk({ text: 'gamma', colour: 4 }, dir), memoryMiB: 64, accel: 'tcg' },
    },
  ],
});
let display: TestDisplay;
let kvmux: ChildProcess | undefined;
let sup: Supervisor | undefined;
let qemuPid = 0;

beforeAll(async () => {
  display = await startTestDisplay(123);
});

afterAll(async () => {
  kvmux?.kill('SIGKILL');
  await sup?.shutdown({ force: true });
  if (qemuPid && isAlive(qemuPid)) process.kill(qemuPid, 'SIGKILL');
  await display.stop();
});

describe('re-adoption after kill -9 of kvmux (real QEMU)', () => {
  it('a restarted supervisor adopts the same QEMU pid, reconnects QMP, and can stop it', async () => {
    const standIn = await startStandIn(dir, config, display.display);
    kvmux = standIn.proc;
    qemuPid = standIn.pids['gamma']!;
    expect(qemuPid).toBeGreaterThan(0);
    const shown = await waitForColour(display.display, join(dir, 'before.png'), rgb, 0.3);
    expect(shown.share).toBeGreaterThan(0.3);

    kvmux.kill('SIGKILL');
    await new Promise((r) => kvmux!.once('exit', r));
    expect(isAlive(qemuPid)).toBe(true);
    const st = readProcStat(qemuPid)!;
    expect(st.ppid).not.toBe(kvmux.pid);
    // Started in its own session and process group: a signal to kvmux's group never reaches it.
    expect([st.session, st.pgrp]).toEqual([qemuPid, qemuPid]);

    sup = new Supervisor({
      config,
      backends: { qemu: createQemuBackend() },
      displayFor: () => ({ display: display.display, width: 1024, height: 768 }),
    });
    await sup.autostart();
    expect(sup.get('gamma')).toMatchObject({ state: 'running', pid: qemuPid });
    expect(await sup.handle('gamma')!.status()).toBe('running');
    const after = await waitForColour(display.display, join(dir, 'after.png'), rgb, 0.3, 2000);
    expect(after.share).toBeGreaterThan(0.3);

    // Orphaned under a pid 1 that does not reap, the killed QEMU stays a zombie: it must count as gone.
    expect(await sup.stop('gamma', { force: true })).toMatchObject({ state: 'stopped', pid: null });
    expect(isAlive(qemuPid)).toBe(false);
    expect(new VmRecordStore(config.stateDir).load('gamma')).toBeNull();
  });
});
