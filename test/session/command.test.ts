import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { createCommandBackend } from '../../src/session/backends/command.js';
import { Supervisor } from '../../src/session/supervisor.js';
import { isAlive } from '../../src/util/proc.js';
import { tempDir } from '../helpers/temp.js';
import { startTestDisplay, type TestDisplay, waitForColour } from './helpers/display.js';

/** A `command` VM is an X program on its own display: the kiosk WM makes it full-screen. */
const dir = tempDir('kvmux-command-test-');
const BG = [0x22, 0x44, 0x66] as const;
let display: TestDisplay;
let sup: Supervisor;

beforeAll(async () => {
  display = await startTestDisplay(124);
  const config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    vms: [{ name: 'notes', backend: 'command', command: ['xterm', '-bg', 'rgb:22/44/66', '-fg', 'white'] }],
  });
  sup = new Supervisor({
    config,
    backends: { command: createCommandBackend() },
    displayFor: () => ({ display: display.display, width: 1024, height: 768 }),
  });
});

afterAll(async () => {
  await sup.shutdown({ force: true });
  await display.stop();
});

describe('command backend on Xvfb', () => {
  it('runs the program on its display, full-screen, and stops it with SIGTERM', async () => {
    const { pid } = await sup.start('notes');
    const { share } = await waitForColour(display.display, join(dir, 'notes.png'), BG, 0.9);
    expect(share).toBeGreaterThan(0.9);
    expect(await sup.stop('notes')).toMatchObject({ state: 'stopped' });
    expect(isAlive(pid!)).toBe(false);
  });

  it('restarts on request with a new process, and memory changes wait for the next start', async () => {
    const first = await sup.start('notes');
    const again = await sup.restart('notes');
    expect(again.pid).not.toBe(first.pid);
    expect(isAlive(first.pid!)).toBe(false);
    expect(await sup.setMemory('notes', 256)).toEqual({ live: false, memoryMiB: 256 });
    expect(sup.get('notes').memoryMiB).toBe(256);
  });

  it('shutdown leaving VMs running keeps the record so a new supervisor adopts the same pid', async () => {
    const { pid } = sup.get('notes');
    expect(pid).not.toBeNull();
    await sup.shutdown({ leaveRunning: true });
    expect(isAlive(pid!)).toBe(true);
    sup = new Supervisor({
      config: configSchema.parse({
        runDir: join(dir, 'run'),
        stateDir: join(dir, 'state'),
        vms: [{ name: 'notes', backend: 'command', command: ['xterm'] }],
      }),
      backends: { command: createCommandBackend() },
      displayFor: () => ({ display: display.display, width: 1024, height: 768 }),
    });
    expect(await sup.adoptAll()).toEqual(['notes']);
    expect(sup.get('notes')).toMatchObject({ state: 'running', pid, display: display.display });
  });
});
