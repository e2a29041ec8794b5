import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { initScript, SLOTS_SH, SPLASH_SH } from './initrd-init.js';
import { INITRD_MODULES } from './layout.js';
import type { Splash } from './splash.js';

/**
 * The kernel modules to insmod, dependencies first, each once: `modprobe --show-depends` against the
 * root's own /lib/modules (so they match the kernel shipped beside it). Built-in ones need nothing.
 */
export async function moduleLoadOrder(
  root: string,
  kver: string,
  modules: readonly string[],
): Promise<string[]> {
  const order: string[] = [];
  for (const m of modules) {
    const r = await execa('modprobe', ['-d', root, '-S', kver, '--show-depends', m], { reject: false });
    if (r.exitCode !== 0)
      throw new Error(`module ${m} not found for kernel ${kver}: ${String(r.stderr).trim()}`);
    for (const line of String(r.stdout).split('\n')) {
      const full = /^insmod (\S+)/.exec(line.trim())?.[1];
      // modprobe -d prints the root's prefix: keep the path as the booted system sees it
      const path = full?.startsWith(root) ? full.slice(root.length).replace(/^\/*/, '/') : full;
      if (path && !order.includes(path)) order.push(path);
    }
  }
  return order;
}

export interface InitrdOptions {
  root: string;
  kver: string;
  out: string;
  work: string;
  epoch: number;
  splash: Splash;
}

/** initrd.img: busybox (from the root), /init, the slot logic, the storage modules, the splash. */
export async function buildInitrd(o: InitrdOptions): Promise<void> {
  const w = o.work;
  for (const d of ['bin', 'lib/kvmux', 'proc', 'sys', 'dev', 'run', 'tmp'])
    mkdirSync(join(w, d), { recursive: true });
  copyFileSync(join(o.root, 'bin/busybox'), join(w, 'bin/busybox'));
  chmodSync(join(w, 'bin/busybox'), 0o755);
  writeFileSync(join(w, 'init'), initScript(), { mode: 0o755 });
  writeFileSync(join(w, 'lib/kvmux/slots.sh'), SLOTS_SH, { mode: 0o644 });
  writeFileSync(join(w, 'lib/kvmux/splash.sh'), SPLASH_SH, { mode: 0o644 });
  const modules = await moduleLoadOrder(o.root, o.kver, INITRD_MODULES);
  for (const m of modules) {
    mkdirSync(dirname(join(w, m)), { recursive: true });
    copyFileSync(join(o.root, m), join(w, m));
  }
  writeFileSync(join(w, 'lib/kvmux/modules.order'), `${modules.join('\n')}\n`);
  writeFileSync(join(w, 'splash.raw'), o.splash.bgra);
  writeFileSync(join(w, 'splash.size'), `${o.splash.width} ${o.splash.height}\n`);
  // reproducible cpio: sorted names, one mtime, no inode/device numbers from the build host
  await execa('find', ['.', '-exec', 'touch', '-h', '-d', `@${o.epoch}`, '{}', '+'], { cwd: w });
  await execa(
    'sh',
    [
      '-c',
      'find . -mindepth 1 -printf "%P\\n" | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet | gzip -n -9 > "$0"',
      o.out,
    ],
    { cwd: w },
  );
}
