import { mkdtempSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Kvmux, startKvmux } from '../../src/demo/kvmux-process.js';
import { bootSectorDisk } from '../fixtures/boot-sector.js';

/**
 * Memory as configuration: with `qemu.maxMemoryMiB` QEMU boots with the ceiling and balloons down
 * to memoryMiB, so vm.update / vm.setMemory can grow a running VM live up to the ceiling; beyond
 * it the change is kept and applies at the next start. Real QEMU (TCG) on Xvfb under `kvmux run`.
 */
let k: Kvmux;
const work = mkdtempSync('/tmp/kvmux-balloon-');

beforeAll(async () => {
  k = await startKvmux({
    firstDisplay: 180,
    vms: [
      {
        name: 'grow',
        backend: 'qemu',
        qemu: {
          disk: bootSectorDisk({ text: 'grow', colour: 1 }, work),
          memoryMiB: 64,
          maxMemoryMiB: 128,
          accel: 'tcg',
        },
      },
    ],
  });
  process.stdout.write('balloon test: QEMU under TCG (accel: tcg)\n');
}, 90_000);

afterAll(async () => {
  await k?.stop();
  rmSync(work, { recursive: true, force: true });
});

const mem = async () =>
  (await k.call<Array<{ name: string; memoryMiB: number }>>('vm.list')).find((v) => v.name === 'grow')
    ?.memoryMiB;

describe('memory up to qemu.maxMemoryMiB', () => {
  it('boots with the ceiling (-m 128) and shows the configured size', async () => {
    expect(k.log()).toMatch(/"-m","128"/);
    expect(await mem()).toBe(64);
  });

  it('grows live up to the ceiling; past it waits for the next start, as CPUs do', async () => {
    expect(await k.call('vm.update', { name: 'grow', memoryMiB: 120 })).toMatchObject({
      live: ['memoryMiB'],
      nextStart: [],
    });
    expect(await mem()).toBe(120);
    // past the ceiling: no balloon can do it, so it is kept for the next start (the ceiling follows)
    expect(await k.call('vm.setMemory', { name: 'grow', memoryMiB: 256 })).toEqual({
      live: false,
      memoryMiB: 256,
    });
    expect(await mem()).toBe(256); // the configured size; the guest keeps 120 until its restart
    expect(await k.call('vm.update', { name: 'grow', cpus: 2 })).toMatchObject({ nextStart: ['cpus'] });
  });

  it('a restart starts with the kept size and CPUs (the ceiling raised to the size)', async () => {
    await k.call('vm.restart', { name: 'grow' });
    expect(await mem()).toBe(256);
    const log = k.log();
    const lastArgv =
      log
        .split('\n')
        .filter((l) => l.includes('"starting QEMU"'))
        .at(-1) ?? '';
    expect(lastArgv).toMatch(/"-m","256"/);
    expect(lastArgv).toMatch(/"-smp","2"/);
  });
});
