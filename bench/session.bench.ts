import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { vmSchema } from '../src/config/schema.js';
import { DEMO_PALETTE, writeDemoDisk } from '../src/demo/demo-disk.js';
import type { Backend, VmHandle } from '../src/session/backends/backend.js';
import { createQemuBackend, kvmUsable } from '../src/session/backends/qemu.js';
import { connectDisplay, type XConnection } from '../src/x/connection.js';
import { startKioskWm } from '../src/x/kiosk-wm.js';
import { grab, type RgbImage } from '../src/x/screenshot.js';
import { startXServer } from '../src/x/server.js';
import { fourVms } from './session-four-vms.js';
import { summarize } from './stats.js';

/**
 * QEMU process start → first non-black pixels on its display (its window is up) and → the guest's
 * boot-sector picture (SeaBIOS done, guest drew its screen); plus the RSS of the running QEMUs.
 * Xvfb :125 behind the kiosk WM, boot-sector disks, 64 MiB guests. Then four VMs at once (:130-:133):
 * total RSS and idle CPU.
 */
const RUNS = 3;
/** kvm here is kvm_pvm, where SeaBIOS is slow (~4-5 s); TCG reaches the boot sector in ~0.4 s. */
const ACCELS = ['kvm', 'tcg'] as const;

function share(img: RgbImage, pred: (r: number, g: number, b: number) => boolean): number {
  let hits = 0;
  for (let o = 0; o < img.rgb.length; o += 3) if (pred(img.rgb[o]!, img.rgb[o + 1]!, img.rgb[o + 2]!)) hits++;
  return hits / (img.width * img.height);
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-session-bench-'));
  const server = await startXServer({ kind: 'xvfb', logDir: dir, number: 125 });
  const wm = await startKioskWm(server.display);
  const conn = await connectDisplay(server.display);
  const backend = createQemuBackend();
  const out: Record<string, unknown> = {};
  try {
    for (const accel of ACCELS) {
      if (accel === 'kvm' && !kvmUsable()) continue;
      out[accel] = await measure(accel, dir, server.display, conn, backend);
    }
    for (const accel of ACCELS) {
      if (accel === 'kvm' && !kvmUsable()) continue;
      out[`fourVms-${accel}`] = await fourVms(accel, dir, backend);
    }
  } finally {
    await conn.close();
    await wm.stop().catch(() => {});
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    ...out,
    note: 'boot-sector guest, 64 MiB, -display gtk behind the kiosk WM on Xvfb; SeaBIOS dominates the guest-screen time',
  };
}

async function measure(
  accel: 'kvm' | 'tcg',
  dir: string,
  display: string,
  conn: XConnection,
  backend: Backend,
): Promise<Record<string, unknown>> {
  const firstPixels: number[] = [];
  const guestScreen: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const colour = DEMO_PALETTE[i % DEMO_PALETTE.length]!;
    const disk = writeDemoDisk(join(dir, `vm${i}.img`), { text: `bench-${i}`, colour: i });
    const vm = vmSchema.parse({ name: `bench-${i}`, backend: 'qemu', qemu: { disk, memoryMiB: 64, accel } });
    const vmDir = join(dir, 'vm', vm.name);
    mkdirSync(vmDir, { recursive: true });
    const t0 = performance.now();
    const h: VmHandle = await backend.start(vm, {
      display,
      vmDir,
      width: 1024,
      height: 768,
      taps: [],
    });
    let seenPixels = false;
    for (let waited = 0; waited < 60_000; waited = performance.now() - t0) {
      const img = await grab(conn);
      if (!seenPixels && share(img, (r, g, b) => r + g + b > 0) > 0) {
        firstPixels.push(performance.now() - t0);
        seenPixels = true;
      }
      const [r, g, b] = colour.rgb;
      if (share(img, (x, y, z) => x === r && y === g && z === b) > 0.3) {
        guestScreen.push(performance.now() - t0);
        break;
      }
      await sleep(20);
    }
    rss.push(rssKiB(h.pid) / 1024);
    await h.stop({ force: true });
    await sleep(200);
  }
  return {
    qemuStartToFirstPixelsMs: summarize(firstPixels, 0),
    qemuStartToGuestScreenMs: summarize(guestScreen, 0),
    qemuRssMiB: summarize(rss, 1),
  };
}
