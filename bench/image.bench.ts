import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { buildImage, DEFAULT_CACHE_DIR } from '../src/image/build.js';
import { QmpClient } from '../src/session/qmp.js';

/**
 * The appliance image: its size, and power-on → first VM pixels under TCG (QMP screendump of the
 * emulated monitor until the first VM's solid red fills it), through SeaBIOS and GRUB like a real
 * box. The floor is the same QEMU (TCG, same memory, CPU and VGA) booting the image's own stock
 * Debian kernel with a busybox initramfs to a login prompt on the serial port. Opt-in
 * (KVMUX_BENCH_IMAGE=1): it builds an image (minutes on a cold cache) and boots for minutes.
 */
const CONFIG = `console: vt
x: { driver: modesetting, width: 1024, height: 768, readySeconds: 600 }
stateDir: /data/kvmux/state
imageDirs: [/data/images]
hostUpdate: { bootDir: /boot/kvmux }
vms:
  - { name: red, backend: command, command: [xterm, -bg, red, -fg, red] }
`;

const QEMU_COMMON = ['-accel', 'tcg', '-m', '1536', '-smp', '1', '-display', 'none', '-vga', 'std'];
const QEMU_QUIET = ['-nic', 'none', '-monitor', 'none', '-no-reboot'];

function redShare(ppm: Buffer): number {
  const m = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(ppm.subarray(0, 40).toString('latin1'));
  if (!m) return 0;
  const n = Number(m[1]) * Number(m[2]);
  const px = ppm.subarray(m[0].length);
  let red = 0;
  for (let i = 0; i < n; i++)
    if ((px[i * 3] ?? 0) > 180 && (px[i * 3 + 1] ?? 255) < 60 && (px[i * 3 + 2] ?? 255) < 60) red++;
  return red / n;
}

async function stopQemu(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

/** Seconds from QEMU's start until the screendump shows the red VM over 90% of the screen. */
async function powerOnToPixels(disk: string, dir: string, limitS: number) {
  const qmpPath = join(dir, 'qmp.sock');
  const serial = join(dir, 'serial.log');
  const t0 = performance.now();
  const child = spawn(
    'qemu-system-x86_64',
    [
      ...QEMU_COMMON,
      ...QEMU_QUIET,
      '-serial',
      `file:${serial}`,
      '-qmp',
      `unix:${qmpPath},server=on,wait=off`,
      '-drive',
      `file=${disk},format=raw,if=virtio,snapshot=on`,
    ],
    { stdio: 'ignore' },
  );
  let qmp: QmpClient | null = null;
  try {
    for (let i = 0; i < 100 && !qmp; i++) {
      qmp = await QmpClient.connect(qmpPath, { label: 'bench', timeoutMs: 10_000 }).catch(() => null);
      if (!qmp) await sleep(100);
    }
    if (!qmp) throw new Error('no QMP socket');
    let readyS: number | null = null;
    const shot = join(dir, 'shot.ppm');
    while ((performance.now() - t0) / 1000 < limitS) {
      if (readyS === null && /kvmux ready \(slot [ab]\)/.test(readFileSync(serial, 'utf8')))
        readyS = (performance.now() - t0) / 1000;
      await qmp.execute('screendump', { filename: shot });
      if (redShare(readFileSync(shot)) > 0.9) return { pixelsS: (performance.now() - t0) / 1000, readyS };
      await sleep(1000);
    }
    throw new Error(
      `no VM pixels within ${limitS} s; serial tail: ${readFileSync(serial, 'utf8').slice(-500)}`,
    );
  } finally {
    qmp?.close();
    await stopQemu(child);
  }
}

/** Seconds from QEMU's start until a busybox getty on the stock kernel prints its login prompt. */
async function stockKernelToLogin(vmlinuz: string, dir: string, limitS: number): Promise<number> {
  const root = join(dir, 'initramfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  writeFileSync(
    join(root, 'init'),
    '#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\nhostname baseline\nexec getty 115200 ttyS0\n',
  );
  chmodSync(join(root, 'init'), 0o755);
  for (const d of ['proc', 'sys', 'dev']) mkdirSync(join(root, d));
  const initrd = join(dir, 'baseline.cpio.gz');
  await execa('sh', ['-c', `cd "${root}" && find . | cpio -o -H newc --quiet | gzip -1 > "${initrd}"`]);
  const serial = join(dir, 'baseline-serial.log');
  writeFileSync(serial, '');
  const t0 = performance.now();
  const child = spawn(
    'qemu-system-x86_64',
    [
      ...QEMU_COMMON,
      ...QEMU_QUIET,
      '-serial',
      `file:${serial}`,
      '-kernel',
      vmlinuz,
      '-initrd',
      initrd,
      '-append',
      'console=ttyS0,115200n8 quiet',
    ],
    { stdio: 'ignore' },
  );
  try {
    while ((performance.now() - t0) / 1000 < limitS) {
      if (/baseline login:/.test(readFileSync(serial, 'utf8'))) return (performance.now() - t0) / 1000;
      await sleep(100);
    }
    throw new Error(`no login prompt within ${limitS} s`);
  } finally {
    await stopQemu(child);
  }
}

export async function run(): Promise<Record<string, unknown>> {
  if (process.env['KVMUX_BENCH_IMAGE'] !== '1')
    return { skipped: 'opt-in: KVMUX_BENCH_IMAGE=1 (builds the appliance image and boots it under TCG)' };
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-image-bench-'));
  try {
    const config = join(dir, 'host.yaml');
    writeFileSync(config, CONFIG);
    const out = join(dir, 'out');
    const build = await buildImage({ out, config, cacheDir: DEFAULT_CACHE_DIR, progress: () => {} });
    const allocated = Number(
      String((await execa('du', ['-B1', join(out, 'disk.img')])).stdout).split('\t')[0],
    );
    const baselineS = await stockKernelToLogin(join(out, 'vmlinuz'), dir, 300);
    const boot = await powerOnToPixels(join(out, 'disk.img'), dir, 1800);
    return {
      accel: 'tcg',
      squashfsMiB: +(build.squashfsBytes / 2 ** 20).toFixed(1),
      initrdMiB: +(build.initrdBytes / 2 ** 20).toFixed(1),
      diskMiB: +((build.diskBytes ?? 0) / 2 ** 20).toFixed(1),
      diskAllocatedMiB: +(allocated / 2 ** 20).toFixed(1),
      buildSeconds: build.seconds,
      rootCacheHit: build.rootCacheHit,
      powerOnToFirstVmPixelsS: +boot.pixelsS.toFixed(1),
      powerOnToKvmuxReadyS: boot.readyS === null ? null : +boot.readyS.toFixed(1),
      stockKernelToLoginPromptS: +baselineS.toFixed(1),
      ratioPixelsVsStockLogin: +(boot.pixelsS / baselineS).toFixed(1),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
