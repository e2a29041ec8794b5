import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { bootGuest, buildInitramfs, DONE_MARKER, type Guest } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The host has no /dev/input and no uinput, so the real evdev path (EVIOCGNAME/GBIT/GKEY/GLED,
 * EVIOCGRAB, LED writes, hotplug) is exercised inside a Linux guest (Debian kernel, TCG) that runs
 * this same code under the host's node against uinput devices and QEMU's PS/2 keyboard.
 */
const root = join(import.meta.dirname, '..', '..');

function filesUnder(dir: string, prefix: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[join(prefix, relative(dir, p))] = readFileSync(p);
    }
  };
  walk(dir);
  return out;
}

/** node and the shared libraries it links (from ldd), at the same paths in the guest. */
function nodeRuntime(): Record<string, Buffer> {
  const files: Record<string, Buffer> = { '/bin/node': readFileSync(process.execPath) };
  for (const m of execFileSync('ldd', [process.execPath], { encoding: 'utf8' }).matchAll(
    /(\/\S+\.so[.\d]*)/g,
  ))
    files[m[1]!] = readFileSync(m[1]!);
  return files;
}

describe('evdev binding against real kernel input devices (inside a Linux guest)', () => {
  let guest: Guest | undefined;
  const work = tempDir('kvmux-evdev-guest-');
  afterAll(async () => {
    await guest?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('opens, classifies, grabs only with no key down, reads, writes LEDs and follows hotplug', async () => {
    const bundle = join(work, 'main.mjs');
    await build({
      entryPoints: [join(import.meta.dirname, 'guest', 'evdev-guest-main.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: bundle,
      external: ['koffi'],
      logLevel: 'error',
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
    });
    const initrd = await buildInitramfs({
      outDir: work,
      modules: ['evdev', 'uinput'],
      files: {
        ...nodeRuntime(),
        '/app/main.mjs': readFileSync(bundle),
        ...filesUnder(join(root, 'node_modules', 'koffi'), '/app/node_modules/koffi'),
        ...filesUnder(
          join(root, 'node_modules', '@koromix', 'koffi-linux-x64'),
          '/app/node_modules/@koromix/koffi-linux-x64',
        ),
      },
      // The ELF interpreter must be executable; the fixture only marks /bin files so.
      init: 'chmod 755 /lib64/ld-linux-x86-64.so.2; cd /app && /bin/node main.mjs',
    });
    guest = await bootGuest({ initrd, serialLog: join(work, 'serial.log'), memoryMiB: 1024 });
    const log = await guest.waitFor(DONE_MARKER, 150_000);
    const checks = log.split('\n').filter((l) => l.startsWith('CHECK '));
    expect(log, 'the guest script ran to its end').toContain('GUEST-CHECKS-END');
    expect(
      checks.filter((l) => !l.startsWith('CHECK ok')),
      log,
    ).toEqual([]);
    expect(checks.length).toBe(27);
  }, 200_000);
});
