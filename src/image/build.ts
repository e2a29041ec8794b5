import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { execa } from 'execa';
import { packageVersion } from '../util/version.js';
import { applianceFiles } from './appliance-files.js';
import { assembleDisk } from './disk.js';
import { buildInitrd } from './initrd.js';
import {
  DPKG_EXCLUDES,
  defaultApplianceConfig,
  imageSources,
  parseAptSources,
  ROOT_PACKAGES,
} from './layout.js';
import { IMAGE_NODE_VERSION, imageNodeBinary } from './node-runtime.js';
import { packageRoot, runtimeDependencyDirs } from './payload.js';
import { defaultSplash, splashFromPpm } from './splash.js';

export const DEFAULT_CACHE_DIR = '/var/tmp/kvmux-image-cache';
/** 2026-01-01T00:00:00Z: every timestamp in the root when SOURCE_DATE_EPOCH is not set. */
export const DEFAULT_EPOCH = 1767225600;

export interface BuildOptions {
  out: string;
  /** host config baked into the image as /etc/kvmux/kvmux.yaml (default: no VMs, state on /data) */
  config?: string;
  /** PPM (P6) logo for the boot splash */
  splash?: string;
  cacheDir?: string;
  epoch?: number;
  /** build disk.img too (default true) */
  disk?: boolean;
  tries?: number;
  verify?: 'sha256' | 'size';
  /** TEST IMAGES ONLY: a root command loop on ttyS1 (see PROBE_SCRIPT) */
  testProbe?: boolean;
  progress?: (line: string) => void;
}

export interface BuildResult {
  out: string;
  squashfsBytes: number;
  squashfsSha256: string;
  initrdBytes: number;
  diskBytes: number | null;
  seconds: Record<string, number>;
  rootCacheHit: boolean;
}

/** Reads the machine's apt sources (deb822 and one-line) and keeps the Debian ones of `suite`. */
export function machineSources(suite: string): string[] {
  const files: string[] = [];
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  const d = '/etc/apt/sources.list.d';
  if (existsSync(d))
    for (const f of readdirSync(d).sort())
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(join(d, f));
  const all = files.flatMap((f) => parseAptSources(readFileSync(f, 'utf8')));
  const lines = imageSources(all, suite);
  if (lines.length === 0) throw new Error(`no apt source for Debian ${suite} (main) in /etc/apt`);
  return lines;
}

function osCodename(): string {
  const m = /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync('/etc/os-release', 'utf8'));
  return m?.[1] ?? 'bookworm';
}

const sha256File = async (path: string) =>
  String((await execa('sha256sum', [path])).stdout).split(' ')[0] ?? '';

/** The root tarball from mmdebstrap, cached under a key of everything that goes into it. */
async function rootTarball(
  cacheDir: string,
  suite: string,
  epoch: number,
  say: (s: string) => void,
): Promise<{ tar: string; hit: boolean }> {
  const sources = machineSources(suite);
  const mm = String((await execa('mmdebstrap', ['--version'])).stdout).trim();
  const key = createHash('sha256')
    .update(JSON.stringify({ sources, packages: ROOT_PACKAGES, excludes: DPKG_EXCLUDES, epoch, suite, mm }))
    .digest('hex')
    .slice(0, 16);
  const tar = join(cacheDir, `root-${suite}-${key}.tar`);
  if (existsSync(tar)) return { tar, hit: true };
  const list = join(cacheDir, `sources-${key}.list`);
  writeFileSync(list, `${sources.join('\n')}\n`);
  const tmp = `${tar}.partial`;
  say(`mmdebstrap ${suite} (${ROOT_PACKAGES.length} packages; a few minutes, downloads once)`);
  const args = [
    '--variant=minbase',
    '--mode=root',
    '--format=tar',
    '--aptopt=Acquire::Languages "none"',
    '--aptopt=APT::Install-Recommends "false"',
    ...DPKG_EXCLUDES.map((p) => `--dpkgopt=path-exclude=${p}`),
    // no Debian initramfs (minutes of mkinitramfs): the kernel's hook finds a no-op update-initramfs
    `--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && printf '#!/bin/sh\\nexit 0\\n' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs"`,
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/var/cache/ldconfig/aux-cache',
    `--include=${ROOT_PACKAGES.join(',')}`,
    suite,
    tmp,
    list,
  ];
  const child = execa('mmdebstrap', args, {
    env: { SOURCE_DATE_EPOCH: String(epoch) },
    all: true,
    reject: false,
  });
  child.all?.on('data', (b: Buffer) => {
    for (const line of String(b).split('\n')) if (line.startsWith('I: ')) say(`  ${line.slice(3)}`);
  });
  const r = await child;
  if (r.exitCode !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(
      `mmdebstrap failed (exit ${r.exitCode}): ${String(r.all).split('\n').slice(-8).join('\n')}`,
    );
  }
  renameSync(tmp, tar);
  return { tar, hit: false };
}

