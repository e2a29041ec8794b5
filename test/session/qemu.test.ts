import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmSchema } from '../../src/config/schema.js';
import type { LaunchContext, VmHandle } from '../../src/session/backends/backend.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import type { QmpClient } from '../../src/session/qmp.js';
import { isAlive } from '../../src/util/proc.js';
import { screenshot } from '../../src/x/screenshot.js';
import { createXtestSink } from '../../src/x/xtest-sink.js';
import { bootSectorDisk, DEMO_PALETTE } from '../fixtures/boot-sector.js';
import { autoAccel } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import {
  brightShare,
  changedPixels,
  colourShare,
  startTestDisplay,
  type TestDisplay,
  waitForColour,
} from './helpers/display.js';

/** Linux key codes (X keycode - 8). */
const KEY = { leftctrl: 29, leftalt: 56, two: 3, x: 45 } as const;
const work = tempDir('kvmux-qemu-test-');
const shots = join(work, 'shots');
mkdirSync(shots);
const backend = createQemuBackend({ powerdownTimeoutMs: 1500 });

// alpha runs under `accel: auto` (KVM when usable), beta under TCG. Without /dev/kvm both run TCG,
// and the test says so rather than claiming two accelerators.
const alphaAccel = autoAccel('session/qemu alpha');
const vms = [
  { name: 'alpha', colour: 0, number: 121, accel: 'auto' },
  { name: 'beta', colour: 1, number: 122, accel: 'tcg' },
].map((v) => ({
  ...v,
  rgb: DEMO_PALETTE[v.colour]!.rgb,
  config: vmSchema.parse({
    name: v.name,
    backend: 'qemu',
    qemu: { disk: bootSectorDisk({ text: v.name, colour: v.colour }, work), memoryMiB: 64, accel: v.accel },
  }),
}));

/** Pixels that differ between two screenshots in rows [from, to). */

const displays: TestDisplay[] = [];
const handles = new Map<string, VmHandle>();

function ctx(i: number): LaunchContext {
  const vmDir = join(work, 'run', vms[i]!.name);
  mkdirSync(vmDir, { recursive: true });
  return { display: displays[i]!.display, vmDir, width: 1024, height: 768, taps: [] };
}

async function startVm(i: number): Promise<VmHandle> {
  const h = await backend.start(vms[i]!.config, ctx(i));
  handles.set(vms[i]!.name, h);
  return h;
}

beforeAll(async () => {
  for (const v of vms) displays.push(await startTestDisplay(v.number));
});

afterAll(async () => {
  for (const h of handles.values()) await h.stop({ force: true });
  for (const d of displays) await d.stop();
});

/** The `-accel` QEMU really got, from its command line. */
function accelOf(pid: number): string {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  return argv[argv.indexOf('-accel') + 1]!;
}

