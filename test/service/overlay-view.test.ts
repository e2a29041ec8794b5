import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { initialMenu, type MenuItem } from '../../src/menu/model.js';
import type { LiveDisplay } from '../../src/service/display-runtime.js';
import { MenuController, type MenuView } from '../../src/service/menu-controller.js';
import { createOverlayMenuView } from '../../src/service/overlay-view.js';
import { connectDisplay } from '../../src/x/connection.js';
import { distinctColours, grab } from '../../src/x/screenshot.js';
import { startXServer, type XServer } from '../../src/x/server.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The menu overlay when its X server is gone (real Xvfb from :150): opening the menu then is
 * logged and shows nothing, and never becomes an unhandled rejection (which ends kvmux, exit 70).
 */
const servers: XServer[] = [];
const rejections: unknown[] = [];
const onRejection = (reason: unknown) => void rejections.push(reason);

beforeEach(() => {
  rejections.length = 0;
  process.on('unhandledRejection', onRejection);
});

afterEach(async () => {
  process.off('unhandledRejection', onRejection);
  for (const s of servers.splice(0)) await s.stop().catch(() => {});
});

async function xvfb(number?: number): Promise<XServer> {
  const s = await startXServer({
    kind: 'xvfb',
    logDir: tempDir('kvmux-overlay-view-'),
    range: [150, 229],
    width: 800,
    height: 600,
    ...(number !== undefined ? { number } : {}),
  });
  servers.push(s);
  return s;
}

const items: MenuItem[] = [{ name: 'one', kind: 'vm', state: 'running' }];

function view(server: () => XServer) {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const config = configSchema.parse({ runDir: '/nonexistent', stateDir: tempDir('kvmux-overlay-state-') });
  const v = createOverlayMenuView({
    config,
    log,
    liveDisplay: (name) => ({ name, server: server() }) as unknown as LiveDisplay,
    phrase: () => 'amber falcon',
  });
  return { view: v, lines };
}

function controller(v: MenuView) {
  return new MenuController({
    view: v,
    leds: null,
    items: () => items,
    active: () => 'one',
    ledMask: () => 0,
    choose: () => {},
    setInputCaptured: () => {},
    now: () => 0,
  });
}

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('menu overlay without its X server', () => {
  it('opening the menu after the X server died is logged, shows nothing, and rejects nothing', async () => {
    const server = await xvfb();
    await server.stop();
    const { view: v, lines } = view(() => server);
    await expect(v.showMenu('one', initialMenu())).resolves.toBeNull();
    const c = controller(v);
    c.open();
    await settle();
    expect(c.isOpen).toBe(true);
    c.dismiss();
    expect(lines.some((l) => l.includes('menu could not be shown'))).toBe(true);
    expect(rejections).toEqual([]);
  }, 30_000);

  it('a view that fails leaves no unhandled rejection in the controller', async () => {
    const failing: MenuView = {
      showMenu: () => Promise.reject(new Error('X server gone')),
      redrawMenu: () => {},
      showAsk: () => {},
      hide: () => {},
    };
    const c = controller(failing);
    c.open();
    await settle();
    c.dismiss();
    expect(c.isOpen).toBe(false);
    expect(rejections).toEqual([]);
  });

  it('after its X server restarts on the same display number the menu is drawn on the new one', async () => {
    let server = await xvfb();
    const { view: v } = view(() => server);
    const c = controller(v);
    c.open();
    await settle();
    c.dismiss();
    const number = server.number;
    await server.stop();
    server = await xvfb(number);
    c.open();
    await settle();
    const conn = await connectDisplay(server.display);
    try {
      expect(distinctColours(await grab(conn), 4)).toBeGreaterThanOrEqual(2);
    } finally {
      await conn.close();
      c.dismiss();
    }
    expect(rejections).toEqual([]);
  }, 30_000);
});