/** Adds kvmux, Node and the appliance settings to the extracted root. Returns the kernel version. */
function customiseRoot(
  root: string,
  o: { config?: string; nodeBin: string; out: string; testProbe: boolean },
): string {
  const kernels = readdirSync(join(root, 'boot')).filter((f) => f.startsWith('vmlinuz-'));
  const kver = kernels.sort().at(-1)?.slice('vmlinuz-'.length);
  if (!kver) throw new Error('the root has no /boot/vmlinuz-*: is linux-image-amd64 installed?');
  copyFileSync(join(root, 'boot', `vmlinuz-${kver}`), join(o.out, 'vmlinuz'));
  for (const f of readdirSync(join(root, 'boot')))
    if (f.startsWith('vmlinuz') || f.startsWith('initrd')) rmSync(join(root, 'boot', f), { force: true });
  for (const f of ['vmlinuz', 'vmlinuz.old', 'initrd.img', 'initrd.img.old'])
    rmSync(join(root, f), { force: true });

  copyFileSync(o.nodeBin, join(root, 'usr/local/bin/node'));
  chmodSync(join(root, 'usr/local/bin/node'), 0o755);

  const pkg = packageRoot();
  const lib = join(root, 'usr/lib/kvmux');
  mkdirSync(lib, { recursive: true });
  copyFileSync(join(pkg, 'package.json'), join(lib, 'package.json'));
  if (!existsSync(join(pkg, 'dist/src/cli/main.js')))
    throw new Error(`${pkg}/dist is not built (npm run build)`);
  cpSync(join(pkg, 'dist/src'), join(lib, 'dist/src'), { recursive: true });
  for (const dir of runtimeDependencyDirs(pkg))
    cpSync(dir, join(lib, relative(pkg, dir)), { recursive: true, dereference: true });
  chmodSync(join(lib, 'dist/src/cli/main.js'), 0o755);
  symlinkSync('/usr/lib/kvmux/dist/src/cli/main.js', join(root, 'usr/local/bin/kvmux'));

  mkdirSync(join(root, 'etc/kvmux'), { recursive: true });
  const config = o.config ? readFileSync(o.config, 'utf8') : defaultApplianceConfig();
  writeFileSync(join(root, 'etc/kvmux/kvmux.yaml'), config, { mode: 0o644 });

  const { files, links } = applianceFiles(readFileSync(join(pkg, 'systemd/kvmux.service'), 'utf8'), {
    testProbe: o.testProbe,
  });
  for (const f of files) {
    mkdirSync(dirname(join(root, f.path)), { recursive: true });
    writeFileSync(join(root, f.path), f.content);
    chmodSync(join(root, f.path), f.mode);
  }
  for (const l of links) {
    mkdirSync(dirname(join(root, l.path)), { recursive: true });
    rmSync(join(root, l.path), { force: true });
    symlinkSync(l.target, join(root, l.path));
  }
  writeFileSync(join(root, 'etc/machine-id'), ''); // systemd makes one at boot (in RAM)
  return kver;
}