describe(`qemu backend, real QEMU on Xvfb behind the kiosk WM (alpha ${alphaAccel}, beta tcg)`, () => {
  it("shows each VM's own boot-sector screen on its own display, full-screen and distinct", async () => {
    await Promise.all([startVm(0), startVm(1)]);
    expect(accelOf(handles.get('alpha')!.pid), 'alpha: what auto resolved to').toBe(alphaAccel);
    expect(accelOf(handles.get('beta')!.pid)).toBe('tcg');
    for (const [i, v] of vms.entries()) {
      const other = vms[1 - i]!;
      // The guest paints its background first, then the letters: wait for both.
      const { img, share } = await waitForColour(
        displays[i]!.display,
        join(shots, `${v.name}.png`),
        v.rgb,
        0.3,
        30_000,
        (shot) => brightShare(shot) > 0.02,
      );
      expect(share, `${v.name}: share of its background colour`).toBeGreaterThan(0.3);
      expect(brightShare(img), `${v.name}: its big bright letters`).toBeGreaterThan(0.02);
      expect(colourShare(img, other.rgb), `${v.name}: nothing of ${other.name}`).toBe(0);
    }
  });

  it('keys typed through XTEST reach the guest, and Ctrl+Alt+2 opens no QEMU console', async () => {
    const { display } = displays[0]!;
    const sink = await createXtestSink(display);
    const tap = async (...codes: number[]) => {
      for (const c of codes) sink.key(c, true);
      for (const c of [...codes].reverse()) sink.key(c, false);
      sink.flush();
      await sleep(50);
    };
    try {
      const before = await screenshot(display, join(shots, 'alpha-keys-before.png'));
      await tap(KEY.leftctrl, KEY.leftalt, KEY.two);
      for (let i = 0; i < 12; i++) await tap(KEY.x);
      // The guest echoes keys on its text row 22: only the bottom quarter of the screen changes.
      const split = Math.floor(before.height * 0.75);
      let img = before;
      for (let i = 0; i < 40 && changedPixels(before, img, split, img.height) <= 300; i++) {
        await sleep(100);
        img = await screenshot(display, join(shots, 'alpha-keys-after.png'));
      }
      expect(colourShare(img, vms[0]!.rgb), 'still the guest screen, not a QEMU console').toBeGreaterThan(
        0.3,
      );
      expect(changedPixels(before, img, split, img.height), 'the echoed x characters').toBeGreaterThan(300);
      expect(changedPixels(before, img, 0, split), 'nothing else changed').toBe(0);
    } finally {
      await sink.close();
    }
  });

  it("a QEMU that cannot start fails with QEMU's own message, naming the VM", async () => {
    const broken = vmSchema.parse({
      name: 'broken',
      backend: 'qemu',
      qemu: { disk: join(work, 'missing.img') },
    });
    const vmDir = join(work, 'run', 'broken');
    mkdirSync(vmDir, { recursive: true });
    const ctx = { display: displays[0]!.display, vmDir, width: 1024, height: 768, taps: [] };
    await expect(backend.start(broken, ctx)).rejects.toThrow(/^broken: QEMU exited at start .*missing\.img/);
  });

  it('answers QMP: query-status is running, a balloon request below boot size is accepted, growth waits (the guest side: balloon.test.ts)', async () => {
    const h = handles.get('alpha')!;
    expect(await h.status()).toBe('running');
    expect(await h.setMemory(48)).toBe(true);
    expect(await h.setMemory(128)).toBe(false);
    // A dropped QMP connection is re-opened on the next use while QEMU runs.
    (h as unknown as { qmpClient: QmpClient | null }).qmpClient?.close();
    expect(await h.status()).toBe('running');
  });

  it('runs without a monitor, serial or parallel VC and logs serial to a file', () => {
    const cmdline = readFileSync(`/proc/${handles.get('alpha')!.pid}/cmdline`, 'utf8').split('\0');
    for (const [flag, value] of [
      ['-monitor', 'none'],
      ['-parallel', 'none'],
      ['-serial', 'none'],
    ] as const)
      expect(cmdline[cmdline.indexOf(flag) + 1]).toBe(value);
    expect(cmdline.some((a) => a.startsWith('file:') && a.endsWith('serial.log'))).toBe(true);
  });

  it('graceful stop sends ACPI powerdown and kills after the timeout when the guest ignores it', async () => {
    const h = handles.get('beta')!;
    const t0 = Date.now();
    await h.stop({ force: false, timeoutMs: 1500 });
    const exit = await h.exited;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(exit.signal).toBe('SIGKILL');
    expect(isAlive(h.pid)).toBe(false);
  });

  it('force stop kills at once, and a new start shows the VM again', async () => {
    const old = handles.get('alpha')!;
    await old.stop({ force: true });
    expect((await old.exited).signal).toBe('SIGKILL');
    const h = await startVm(0);
    expect(h.pid).not.toBe(old.pid);
    const { share } = await waitForColour(
      displays[0]!.display,
      join(shots, 'alpha-again.png'),
      vms[0]!.rgb,
      0.3,
    );
    expect(share).toBeGreaterThan(0.3);
    expect(await h.status()).toBe('running');
  });
});
