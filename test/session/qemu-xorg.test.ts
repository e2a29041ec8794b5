import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmSchema } from '../../src/config/schema.js';
import { DEMO_PALETTE, writeDemoDisk } from '../../src/demo/demo-disk.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import { type KioskWm, startKioskWm } from '../../src/x/kiosk-wm.js';
import { startXServer, type XServer } from '../../src/x/server.js';
import { loudSkip, whyNoVts } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import { lockVts } from '../helpers/x-servers.js';
import { brightShare, waitForColour } from './helpers/display.js';

/** Both QEMU display front-ends render behind the kiosk WM on a real Xorg (dummy driver) on vt25. */
const dir = tempDir('kvmux-qemu-xorg-');
const activeVt = () => readFileSync('/sys/class/tty/tty0/active', 'utf8').trim();
let lock: { release(): Promise<void> };
let server: XServer;
let wm: KioskWm;
let before = '';

const noVts = whyNoVts();
if (noVts) loudSkip('session/qemu-xorg', noVts);

beforeAll(async () => {
  if (noVts) return;
  lock = await lockVts();
  before = activeVt();
  server = await startXServer({ kind: 'xorg', vt: 25, number: 127, logDir: dir });
  wm = await startKioskWm(server.display);
});

afterAll(async () => {
  await wm?.stop().catch(() => {});
  await server?.stop();
  await lock?.release();
});

describe.skipIf(noVts !== null)('qemu on Xorg (dummy) behind the kiosk WM', () => {
  it.each([
    ['gtk', 2],
    ['sdl', 3],
  ] as const)('-display %s shows the guest full-screen', async (display, colour) => {
    const disk = writeDemoDisk(join(dir, `${display}.img`), { text: display, colour });
    const vm = vmSchema.parse({
      name: display,
      backend: 'qemu',
      qemu: { disk, memoryMiB: 64, display, accel: 'tcg' },
    });
    const vmDir = join(dir, display);
    mkdirSync(vmDir, { recursive: true });
    const h = await createQemuBackend().start(vm, {
      display: server.display,
      vmDir,
      width: 1024,
      height: 768,
      taps: [],
    });
    try {
      const { img, share } = await waitForColour(
        server.display,
        join(dir, `${display}.png`),
        DEMO_PALETTE[colour]!.rgb,
        0.3,
        30_000,
        (shot) => brightShare(shot) > 0.02,
      );
      expect(share).toBeGreaterThan(0.3);
      expect(brightShare(img)).toBeGreaterThan(0.02);
    } finally {
      await h.stop({ force: true });
    }
    expect(activeVt()).toBe(before);
  });
});
