import { setTimeout as sleep } from 'node:timers/promises';
import { type KioskWm, startKioskWm } from '../../../src/x/kiosk-wm.js';
import { type RgbImage, screenshot } from '../../../src/x/screenshot.js';
import { startXServer, type XServer } from '../../../src/x/server.js';
import { tempDir } from '../../helpers/temp.js';

/** A real Xvfb on one of this suite's display numbers (:120-:139) with the kiosk WM on it. */
export interface TestDisplay {
  readonly display: string;
  readonly server: XServer;
  readonly wm: KioskWm;
  readonly dir: string;
  stop(): Promise<void>;
}

export async function startTestDisplay(number: number): Promise<TestDisplay> {
  if (number < 120 || number > 139) throw new Error(`display :${number} is outside this suite's :120-:139`);
  const dir = tempDir(`kvmux-session-x${number}-`);
  const server = await startXServer({ kind: 'xvfb', logDir: dir, number, width: 1024, height: 768 });
  const wm = await startKioskWm(server.display);
  return {
    display: server.display,
    server,
    wm,
    dir,
    stop: async () => {
      await wm.stop().catch(() => {});
      await server.stop();
    },
  };
}

/** Share (0..1) of pixels that are exactly `rgb`. */
export function colourShare(img: RgbImage, rgb: readonly [number, number, number]): number {
  let hits = 0;
  const n = img.width * img.height;
  for (let o = 0; o < n * 3; o += 3)
    if (img.rgb[o] === rgb[0] && img.rgb[o + 1] === rgb[1] && img.rgb[o + 2] === rgb[2]) hits++;
  return hits / n;
}

/** Share of bright pixels (the big white or yellow letters: red and green both above 200). */
export function brightShare(img: RgbImage): number {
  let hits = 0;
  const n = img.width * img.height;
  for (let o = 0; o < n * 3; o += 3) if (img.rgb[o]! > 200 && img.rgb[o + 1]! > 200) hits++;
  return hits / n;
}

/** Screenshots `display` into `path` until `rgb` covers at least `minShare` (and `also` holds). */
export async function waitForColour(
  display: string,
  path: string,
  rgb: readonly [number, number, number],
  minShare: number,
  timeoutMs = 30_000,
  also: (img: RgbImage) => boolean = () => true,
): Promise<{ img: RgbImage; share: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const img = await screenshot(display, path);
    const share = colourShare(img, rgb);
    if ((share >= minShare && also(img)) || Date.now() > deadline) return { img, share };
    await sleep(250);
  }
}

/** Pixels that differ between two same-size images in rows [from, to). */
export function changedPixels(a: RgbImage, b: RgbImage, from: number, to: number): number {
  let n = 0;
  for (let o = from * a.width * 3; o < to * a.width * 3; o += 3)
    if (a.rgb[o] !== b.rgb[o] || a.rgb[o + 1] !== b.rgb[o + 1] || a.rgb[o + 2] !== b.rgb[o + 2]) n++;
  return n;
}
