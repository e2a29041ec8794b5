import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type x11 from 'x11';
import { PALETTE, type Rect } from '../../src/menu/layout.js';
import { initialMenu, type MenuItem, type MenuState, menuStep } from '../../src/menu/model.js';
import { MENU_WINDOW_NAME, OverlayMenu } from '../../src/menu/overlay-menu.js';
import { connectDisplay, type XConnection } from '../../src/x/connection.js';
import { type KioskWm, startKioskWm } from '../../src/x/kiosk-wm.js';
import { encodePng, grab, pixel, type RgbImage } from '../../src/x/screenshot.js';
import { startXServer, type XServer } from '../../src/x/server.js';
import { shotsDir, tempDir } from '../helpers/temp.js';

/**
 * The switcher overlay on a real Xvfb (display numbers :140-:159 are the menu's), above a
 * full-screen client window managed by the kiosk WM. Pixels are checked at the layout's own
 * rectangles; the PNGs are kept in $KVMUX_TEST_SHOTS when set (kvmux-menu-overlay*.png).
 */
const shots = shotsDir('kvmux-menu-shots-');
const PHRASE = 'amber otter quill 42';
const VM_COLOUR = 0x336699;
const items: MenuItem[] = [
  { name: 'alpha', kind: 'vm', state: 'running' },
  { name: 'beta', kind: 'vm', state: 'stopped' },
  { name: 'gamma', kind: 'vm', state: 'crashed' },
  { name: 'admin', kind: 'admin', state: 'running' },
];

const hex = (img: RgbImage, x: number, y: number) => {
  const p = pixel(img, x, y);
  return (p.r << 16) | (p.g << 8) | p.b;
};

/** Pixels of colour `rgb` inside `r` (window pixels, offset by the window origin). */
function count(img: RgbImage, origin: { x: number; y: number }, r: Rect, rgb: number): number {
  let n = 0;
  for (let y = r.y; y < r.y + r.height; y++)
    for (let x = r.x; x < r.x + r.width; x++) if (hex(img, origin.x + x, origin.y + y) === rgb) n++;
  return n;
}

