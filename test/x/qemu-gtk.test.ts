import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { connectDisplay } from '../../src/x/connection.js';
import { startKioskWm } from '../../src/x/kiosk-wm.js';
import { grab, type RgbImage, screenshot } from '../../src/x/screenshot.js';
import { startXServer, type XServerKind } from '../../src/x/server.js';
import { geometry, testDisplayRange, testLogDir, testVts, waitFor } from '../helpers/x-servers.js';

/**
 * A real QEMU gtk window under the kiosk WM: it must end up full-screen, focused, and showing the
 * guest (SeaBIOS text at the top left once scaled to the screen), not gtk's "Guest has not
 * initialized the display" placeholder, which sits in the middle.
 */
const qemu = '/usr/bin/qemu-system-x86_64';
const haveQemu = existsSync(qemu);
const canXorg = process.getuid?.() === 0 && existsSync('/usr/bin/Xorg');

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

const kinds: Array<[XServerKind, boolean]> = [
  ['xvfb', haveQemu],
  ['xorg', haveQemu && canXorg],
];

describe.each(kinds)('QEMU -display gtk under the kiosk WM on %s', (kind, runnable) => {
  it.runIf(runnable)('is full-screen, focused and shows the guest', { timeout: 60_000 }, async () => {
    const opts = { kind, logDir: testLogDir(), range: testDisplayRange, width: 1024, height: 768 };
    const server = await startXServer(kind === 'xorg' ? { ...opts, vt: testVts[4]! } : opts);
    const wm = await startKioskWm(server.display);
    const args = ['-m', '64', '-nic', 'none', '-monitor', 'none', '-serial', 'none', '-parallel', 'none'];
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
      await screenshot(probe, `${testLogDir()}/qemu-${kind}.png`);
    } finally {
      vm.kill('SIGKILL');
      await vm;
      await probe.close();
      await wm.stop();
      await server.stop();
    }
  });
});
