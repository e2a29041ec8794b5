import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { buildImage, DEFAULT_CACHE_DIR, machineSources } from '../../src/image/build.js';
import { diskPlan, diskSizes, ROOT_PACKAGES } from '../../src/image/layout.js';
import { IMAGE_NODE_VERSION } from '../../src/image/node-runtime.js';
import { packageRoot } from '../../src/image/payload.js';

/** What the image tests need on this machine; the reason when something is missing, else null. */
export function whyNoImageTools(): string | null {
  if (process.getuid?.() !== 0) return 'image build needs root';
  const need: [string, string][] = [
    ['/usr/bin/mmdebstrap', 'mmdebstrap'],
    ['/usr/bin/mksquashfs', 'squashfs-tools'],
    ['/usr/bin/grub-mkimage', 'grub2-common'],
    ['/usr/lib/grub/i386-pc/boot.img', 'grub-pc-bin'],
    ['/usr/lib/grub/x86_64-efi/linux.mod', 'grub-efi-amd64-bin'],
    ['/usr/bin/mcopy', 'mtools'],
    ['/usr/sbin/mkfs.fat', 'dosfstools'],
    ['/usr/sbin/sfdisk', 'fdisk'],
    ['/usr/sbin/debugfs', 'e2fsprogs'],
    ['/usr/bin/qemu-system-x86_64', 'qemu-system-x86'],
  ];
  const missing = need.filter(([p]) => !existsSync(p)).map(([, pkg]) => pkg);
  return missing.length ? `missing ${missing.join(', ')} (scripts/install-deps.sh installs them)` : null;
}

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

function hashTree(h: ReturnType<typeof createHash>, root: string, dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) hashTree(h, root, p);
    else {
      h.update(relative(root, p));
      h.update(readFileSync(p));
    }
  }
}

export interface TestImage {
  dir: string;
  disk: string;
  squashfs: string;
  build: Record<string, unknown>;
  /** true when this run built it (false: reused from the cache) */
  built: boolean;
}

const TEST_CACHE = '/var/tmp/kvmux-image-test';

/**
 * The test image's host config: the appliance's defaults plus two command VMs whose screens are a
 * solid colour each (told apart in a QMP screendump), on Xorg modesetting over QEMU's DRM device.
 */
export const TEST_IMAGE_CONFIG = `console: vt
x: { driver: modesetting, width: 1024, height: 768, readySeconds: 600 }   # TCG: Xorg starts slowly
stateDir: /data/kvmux/state
imageDirs: [/data/images]
hostUpdate: { bootDir: /boot/kvmux }
vms:
  - { name: red, backend: command, command: [xterm, -bg, red, -fg, red] }
  - { name: blue, backend: command, command: [xterm, -bg, blue, -fg, blue] }
`;

/**
 * One image per run of the suite, shared by the image tests, cached under a key of everything that
 * goes into it (kvmux's built code, the builder's own source as these tests run it, the unit, the
 * package list, the apt sources, Node's version).
 * Images of other keys unused for an hour are removed, so /var/tmp holds few test images.
 */
export async function sharedTestImage(): Promise<TestImage> {
  const pkg = packageRoot();
  const h = createHash('sha256');
  hashTree(h, pkg, join(pkg, 'dist/src'));
  // the tests build from src/image (the initrd's init script, the layout), not from dist: a change
  // there without a build must not boot yesterday's image
  hashTree(h, pkg, join(pkg, 'src/image'));
  h.update(readFileSync(join(pkg, 'package.json')));
  h.update(readFileSync(join(pkg, 'systemd/kvmux.service')));
  h.update(JSON.stringify({ ROOT_PACKAGES, sources: machineSources('bookworm'), IMAGE_NODE_VERSION }));
  h.update(TEST_IMAGE_CONFIG);
  const key = h.digest('hex').slice(0, 16);
  const dir = join(TEST_CACHE, key);
  const result = (built: boolean): TestImage => ({
    dir,
    disk: join(dir, 'disk.img'),
    squashfs: join(dir, 'root.squashfs'),
    build: JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8')) as Record<string, unknown>,
    built,
  });
  if (existsSync(join(dir, 'build.json'))) {
    utimesSync(dir, new Date(), new Date());
    return result(false);
  }
  mkdirSync(TEST_CACHE, { recursive: true });
  // another run may still boot an image of an older key: only those unused for an hour go
  for (const old of readdirSync(TEST_CACHE))
    if (statSync(join(TEST_CACHE, old)).mtimeMs < Date.now() - 3600_000)
      rmSync(join(TEST_CACHE, old), { recursive: true, force: true });
  const partial = `${dir}.partial`;
  const t0 = Date.now();
  mkdirSync(partial, { recursive: true });
  const config = join(partial, 'host.yaml');
  writeFileSync(config, TEST_IMAGE_CONFIG);
  const r = await buildImage({
    out: partial,
    config,
    testProbe: true,
    cacheDir: DEFAULT_CACHE_DIR,
    progress: (s) => process.stderr.write(`[image test build] ${s}\n`),
  });
  writeFileSync(
    join(partial, 'build.json'),
    JSON.stringify({ ...r, totalSeconds: (Date.now() - t0) / 1000 }),
  );
  renameSync(partial, dir);
  return result(true);
}

/** A private writable copy of disk.img (sparse), for tests that change what is on it. */
export async function diskCopy(img: TestImage, to: string): Promise<string> {
  await execa('cp', ['--sparse=always', img.disk, to]);
  return to;
}