describe('menu overlay on Xvfb', () => {
  let dir: string;
  let server: XServer;
  let wm: KioskWm;
  let client: XConnection;
  let vmWindow: number;
  let menu: OverlayMenu;
  let state: MenuState;

  beforeAll(async () => {
    dir = tempDir('kvmux-menu-x-');
    server = await startXServer({ kind: 'xvfb', logDir: dir, range: [140, 159], width: 1024, height: 768 });
    wm = await startKioskWm(server.display);
    client = await connectDisplay(server.display);
    vmWindow = client.client.AllocID();
    client.client.CreateWindow(vmWindow, client.root, 10, 10, 200, 100, 0, 0, 0, 0, {
      backgroundPixel: VM_COLOUR,
    });
    client.client.MapWindow(vmWindow);
    await client.sync();
    await wm.settle();
    menu = await OverlayMenu.create({ display: server.display, phrase: PHRASE });
    state = menuStep(initialMenu(items), { kind: 'open', active: 'beta' }).state;
  });

  afterAll(async () => {
    await menu?.destroy();
    await client?.close();
    await wm?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the VM window is full-screen before the menu opens, and the menu window starts unmapped', async () => {
    const g = await client.call<x11.Geometry>((cb) => client.client.GetGeometry(vmWindow, cb));
    expect([g.width, g.height]).toEqual([1024, 768]);
    expect(menu.overlay.isMapped()).toBe(false);
  });

  it('maps an override-redirect window named "kvmux menu" above the full-screen VM window', async () => {
    menu.open(state);
    await menu.overlay.sync();
    const tree = await client.call<x11.Tree>((cb) => client.client.QueryTree(client.root, cb));
    const top = tree.children.at(-1);
    expect(top).toBe(menu.overlay.wid);
    expect(tree.children.indexOf(menu.overlay.wid)).toBeGreaterThan(tree.children.indexOf(vmWindow));
    const attrs = await client.call<x11.WindowAttributes>((cb) =>
      client.client.GetWindowAttributes(menu.overlay.wid, cb),
    );
    expect(attrs.mapState).toBe(2); // IsViewable
    expect(attrs.overrideRedirect).toBe(1);
    const wmName = await client.atom('WM_NAME');
    const prop = await client.call<{ data: Buffer }>((cb) =>
      client.client.GetProperty(0, menu.overlay.wid, wmName, 0, 0, 100, cb),
    );
    expect(prop.data.toString('latin1')).toBe(MENU_WINDOW_NAME);
    const g = await client.call<x11.Geometry>((cb) => client.client.GetGeometry(menu.overlay.wid, cb));
    expect({ x: g.xPos, y: g.yPos, w: g.width, h: g.height }).toEqual({
      x: menu.layout!.window.x,
      y: menu.layout!.window.y,
      w: menu.layout!.window.width,
      h: menu.layout!.window.height,
    });
  });

  it('the screenshot shows the frame, every item with its badge, the highlight and the phrase', async () => {
    const img = await grab(client);
    writeFileSync(join(shots, 'kvmux-menu-overlay.png'), encodePng(img));
    const l = menu.layout!;
    const o = { x: l.window.x, y: l.window.y };
    expect(hex(img, 5, 5)).toBe(VM_COLOUR); // the VM still shows around the menu
    expect(hex(img, o.x + 1, o.y + l.window.height - 2)).toBe(PALETTE.border);
    expect(count(img, o, l.parts['title']!, PALETTE.titleFg)).toBeGreaterThan(20); // "kvmux" drawn
    expect(count(img, o, l.parts['phrase']!, PALETTE.phrase)).toBeGreaterThan(PHRASE.length * 5);
    expect(count(img, o, l.parts['footer']!, PALETTE.dim)).toBeGreaterThan(100);
    const metrics = menu.metrics;
    for (const row of l.rows) {
      const selected = row.name === 'beta';
      expect(hex(img, o.x + row.x + 2, o.y + row.y + 2)).toBe(selected ? PALETTE.selBg : PALETTE.bg);
      // The name column starts after the 2-char padding and the 3-char number column.
      const cw = metrics.charWidth;
      const nameRect: Rect = { x: row.x + 5 * cw, y: row.y, width: row.name.length * cw, height: row.height };
      expect(count(img, o, nameRect, selected ? PALETTE.selFg : PALETTE.text)).toBeGreaterThan(
        row.name.length * 5,
      );
      const item = items.find((i) => i.name === row.name)!;
      const badge = l.parts[`badge:${row.name}`]!;
      const badgeColour = item.kind === 'admin' ? PALETTE['badge-unknown'] : PALETTE[`badge-${item.state}`];
      expect(hex(img, o.x + badge.x + 1, o.y + badge.y + 1)).toBe(badgeColour);
      expect(count(img, o, badge, PALETTE.badgeFg)).toBeGreaterThan(20); // the badge's label
    }
  });

  it('repaints the highlight when the selection moves', async () => {
    const r = menuStep(state, { kind: 'key', code: 108 /* down */, value: 1 });
    expect(r.actions).toEqual([{ kind: 'redraw' }]);
    menu.update(r.state);
    await menu.overlay.sync();
    const img = await grab(client);
    const l = menu.layout!;
    const row = (name: string) => l.rows.find((x) => x.name === name)!;
    expect(hex(img, l.window.x + row('gamma').x + 2, l.window.y + row('gamma').y + 2)).toBe(PALETTE.selBg);
    expect(hex(img, l.window.x + row('beta').x + 2, l.window.y + row('beta').y + 2)).toBe(PALETTE.bg);
  });

  it('shows the ask dialog in the same window, then unmaps on close', async () => {
    menu.ask({ id: '1', from: 'alpha', method: 'vm.stop', params: { name: 'beta' } });
    await menu.overlay.sync();
    let img = await grab(client);
    writeFileSync(join(shots, 'kvmux-menu-overlay-ask.png'), encodePng(img));
    const l = menu.layout!;
    const o = { x: l.window.x, y: l.window.y };
    expect(count(img, o, l.parts['question']!, PALETTE.text)).toBeGreaterThan(100);
    expect(hex(img, o.x + 1, o.y + 1)).toBe(PALETTE.border);
    menu.close();
    await menu.overlay.sync();
    expect(menu.layout).toBeNull();
    img = await grab(client);
    expect(hex(img, o.x + 1, o.y + 1)).toBe(VM_COLOUR);
    expect(hex(img, 512, 384)).toBe(VM_COLOUR);
  });
});
