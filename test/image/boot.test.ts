import { copyFileSync, existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, DEFAULT_CACHE_DIR } from '../../src/image/build.js';
import { loudSkip } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import {
  type Boot,
  bootQemu,
  corruptFile,
  diskCopy,
  hangingSlot,
  installSlot,
  OVMF_CODE,
  OVMF_VARS,
  partitionOffset,
  putFile,
  readPartFile,
  sharedTestImage,
  TEST_IMAGE_CONFIG,
  type TestImage,
  whyNoImageTools,
} from './image-fixture.js';

/**
 * The appliance image, built once per run (cached by its inputs) and booted in QEMU under TCG
 * through the firmware and GRUB, never with -kernel: from behind an empty disk (BIOS), as USB
 * storage (BIOS), and with a corrupted slot A (UEFI/OVMF). Each boot waits for "kvmux ready" on
 * ttyS0. The three boots share one disk copy so they also show the A/B boot counter end to end.
 */
// In CI by default: measured on 2 cores, the cold build took 5.3 min (4.4 of them mmdebstrap) and
// this file 11 min (boots to ready of 126-145 s each), 18 min when other TCG guests shared the
// cores. KVMUX_IMAGE_TESTS=0 skips them; =1 adds the console end-to-end test (console.test.ts),
// which the CI budget leaves out.
const why =
  process.env['KVMUX_IMAGE_TESTS'] === '0'
    ? 'KVMUX_IMAGE_TESTS=0: image tests switched off'
    : whyNoImageTools();
if (why) loudSkip('appliance image build and boot tests', why);

const BOOT_MS = 20 * 60_000;
/** the ready hook's line on ttyS0 (not any line that merely mentions readiness) */
const READY = /kvmux ready \(slot [ab]\)/;

