import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type x11 from 'x11';
import { connectDisplay, type XConnection } from '../../src/x/connection.js';
import { type KioskWm, startKioskWm } from '../../src/x/kiosk-wm.js';
import { createOverlay, type Overlay, rgbToPixel } from '../../src/x/overlay.js';
import { distinctColours, pixel, probe, screenIsBlank, screenshot } from '../../src/x/screenshot.js';
import type { XServer } from '../../src/x/server.js';
import { tempDir } from '../helpers/temp.js';
import { openClientWindow, startTestXvfb, waitFor } from '../helpers/x-servers.js';

const hex = (c: { r: number; g: number; b: number }) => (c.r << 16) | (c.g << 8) | c.b;

describe('rgbToPixel', () => {
  it.each([
    [0x123456, { red_mask: 0xff0000, green_mask: 0xff00, blue_mask: 0xff }, 0x123456],
    [0xffffff, { red_mask: 0xf800, green_mask: 0x7e0, blue_mask: 0x1f }, 0xffff],
    [0x808080, { red_mask: 0xf800, green_mask: 0x7e0, blue_mask: 0x1f }, 0x8410],
  ])('%s with masks %j is %s', (rgb, masks, px) => expect(rgbToPixel(rgb, masks)).toBe(px));
});

describe('overlay on Xvfb', () => {
  let server: XServer;
  let wm: KioskWm;
  let probeConn: XConnection;
  let ov: Overlay;

  beforeAll(async () => {
    server = await startTestXvfb({ width: 800, height: 600 });
    wm = await startKioskWm(server.display);
    probeConn = await connectDisplay(server.display);
  });
  afterAll(async () => {
    await ov?.destroy();
    await probeConn?.close();
    await wm?.stop();
    await server?.stop();
  });

  const topChild = async () =>
    (await probeConn.call<x11.Tree>((cb) => probeConn.client.QueryTree(probeConn.root, cb))).children.at(-1);

  it('maps above a full-screen window, and the screenshot shows its rects and text', async () => {
    expect(await screenIsBlank(probeConn)).toBe(true);
    const vm = await openClientWindow(server.display);
    await wm.settle();
    ov = await createOverlay(server.display, {
      x: 100,
      y: 100,
      width: 400,
      height: 120,
      name: 'kvmux menu',
      paint: (o) => {
        o.fillRect(0, 0, o.width, o.height, 0xaa1122);
        o.fillRect(0, 60, o.width, 60, 0x00ff00);
        o.text(10, 10 + o.font.ascent, 'alpha beta', 0xffffff);
      },
    });
    expect(ov.font.name).toContain('fixed-bold');
    expect(ov.textWidth('alpha')).toBe(5 * ov.textWidth('a'));
    ov.map();
    await ov.sync();
    await waitFor(async () => hex((await probe(probeConn, [[450, 200]]))[0]!) === 0x00ff00, 5000, 'painted');
    expect(await topChild()).toBe(ov.wid);

    const path = join(tempDir('kvmux-shot-'), 'overlay.png');
    const img = await screenshot(server.display, path);
    expect(hex(pixel(img, 700, 500))).toBe(0x336699); // the full-screen client
    expect(hex(pixel(img, 450, 110))).toBe(0xaa1122); // overlay top band, right of the text
    expect(hex(pixel(img, 120, 200))).toBe(0x00ff00); // overlay bottom band
    // the text row holds white glyph pixels on the red band
    let white = 0;
    for (let x = 110; x < 110 + ov.textWidth('alpha beta'); x++) {
      for (let y = 110; y < 110 + ov.font.height; y++) if (hex(pixel(img, x, y)) === 0xffffff) white++;
    }
    expect(white).toBeGreaterThan(20);
    expect(distinctColours(img, 4)).toBeGreaterThanOrEqual(4);
    expect(await screenIsBlank(probeConn)).toBe(false);

    // the menu name is readable by other clients
    const name = await probeConn.call<{ data: Buffer }>((cb) =>
      probeConn.client.GetProperty(0, ov.wid, 39, 31, 0, 64, cb),
    );
    expect(name.data.toString('latin1')).toBe('kvmux menu');
    await vm.conn.close();
  });

  it('stays on top when the WM maps and raises a new full-screen window', async () => {
    const late = await openClientWindow(server.display);
    await wm.settle();
    expect(wm.focused()).toBe(late.wid);
    expect(await topChild()).toBe(ov.wid);
    await late.conn.close();
  });

  it('unmaps, and repaints on Expose after a remap', async () => {
    ov.unmap();
    await ov.sync();
    expect(hex((await probe(probeConn, [[120, 200]]))[0]!)).not.toBe(0x00ff00);
    ov.map();
    await ov.sync();
    await waitFor(
      async () => hex((await probe(probeConn, [[120, 200]]))[0]!) === 0x00ff00,
      5000,
      'repainted',
    );
  });

  it('is inert after destroy: drawing and mapping do nothing instead of throwing', async () => {
    const extra = await createOverlay(server.display, { x: 0, y: 0, width: 20, height: 20 });
    await extra.destroy();
    expect(() => {
      extra.map();
      extra.fillRect(0, 0, 5, 5, 0xffffff);
      extra.text(0, 10, 'x', 0xffffff);
      extra.setName('gone');
      extra.flush();
    }).not.toThrow();
  });
});
