import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDisplay } from '../../src/x/connection.js';
import { type KioskWm, startKioskWm } from '../../src/x/kiosk-wm.js';
import type { XServer } from '../../src/x/server.js';
import { createXtestSink, fractionToPixel, type XtestSink } from '../../src/x/xtest-sink.js';
import { openClientWindow, startTestXvfb } from '../helpers/x-servers.js';

const KEY_A = 30;
const KEY_LEFTSHIFT = 42;

describe('fractionToPixel', () => {
  it.each([
    [0, 800, 0],
    [1, 800, 799],
    [0.5, 801, 400],
    [-0.2, 800, 0],
    [1.7, 600, 599],
  ])('%f of %i is %i', (f, size, px) => expect(fractionToPixel(f, size)).toBe(px));
});

describe('XTEST sink on Xvfb', () => {
  let server: XServer;
  let wm: KioskWm;
  let sink: XtestSink;

  beforeAll(async () => {
    server = await startTestXvfb({ width: 640, height: 480 });
    wm = await startKioskWm(server.display);
    sink = await createXtestSink(server.display);
  });
  afterAll(async () => {
    await sink?.close();
    await wm?.stop();
    await server?.stop();
  });

  it('delivers keys (linux code + 8) to the focused full-screen window', async () => {
    const win = await openClientWindow(server.display);
    await wm.settle();
    sink.key(KEY_LEFTSHIFT, true);
    sink.key(KEY_A, true);
    sink.key(KEY_A, false);
    sink.key(KEY_LEFTSHIFT, false);
    sink.flush();
    expect(await win.waitKeys(4)).toEqual(['press 50', 'press 38', 'release 38', 'release 50']);
    await win.conn.close();
  });

  it('moves the pointer to absolute fractions and by relative steps', async () => {
    const probe = await connectDisplay(server.display);
    const pointer = async () => {
      await sink.conn.sync();
      const buf = await probe.call<{ rootX: number; rootY: number }>((cb) =>
        probe.client.QueryPointer(probe.root, cb),
      );
      return [buf.rootX, buf.rootY];
    };
    sink.moveAbsolute(0.5, 0.25);
    sink.flush();
    expect(await pointer()).toEqual([320, 120]);
    sink.moveRelative(10, -20);
    sink.flush();
    expect(await pointer()).toEqual([330, 100]);
    await probe.close();
  });

  it('delivers button presses to the window under the pointer', async () => {
    const win = await openClientWindow(server.display);
    await wm.settle();
    sink.moveAbsolute(0.5, 0.5);
    sink.button(1, true);
    sink.button(1, false);
    sink.flush();
    await sink.conn.sync();
    await win.conn.sync();
    await new Promise((r) => setTimeout(r, 100));
    expect(win.buttons).toEqual(['press 1', 'release 1']);
    await win.conn.close();
  });

  it('drops input without throwing once the server is gone', async () => {
    const other = await startTestXvfb();
    const s2 = await createXtestSink(other.display);
    await other.stop();
    await s2.conn.closed;
    expect(() => {
      s2.key(KEY_A, true);
      s2.flush();
    }).not.toThrow();
  });
});