/**
 * `kvmux image build`: root (mmdebstrap, cached) → kvmux + Node + kiosk settings → root.squashfs
 * (reproducible: fixed times, sorted, no build-host data) → initrd.img → disk.img.
 */
export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  const say = opts.progress ?? ((s: string) => process.stderr.write(`[image] ${s}\n`));
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
  const epoch = opts.epoch ?? (Number(process.env['SOURCE_DATE_EPOCH']) || DEFAULT_EPOCH);
  const suite = osCodename();
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(opts.out, { recursive: true });
  const seconds: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    const r = await fn();
    seconds[name] = Math.round((Date.now() - t0) / 100) / 10;
    say(`${name}: done in ${seconds[name]} s`);
    return r;
  };
  const work = mkdtempSync(join(cacheDir, 'work-'));
  try {
    const { tar, hit } = await step('root', () => rootTarball(cacheDir, suite, epoch, say));
    const nodeBin = await step('node', () => imageNodeBinary(cacheDir));
    const root = join(work, 'root');
    mkdirSync(root);
    const kver = await step('customise', async () => {
      await execa('tar', ['-xf', tar, '-C', root, '--numeric-owner', '--xattrs', '--xattrs-include=*']);
      return customiseRoot(root, {
        ...(opts.config ? { config: opts.config } : {}),
        nodeBin,
        out: opts.out,
        testProbe: opts.testProbe ?? false,
      });
    });
    say(`kernel ${kver}, Node ${IMAGE_NODE_VERSION}, kvmux ${packageVersion()}`);
    const squash = join(opts.out, 'root.squashfs');
    await step('squashfs', async () => {
      rmSync(squash, { force: true });
      await execa('mksquashfs', [
        root,
        squash,
        '-noappend',
        '-comp',
        'zstd',
        '-Xcompression-level',
        '6', // level 15 (the default) costs minutes on 2 cores for a few % less
        '-all-time',
        String(epoch),
        '-mkfs-time',
        String(epoch),
        '-reproducible',
        '-quiet',
        '-no-progress',
      ]);
    });
    const squashfsSha256 = await sha256File(squash);
    const squashfsBytes = statSync(squash).size;
    say(`root.squashfs: ${(squashfsBytes / 2 ** 20).toFixed(1)} MiB, sha256 ${squashfsSha256}`);
    const splash = opts.splash ? splashFromPpm(readFileSync(opts.splash)) : defaultSplash();
    const initrd = join(opts.out, 'initrd.img');
    await step('initrd', () =>
      buildInitrd({ root, kver, out: initrd, work: join(work, 'initrd'), epoch, splash }),
    );
    const meta = {
      version: packageVersion(),
      sha256: squashfsSha256,
      size: squashfsBytes,
      installedAt: new Date(epoch * 1000).toISOString(),
    };
    writeFileSync(join(opts.out, 'meta.json'), `${JSON.stringify(meta)}\n`);
    let diskBytes: number | null = null;
    if (opts.disk !== false) {
      const disk = join(opts.out, 'disk.img');
      await step('disk', () =>
        assembleDisk({
          out: disk,
          work: join(work, 'disk'),
          vmlinuz: join(opts.out, 'vmlinuz'),
          initrd,
          squashfs: squash,
          metaJson: join(opts.out, 'meta.json'),
          seed: squashfsSha256,
          cmdline: { tries: opts.tries ?? 3, verify: opts.verify ?? 'sha256' },
        }),
      );
      diskBytes = statSync(disk).size;
    }
    return {
      out: opts.out,
      squashfsBytes,
      squashfsSha256,
      initrdBytes: statSync(initrd).size,
      diskBytes,
      seconds,
      rootCacheHit: hit,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
