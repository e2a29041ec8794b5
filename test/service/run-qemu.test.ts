import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDisplay } from '../../src/x/connection.js';
import { probe, screenshot } from '../../src/x/screenshot.js';
import { bootSectorDisk, DEMO_PALETTE } from '../fixtures/boot-sector.js';
import { autoAccel } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import { changedPixels } from '../session/helpers/display.js';
import { adoptOrphans, isAlive, type Kvmux, reapOrphans, sleep, startKvmux } from './kvmux-harness.js';

/**
 * `kvmux run` with real QEMU VMs booting real boot-sector disks: each display shows its own VM, a
 * kill -9 of kvmux leaves them running and the next kvmux adopts the same pids. red runs under TCG
 * (so the host-key guard is tested with no /dev/kvm at all), green under `accel: auto`.
 */
const greenAccel = autoAccel('service/run-qemu green');
const ACCEL = { red: 'tcg', green: 'auto' } as const;

interface VmRow {
  name: string;
  state: string;
  pid: number | null;
  display: string | null;
}

/** The `-accel` QEMU really got, from its command line. */
function accelOf(pid: number): string {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  return argv[argv.indexOf('-accel') + 1]!;
}

async function colourAt(display: string): Promise<[number, number, number]> {
  const conn = await connectDisplay(display);
  try {
    // below the big letters, inside the coloured band the boot sector paints
    const [c] = await probe(conn, [[8, Math.floor(conn.height * 0.75)]]);
    return [c!.r, c!.g, c!.b];
  } finally {
    await conn.close();
  }
}

async function waitColour(display: string, want: readonly number[], timeoutMs = 60_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let got: number[] = [];
  while (Date.now() < deadline) {
    got = await colourAt(display);
    if (got.every((v, i) => v === want[i])) return got;
    await sleep(250);
  }
  return got;
}

const shots = tempDir('kvmux-qemu-shots-');

describe(`kvmux run with QEMU VMs (red tcg, green ${greenAccel})`, () => {
  let k: Kvmux;
  const vmList = () => k.call<VmRow[]>('vm.list');

  beforeAll(async () => {
    adoptOrphans();
    const vms = (['red', 'green'] as const).map((name, i) => ({
      name,
      backend: 'qemu',
      qemu: { disk: bootSectorDisk({ text: name, colour: i + 1 }, shots), memoryMiB: 64, accel: ACCEL[name] },
    }));
    k = await startKvmux({ vms, readyTimeoutMs: 90_000 });
  }, 120_000);

  afterAll(async () => {
    await k?.stop();
    reapOrphans();
  });

  it('shows each VM on its own display, full-screen, in its own colour', async () => {
    const rows = await vmList();
    expect(rows.map((r) => [r.name, r.state])).toEqual([
      ['red', 'running'],
      ['green', 'running'],
    ]);
    const [red, green] = rows;
    expect(accelOf(red!.pid!)).toBe('tcg');
    expect(accelOf(green!.pid!)).toBe(greenAccel);
    expect(red!.display).not.toBe(green!.display);
    expect(await waitColour(red!.display!, DEMO_PALETTE[1]!.rgb)).toEqual([...DEMO_PALETTE[1]!.rgb]);
    expect(await waitColour(green!.display!, DEMO_PALETTE[2]!.rgb)).toEqual([...DEMO_PALETTE[2]!.rgb]);
  }, 90_000);

  it('after kill -9 of kvmux, a new kvmux adopts the same QEMU pids instead of starting duplicates', async () => {
    const before = await vmList();
    const pids = before.map((r) => r.pid!);
    const displays = (await k.call<Array<{ display: string }>>('display.list')).map((d) => d.display);
    await k.crash();
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    k = await k.restart();
    const after = await vmList();
    expect(after.map((r) => r.pid)).toEqual(pids);
    expect(after.every((r) => r.state === 'running')).toBe(true);
    expect((await k.call<Array<{ display: string }>>('display.list')).map((d) => d.display)).toEqual(
      displays,
    );
    expect(k.log()).toContain('adopted');
    // QMP reconnected: a live memory change goes through the adopted VM's QMP socket
    const mem = await k.call<{ live: boolean }>('vm.setMemory', { name: 'red', memoryMiB: 48 });
    expect(mem.live).toBe(true);
    // input still reaches the adopted displays: the switch works and the colour is still there
    await k.call('display.switch', { name: 'green' });
    expect(await colourAt(after[1]!.display!)).toEqual([...DEMO_PALETTE[2]!.rgb]);
  }, 120_000);

  it("swallows QEMU's host keys typed on the keyboard: the guest echoes none of them, but it echoes x", async () => {
    // the boot sector echoes every key it gets on its text row 22, in the bottom quarter
    await k.call('display.switch', { name: 'red' });
    const red = (await vmList()).find((r) => r.name === 'red')!.display!;
    const shot = () => screenshot(red, join(shots, `red-${Date.now()}.png`));
    const before = await shot();
    const split = Math.floor(before.height * 0.75);
    await sleep(700);
    // a blinking cursor is all that may change on its own
    const noise = changedPixels(before, await shot(), split, before.height);
    // paced: QEMU's PS/2 queue is short, and a flood of modifier scancodes would drop later keys
    for (const key of ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0', 'g', 'f', 'q', 'u', 'm', 'minus']) {
      await k.kb.chord(['leftctrl', 'leftalt'], key);
      await sleep(40);
    }
    await sleep(1000);
    const afterChords = await shot();
    expect(changedPixels(before, afterChords, split, before.height)).toBeLessThanOrEqual(noise + 60);
    expect(changedPixels(before, afterChords, 0, split)).toBe(0);
    expect(await colourAt(red)).toEqual([...DEMO_PALETTE[1]!.rgb]);
    // control: plain keys do reach it
    for (let i = 0; i < 12; i++) {
      await k.kb.tap('x');
      await sleep(40);
    }
    let img = afterChords;
    for (let i = 0; i < 40 && changedPixels(afterChords, img, split, img.height) <= 300; i++) {
      await sleep(100);
      img = await shot();
    }
    expect(changedPixels(afterChords, img, split, img.height)).toBeGreaterThan(300);
  }, 60_000);

  it('vm.stop {force} kills a VM and vm.start brings it back with a new pid', async () => {
    const old = (await vmList()).find((r) => r.name === 'green')!;
    const stopped = await k.call<VmRow>('vm.stop', { name: 'green', force: true });
    expect(stopped.state).toBe('stopped');
    expect(isAlive(old.pid!)).toBe(false);
    const started = await k.call<VmRow>('vm.start', { name: 'green' });
    expect(started.state).toBe('running');
    expect(started.pid).not.toBe(old.pid);
    expect(await waitColour(started.display!, DEMO_PALETTE[2]!.rgb)).toEqual([...DEMO_PALETTE[2]!.rgb]);
  }, 90_000);
});
