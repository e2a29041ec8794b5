import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { connectDisplay } from '../../src/x/connection.js';
import { startKioskWm } from '../../src/x/kiosk-wm.js';
import { grab, type RgbImage, screenshot } from '../../src/x/screenshot.js';
import { startXServer, type XServerKind } from '../../src/x/server.js';
import { createXtestSink } from '../../src/x/xtest-sink.js';
import { loudSkip, whyNoVts } from '../helpers/skips.js';
import { geometry, testDisplayRange, testLogDir, testVts, waitFor } from '../helpers/x-servers.js';

/**
 * A real QEMU gtk window under the kiosk WM: it must end up full-screen, focused, and showing the
 * guest (SeaBIOS text at the top left once scaled to the screen), not gtk's "Guest has not
 * initialized the display" placeholder, which sits in the middle.
 */
const qemu = '/usr/bin/qemu-system-x86_64';
const haveQemu = existsSync(qemu);
const noVts = whyNoVts();
if (!haveQemu) loudSkip('x/qemu-gtk (xvfb and xorg)', `${qemu} missing`);
else if (noVts) loudSkip('x/qemu-gtk on xorg', noVts);

/** Bright pixels in the top-left band where SeaBIOS prints its banner. */
function bannerPixels(img: RgbImage): number {
  let n = 0;
  for (let y = 0; y < 40; y++) {
    for (let x = 0; x < 500; x++) {
      const o = (y * img.width + x) * 3;
      if (img.rgb[o]! > 150 && img.rgb[o + 1]! > 150 && img.rgb[o + 2]! > 150) n++;
    }
  }
  return n;
}

/** A 1 MiB disk whose boot sector echoes every key it reads (int 16h → int 10h teletype). */
function echoDisk(dir: string): string {
  const disk = Buffer.alloc(1 << 20);
  // xor bx,bx; l: mov ah,0; int 16h; mov ah,0eh; int 10h; jmp l
  Buffer.from([0x31, 0xdb, 0xb4, 0x00, 0xcd, 0x16, 0xb4, 0x0e, 0xcd, 0x10, 0xeb, 0xf6]).copy(disk);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  const path = join(dir, 'echo.img');
  writeFileSync(path, disk);
  return path;
}

/** Bright pixels on the whole screen: grows as the guest prints. */
function brightPixels(img: RgbImage): number {
  let n = 0;
  for (let o = 0; o < img.rgb.length; o += 3) if (img.rgb[o]! > 150 && img.rgb[o + 1]! > 150) n++;
  return n;
}

const kinds: Array<[XServerKind, boolean]> = [
  ['xvfb', haveQemu],
  ['xorg', haveQemu && noVts === null],
];

describe.each(kinds)('QEMU -display gtk under the kiosk WM on %s', (kind, runnable) => {
  it.runIf(runnable)(
    'is full-screen, focused, shows the guest and gets XTEST keys',
    { timeout: 60_000 },
    async () => {
      const dir = testLogDir();
      const opts = { kind, logDir: dir, range: testDisplayRange, width: 1024, height: 768 };
      const server = await startXServer(kind === 'xorg' ? { ...opts, vt: testVts[4]! } : opts);
      const wm = await startKioskWm(server.display);
      const args = ['-m', '64', '-nic', 'none', '-monitor', 'none', '-serial', 'none', '-parallel', 'none'];
      args.push('-drive', `file=${echoDisk(dir)},format=raw,if=ide`);
      const vm = execa(qemu, [...args, '-display', 'gtk,full-screen=on,show-menubar=off'], {
        env: { ...process.env, DISPLAY: server.display },
        reject: false,
      });
      const probe = await connectDisplay(server.display);
      try {
        await waitFor(() => wm.windows().length === 1, 20_000, 'the QEMU window');
        const wid = wm.windows()[0]!;
        await waitFor(async () => (await geometry(probe, wid)).width === 1024, 10_000, 'full-screen');
        const focus = await probe.call<{ focus: number }>((cb) => probe.client.GetInputFocus(cb));
        expect(focus.focus).toBe(wid);
        await waitFor(async () => bannerPixels(await grab(probe)) > 200, 30_000, 'SeaBIOS banner on screen');
        // the boot sector runs once SeaBIOS says so; then typed keys appear on screen
        await waitFor(async () => bannerPixels(await grab(probe)) > 400, 30_000, 'Booting from Hard Disk');
        await new Promise((r) => setTimeout(r, 500));
        const before = brightPixels(await grab(probe));
        const sink = await createXtestSink(server.display);
        for (const code of [37, 47, 50, 22, 45, 37, 47, 50, 22, 45]) {
          sink.key(code, true);
          sink.key(code, false);
        }
        sink.flush();
        await waitFor(
          async () => brightPixels(await grab(probe)) > before + 200,
          10_000,
          'typed text on screen',
        );
        await sink.close();
        await screenshot(probe, join(dir, `qemu-${kind}.png`));
      } finally {
        vm.kill('SIGKILL');
        await vm;
        await probe.close();
        await wm.stop();
        await server.stop();
      }
    },
  );
});