/** Byte offset of a partition of the test image (by name: boot, slot-a, ...). */
export function partitionOffset(img: TestImage, name: string): number {
  const squash = statSync(img.squashfs).size;
  const bootFiles = statSync(join(img.dir, 'vmlinuz')).size + statSync(join(img.dir, 'initrd.img')).size;
  const b = img.build as { squashfsSha256: string };
  const p = diskPlan(diskSizes(squash, bootFiles), b.squashfsSha256).partitions.find((x) => x.name === name);
  if (!p) throw new Error(`no partition ${name}`);
  return p.startSector * 512;
}

/** Runs debugfs on one partition of a raw disk file (e2fsprogs reads `file?offset=N`). */
export async function debugfs(disk: string, offset: number, cmd: string, write = false): Promise<string> {
  const r = await execa('debugfs', [...(write ? ['-w'] : []), '-R', cmd, `${disk}?offset=${offset}`]);
  return String(r.stdout);
}

/**
 * Overwrites one 4 KiB block of a file inside a partition (found with debugfs bmap): corruption.
 * `at` 'middle' picks a block in the middle of the file: a squashfs whose superblock and tables
 * are intact still mounts then, so only its sha256 tells the damage.
 */
export async function corruptFile(
  disk: string,
  offset: number,
  path: string,
  at: 'first' | 'middle' = 'first',
): Promise<void> {
  let logical = 0;
  if (at === 'middle') {
    const size = Number(/Size: (\d+)/.exec(await debugfs(disk, offset, `stat ${path}`))?.[1]);
    if (!(size > 3 * 4096)) throw new Error(`stat ${path}: no size, or too small to corrupt its middle`);
    logical = Math.floor(size / 4096 / 2);
  }
  const block = Number((await debugfs(disk, offset, `bmap ${path} ${logical}`)).trim());
  if (!Number.isInteger(block) || block <= 0) throw new Error(`bmap ${path}: no block`);
  const fd = openSync(disk, 'r+');
  try {
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, offset + block * 4096);
  } finally {
    closeSync(fd);
  }
}

/** Writes a small file into a partition of a raw disk file (replacing it). */
export async function putFile(
  disk: string,
  offset: number,
  path: string,
  content: string,
  tmp: string,
): Promise<void> {
  const src = join(tmp, 'put-file');
  writeFileSync(src, content);
  await debugfs(disk, offset, `rm ${path}`, true).catch(() => '');
  await debugfs(disk, offset, `write ${src} ${path}`, true);
}

/**
 * A root that mounts, verifies and starts, but never gets kvmux ready: its /sbin/init (a static
 * busybox script) says so on the console and hangs, as a slot with a broken service would.
 * Returns the squashfs and its meta.json, ready for a slot partition.
 */
export async function hangingSlot(tmp: string): Promise<{ squashfs: string; meta: string }> {
  const root = join(tmp, 'hanging-root');
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'run', 'tmp'])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  writeFileSync(
    join(root, 'sbin/init'),
    '#!/bin/busybox sh\necho "hanging slot: booted, kvmux never gets ready" > /dev/console\nexec /bin/busybox sleep 100000\n',
    { mode: 0o755 },
  );
  const squashfs = join(tmp, 'hanging.squashfs');
  await execa('mksquashfs', [root, squashfs, '-noappend', '-quiet', '-no-progress', '-all-root']);
  const sha256 = createHash('sha256').update(readFileSync(squashfs)).digest('hex');
  const meta = join(tmp, 'hanging-meta.json');
  writeFileSync(meta, `${JSON.stringify({ version: 'hanging', sha256, size: statSync(squashfs).size })}\n`);
  return { squashfs, meta };
}

/** Replaces a slot's root.squashfs and meta.json (debugfs, on the raw disk file). */
export async function installSlot(
  disk: string,
  offset: number,
  slot: { squashfs: string; meta: string },
): Promise<void> {
  for (const [src, dst] of [
    [slot.squashfs, '/root.squashfs'],
    [slot.meta, '/meta.json'],
  ] as const) {
    await debugfs(disk, offset, `rm ${dst}`, true).catch(() => '');
    await debugfs(disk, offset, `write ${src} ${dst}`, true);
  }
}

export async function readPartFile(disk: string, offset: number, path: string): Promise<string> {
  return debugfs(disk, offset, `cat ${path}`);
}

export interface Boot {
  child: ChildProcess;
  serial: string;
  /** resolves when the serial log matches, rejects on timeout or QEMU exit */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
}

/** Starts QEMU (TCG unless told otherwise) with the given disk arguments; serial to a file. */
export function bootQemu(args: string[], serial: string, extra: { accel?: string } = {}): Boot {
  writeFileSync(serial, '');
  const child = spawn(
    'qemu-system-x86_64',
    [
      '-accel',
      extra.accel ?? 'tcg',
      '-m',
      '1536',
      '-smp',
      '1',
      '-display',
      'none',
      '-vga',
      'std',
      '-nic',
      'none',
      '-monitor',
      'none',
      '-serial',
      `file:${serial}`,
      '-no-reboot',
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += String(b);
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  return {
    child,
    serial,
    async waitFor(re, timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const log = readFileSync(serial, 'utf8');
        if (re.test(log)) return log;
        if (exited)
          throw new Error(`QEMU exited before ${re}: ${stderr}\n--- serial ---\n${log.slice(-3000)}`);
        if (Date.now() > end)
          throw new Error(`no ${re} on ttyS0 after ${timeoutMs} ms\n--- serial ---\n${log.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    },
    async stop() {
      if (exited) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (!exited) child.kill('SIGKILL');
      await gone;
    },
  };
}