describe.skipIf(why !== null)('appliance image', () => {
  let img: TestImage;
  let disk: string;
  let dir: string;
  let boot: Boot | null = null;

  beforeAll(async () => {
    const t0 = Date.now();
    img = await sharedTestImage();
    process.stderr.write(
      `[image test] ${img.built ? 'built' : 'reused cached'} image in ${Math.round((Date.now() - t0) / 1000)} s: ` +
        `${JSON.stringify(img.build)}\n`,
    );
    dir = tempDir('kvmux-image-boot-');
    disk = await diskCopy(img, join(dir, 'disk.img'));
  }, 60 * 60_000);

  afterEach(async () => {
    await boot?.stop();
    boot = null;
  });

  const timed = async (what: string, fn: () => Promise<string>) => {
    const t0 = Date.now();
    const log = await fn();
    process.stderr.write(
      `[image test] ${what}: kvmux ready after ${Math.round((Date.now() - t0) / 1000)} s (TCG)\n`,
    );
    return log;
  };

  it('boots disk.img through GRUB from behind an empty disk, counts the boot, and resets the counter once ready', {
    timeout: BOOT_MS + 120_000,
  }, async () => {
    const bootPart = partitionOffset(img, 'boot');
    // two earlier boots of slot A never got ready: one more is allowed (kvmux.tries=3)
    await putFile(disk, bootPart, '/tries-a', '2\n', dir);
    const empty = join(dir, 'empty.img');
    await execa('truncate', ['-s', '64M', empty]);
    boot = bootQemu(
      [
        // Linux sees the empty disk first (vda) and ours second (vdb); the firmware is told to
        // boot ours, as a person picks the boot disk in a BIOS menu
        '-drive',
        `file=${empty},format=raw,if=none,id=empty`,
        '-device',
        'virtio-blk-pci,drive=empty',
        '-drive',
        `file=${disk},format=raw,if=none,id=kvmux`,
        '-device',
        'virtio-blk-pci,drive=kvmux,bootindex=1',
      ],
      join(dir, 'serial-empty-first.log'),
    );
    const b = boot;
    const log = await timed('behind an empty disk (BIOS)', () => b.waitFor(READY, BOOT_MS));
    expect(log).toContain('kvmux: GRUB loading the kernel');
    expect(log).toMatch(/kvmux-initrd: boot partition \/dev\/vdb3 on disk vdb/);
    expect(log).toContain('kvmux-initrd: root found: slot a');
    expect(log).toContain('kvmux-initrd: overlay mounted');
    expect(log).toContain('kvmux ready (slot a)');
    await boot.stop();
    boot = null;
    expect((await readPartFile(disk, bootPart, '/tries-a')).trim()).toBe('0');
    expect((await readPartFile(disk, bootPart, '/current')).trim()).toBe('a');
  });

  it('boots the same disk as USB storage, on slot A again (its counter was reset)', {
    timeout: BOOT_MS + 120_000,
  }, async () => {
    boot = bootQemu(
      [
        '-device',
        'qemu-xhci,id=xhci',
        '-drive',
        `if=none,id=stick,file=${disk},format=raw`,
        '-device',
        'usb-storage,bus=xhci.0,drive=stick,bootindex=1',
      ],
      join(dir, 'serial-usb.log'),
    );
    const b = boot;
    const log = await timed('as USB storage (BIOS)', () => b.waitFor(READY, BOOT_MS));
    expect(log).toMatch(/kvmux-initrd: boot partition \/dev\/sd[a-z]3 on disk sd[a-z]/);
    expect(log).toContain('kvmux-initrd: root found: slot a');
    expect(log).toContain('kvmux ready (slot a)');
  });

  it('rolls back: with slot A corrupted, slot B boots and becomes the boot pointer (UEFI when OVMF is here)', {
    timeout: BOOT_MS + 120_000,
  }, async () => {
    // a block in the middle: the squashfs still mounts, so only the sha256 check can refuse it
    await corruptFile(disk, partitionOffset(img, 'slot-a'), '/root.squashfs', 'middle');
    const uefi = existsSync(OVMF_CODE) && existsSync(OVMF_VARS);
    if (!uefi) loudSkip('UEFI boot', `${OVMF_CODE} missing (package ovmf): rollback boots with BIOS instead`);
    const vars = join(dir, 'vars.fd');
    if (uefi) copyFileSync(OVMF_VARS, vars);
    boot = bootQemu(
      [
        ...(uefi
          ? [
              '-machine',
              'q35',
              '-drive',
              `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
              '-drive',
              `if=pflash,format=raw,file=${vars}`,
            ]
          : []),
        '-drive',
        `file=${disk},format=raw,if=virtio`,
      ],
      join(dir, 'serial-rollback.log'),
    );
    const b = boot;
    const log = await timed(`slot A corrupted (${uefi ? 'UEFI' : 'BIOS'})`, () => b.waitFor(READY, BOOT_MS));
    expect(log).toContain('kvmux-initrd: slot a: sha256 mismatch');
    expect(log).toContain('kvmux-initrd: slot a: unusable, falling back');
    expect(log).toContain('kvmux-initrd: root found: slot b');
    expect(log).toContain('kvmux ready (slot b)');
    await boot.stop();
    boot = null;
    expect((await readPartFile(disk, partitionOffset(img, 'boot'), '/next')).trim()).toBe('b');
  });

  it('a slot that boots but never gets ready is tried kvmux.tries times, then the other slot boots to ready', {
    timeout: BOOT_MS + 20 * 60_000,
  }, async () => {
    // a fresh disk: slot B holds the real root, slot A one whose init hangs before kvmux
    const own = await diskCopy(img, join(dir, 'never-ready.img'));
    const bootPart = partitionOffset(img, 'boot');
    await installSlot(own, partitionOffset(img, 'slot-a'), await hangingSlot(dir));
    const run = (n: number) =>
      bootQemu(['-drive', `file=${own},format=raw,if=virtio`], join(dir, `serial-never-ready-${n}.log`));
    for (let n = 1; n <= 3; n++) {
      boot = run(n);
      const b = boot;
      const log = await b.waitFor(/hanging slot: booted/, BOOT_MS);
      expect(log).toContain('kvmux-initrd: root found: slot a (hanging)');
      await boot.stop(); // power-cycled, as a person (or a watchdog) does with a hung box
      boot = null;
      expect((await readPartFile(own, bootPart, '/tries-a')).trim()).toBe(String(n));
    }
    boot = run(4);
    const b = boot;
    const log = await timed('slot A never ready 3 times (BIOS)', () => b.waitFor(READY, BOOT_MS));
    expect(log).toContain('kvmux-initrd: slot a: bad (started 3 times, never got ready)');
    expect(log).toContain('kvmux-initrd: boot pointer moved to slot b');
    expect(log).toContain('kvmux-initrd: root found: slot b');
    expect(log).not.toContain('hanging slot');
    expect(log).toContain('kvmux ready (slot b)');
    await boot.stop();
    boot = null;
    expect((await readPartFile(own, bootPart, '/next')).trim()).toBe('b');
    expect((await readPartFile(own, bootPart, '/tries-b')).trim()).toBe('0');
    rmSync(own, { force: true });
  });

  it('rebuilds the same inputs into the same root.squashfs, byte for byte', {
    timeout: 30 * 60_000,
  }, async () => {
    const out = tempDir('kvmux-image-rebuild-');
    const t0 = Date.now();
    const config = join(out, 'host.yaml');
    writeFileSync(config, TEST_IMAGE_CONFIG);
    const r = await buildImage({
      out,
      config,
      testProbe: true,
      cacheDir: DEFAULT_CACHE_DIR,
      disk: false,
      progress: () => {},
    });
    process.stderr.write(
      `[image test] rebuild without disk: ${Math.round((Date.now() - t0) / 1000)} s; ` +
        `root.squashfs ${(statSync(img.squashfs).size / 2 ** 20).toFixed(1)} MiB\n`,
    );
    expect(r.squashfsSha256).toBe((img.build as { squashfsSha256: string }).squashfsSha256);
  });
});
