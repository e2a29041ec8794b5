import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDisplay, type XConnection } from '../../src/x/connection.js';
import { type KioskWm, removeFromStack, startKioskWm } from '../../src/x/kiosk-wm.js';
import type { XServer } from '../../src/x/server.js';
import { geometry, openClientWindow, startTestXvfb, waitFor } from '../helpers/x-servers.js';

describe('removeFromStack', () => {
  it.each([
    [[1, 2, 3], 3, [1, 2], 2],
    [[1, 2, 3], 2, [1, 3], 3],
    [[7], 7, [], null],
    [[1, 2], 9, [1, 2], 2],
  ])('%j without %i leaves %j and focuses %s', (stack, wid, rest, focus) => {
    expect(removeFromStack(stack, wid)).toEqual({ stack: rest, focus });
  });
});

describe('kiosk WM started late (e.g. after a kvmux restart)', () => {
  it('takes over windows that were already mapped', async () => {
    const server = await startTestXvfb({ width: 640, height: 480 });
    try {
      const win = await openClientWindow(server.display, 120, 80); // no WM yet: mapped at its own size
      expect((await geometry(win.conn, win.wid)).width).toBe(120);
      const wm = await startKioskWm(server.display);
      await wm.settle();
      expect(wm.windows()).toEqual([win.wid]);
      const g = await geometry(win.conn, win.wid);
      expect([g.xPos, g.yPos, g.width, g.height]).toEqual([0, 0, 640, 480]);
      await win.conn.close();
      await wm.stop();
    } finally {
      await server.stop();
    }
  });
});

describe('kiosk WM onManage (the start timeline\'s "VM window shown")', () => {
  it('is called with each window it maps full-screen, already mapped ones included', async () => {
    const server = await startTestXvfb({ width: 640, height: 480 });
    try {
      const early = await openClientWindow(server.display, 120, 80);
      const managed: number[] = [];
      const wm = await startKioskWm(server.display, { onManage: (wid) => managed.push(wid) });
      const late = await openClientWindow(server.display, 100, 60);
      await waitFor(async () => managed.length === 2, 5000, 'both windows managed');
      expect(managed).toEqual([early.wid, late.wid]);
      await early.conn.close();
      await late.conn.close();
      await wm.stop();
    } finally {
      await server.stop();
    }
  });
});

describe.each(['map-then-resize', 'resize-then-map'] as const)('kiosk WM on Xvfb (%s)', (order) => {
  let server: XServer;
  let wm: KioskWm;
  let probe: XConnection;

  beforeAll(async () => {
    server = await startTestXvfb({ width: 800, height: 600 });
    wm = await startKioskWm(server.display, { order });
    probe = await connectDisplay(server.display);
  });
  afterAll(async () => {
    await probe?.close();
    await wm?.stop();
    await server?.stop();
  });

  const focus = async () =>
    (await probe.call<{ focus: number }>((cb) => probe.client.GetInputFocus(cb))).focus;

  it('makes a plain client window full-screen and gives it the focus', async () => {
    const win = await openClientWindow(server.display, 200, 100);
    await waitFor(async () => (await geometry(probe, win.wid)).width === 800, 5000, 'full-screen width');
    const g = await geometry(probe, win.wid);
    expect([g.xPos, g.yPos, g.width, g.height]).toEqual([0, 0, 800, 600]);
    expect(await focus()).toBe(win.wid);
    expect(wm.focused()).toBe(win.wid);
    await win.conn.close();
  });

  it('forces a window that asks for another size back to full screen', async () => {
    const win = await openClientWindow(server.display, 300, 300);
    await waitFor(async () => (await geometry(probe, win.wid)).width === 800, 5000, 'full-screen');
    win.conn.client.ConfigureWindow(win.wid, { x: 50, y: 40, width: 320, height: 200 });
    await win.conn.sync();
    await wm.settle();
    const g = await geometry(probe, win.wid);
    expect([g.xPos, g.yPos, g.width, g.height]).toEqual([0, 0, 800, 600]);
    await win.conn.close();
  });

  it('focuses the window below when the top one is unmapped, and again when it is re-mapped', async () => {
    const a = await openClientWindow(server.display);
    const b = await openClientWindow(server.display);
    await waitFor(async () => (await focus()) === b.wid, 5000, 'focus on b');
    b.conn.client.UnmapWindow(b.wid);
    await b.conn.sync();
    await waitFor(async () => (await focus()) === a.wid, 5000, 'focus back on a');
    b.conn.client.MapWindow(b.wid);
    await b.conn.sync();
    await waitFor(async () => (await focus()) === b.wid, 5000, 'focus on re-mapped b');
    await b.conn.close(); // destroys b
    await waitFor(async () => (await focus()) === a.wid, 5000, 'focus on a after b died');
    expect(wm.windows()).toEqual([a.wid]);
    await a.conn.close();
  });

  it('leaves override-redirect windows alone', async () => {
    const conn = await connectDisplay(server.display);
    const wid = conn.client.AllocID();
    conn.client.CreateWindow(wid, conn.root, 30, 40, 120, 60, 0, 0, 0, 0, { overrideRedirect: 1 });
    conn.client.MapWindow(wid);
    await conn.sync();
    await wm.settle();
    const g = await geometry(probe, wid);
    expect([g.xPos, g.yPos, g.width, g.height]).toEqual([30, 40, 120, 60]);
    expect(wm.windows()).not.toContain(wid);
    await conn.close();
  });

  it('makes a real xterm full-screen and focused', async () => {
    const xterm = execa('xterm', ['-geometry', '40x10'], {
      env: { ...process.env, DISPLAY: server.display },
      reject: false,
    });
    try {
      await waitFor(() => wm.windows().length === 1, 10_000, 'the xterm window');
      const wid = wm.windows()[0]!;
      await waitFor(async () => (await geometry(probe, wid)).width === 800, 5000, 'full-screen xterm');
      expect((await geometry(probe, wid)).height).toBe(600);
      expect(await focus()).toBe(wid);
    } finally {
      xterm.kill();
      await xterm;
    }
    await waitFor(() => wm.windows().length === 0, 5000, 'xterm gone from the stack');
  });

  it('refuses to start a second WM on the same display', async () => {
    await expect(startKioskWm(server.display)).rejects.toThrow(/another window manager/);
  });
});
