import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmSchema } from '../../src/config/schema.js';
import type { VmHandle } from '../../src/session/backends/backend.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import { buildInitramfs, linuxGuestQemu } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';
import { untilValue } from '../helpers/until.js';
import { startTestDisplay, type TestDisplay } from './helpers/display.js';

/**
 * `vm.setMemory` below the boot size inflates the virtio balloon: proven inside a real Linux guest
 * (Debian kernel + busybox, TCG) whose virtio_balloon driver hands the pages back, so the guest's
 * own MemTotal drops. The guest prints MemTotal on its serial console every 200 ms.
 */
const dir = tempDir('kvmux-balloon-');
const BOOT_MIB = 256;
let display: TestDisplay;
let handle: VmHandle | undefined;

beforeAll(async () => {
  display = await startTestDisplay(129);
}, 60_000);

afterAll(async () => {
  await handle?.stop({ force: true });
  await display?.stop();
});

/** Every MemTotal (KiB) the guest has printed so far. */
function memTotals(serialLog: string): number[] {
  const text = readFileSync(serialLog, 'utf8');
  return [...text.matchAll(/^memtotal (\d+)/gm)].map((m) => Number(m[1]));
}

const until = <T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60000) =>
  untilValue(what, fn, timeoutMs);

describe('memory shrinks live by balloon, seen inside a Linux guest', () => {
  it("the guest's MemTotal drops by about what vm.setMemory took away", async () => {
    const initrd = await buildInitramfs({
      modules: ['virtio_pci', 'virtio_balloon'],
      init: [
        'echo "balloon driver: $(ls /sys/bus/virtio/drivers/ | tr "\\n" " ")"',
        'for i in $(seq 900); do echo "memtotal $(awk "/MemTotal/ {print \\$2}" /proc/meminfo)"; sleep 0.2; done',
      ].join('\n'),
      outDir: join(dir, 'initrd'),
    });
    const vm = vmSchema.parse({
      name: 'tux',
      backend: 'qemu',
      qemu: linuxGuestQemu(initrd, { memoryMiB: BOOT_MIB }),
    });
    const vmDir = join(dir, 'run', 'tux');
    mkdirSync(vmDir, { recursive: true });
    handle = await createQemuBackend().start(vm, {
      display: display.display,
      vmDir,
      width: 1024,
      height: 768,
      taps: [],
    });
    const serialLog = join(vmDir, 'serial.log');
    const before = await until('MemTotal before', () => memTotals(serialLog).at(-1));
    expect(readFileSync(serialLog, 'utf8')).toMatch(/balloon driver: .*virtio_balloon/);
    const shrinkMiB = 96;
    expect(await handle.setMemory(BOOT_MIB - shrinkMiB)).toBe(true);
    const after = await until('MemTotal to drop', () => {
      const last = memTotals(serialLog).at(-1)!;
      return before - last >= (shrinkMiB - 8) * 1024 ? last : undefined;
    });
    const droppedMiB = (before - after) / 1024;
    process.stderr.write(
      `[balloon] guest MemTotal ${before} KiB → ${after} KiB (−${droppedMiB.toFixed(1)} MiB)\n`,
    );
    expect(droppedMiB).toBeLessThanOrEqual(shrinkMiB + 1);
    // and back: deflating returns the pages
    expect(await handle.setMemory(BOOT_MIB)).toBe(true);
    await until('MemTotal to come back', () => {
      const last = memTotals(serialLog).at(-1)!;
      return last >= before - 1024 ? last : undefined;
    });
  }, 120_000);
});
