import { describe, expect, it } from 'vitest';
import x11 from 'x11';
import { connectDisplay } from '../../src/x/connection.js';
import { startKioskWm } from '../../src/x/kiosk-wm.js';
import { createOverlay } from '../../src/x/overlay.js';
import { createXtestSink } from '../../src/x/xtest-sink.js';
import { startTestXvfb, testDisplayRange, waitFor } from '../helpers/x-servers.js';

describe('connectDisplay', () => {
  it('rejects with an XError naming the display when nothing listens there', async () => {
    await expect(connectDisplay(`:${testDisplayRange[1]}`)).rejects.toThrow(/^:119: cannot connect/);
  });

  it('survives X errors: a request on a window that does not exist is dropped, the connection lives on', async () => {
    const server = await startTestXvfb();
    try {
      const conn = await connectDisplay(server.display);
      conn.client.MapWindow(0x7fffff); // BadWindow, no callback: goes to the error handler
      conn.client.ChangeGC(0x7ffffe, { foreground: 1 }); // BadGC: logged, not thrown
      await conn.sync();
      await expect(conn.call((cb) => conn.client.GetGeometry(0x7fffff, cb))).rejects.toThrow(
        /BadDrawable|BadWindow/,
      );
      expect(conn.isClosed()).toBe(false);
      await conn.close();
    } finally {
      await server.stop();
    }
  });

  it('keeps delivering events after a handler throws', async () => {
    const server = await startTestXvfb();
    try {
      const conn = await connectDisplay(server.display);
      const seen: string[] = [];
      conn.onEvent((ev) => {
        seen.push(ev.name);
        throw new Error('handler bug');
      });
      conn.client.ChangeWindowAttributes(conn.root, { eventMask: x11.eventMask['SubstructureNotify']! });
      const other = await connectDisplay(server.display);
      for (let i = 0; i < 2; i++)
        other.client.CreateWindow(other.client.AllocID(), other.root, 0, 0, 5, 5, 0, 0, 0, 0, {});
      await other.sync();
      await waitFor(() => seen.length === 2, 5000, 'two CreateNotify events');
      expect(seen).toEqual(['CreateNotify', 'CreateNotify']);
      await other.close();
      await conn.close();
    } finally {
      await server.stop();
    }
  });

  it('resolves closed for every client when the server dies, and pending calls fail instead of hanging', async () => {
    const server = await startTestXvfb();
    const wm = await startKioskWm(server.display);
    const sink = await createXtestSink(server.display);
    const ov = await createOverlay(server.display, { x: 0, y: 0, width: 10, height: 10 });
    ov.map();
    await ov.sync();
    process.kill(server.pid, 'SIGKILL');
    await Promise.all([wm.conn.closed, sink.conn.closed, ov.conn.closed]);
    await expect(wm.conn.sync()).rejects.toThrow(/closed/);
    expect(() => {
      sink.key(30, true);
      sink.flush();
      ov.redraw();
    }).not.toThrow();
    await ov.destroy();
    await wm.stop();
    expect(await server.exited).toMatchObject({ signal: 'SIGKILL' });
  });
});
