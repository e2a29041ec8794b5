import type x11 from 'x11';
import type { DisplaySink } from '../input/sink.js';
import { XError } from '../util/errors.js';
import { type ConnectOptions, connectDisplay, type XConnection } from './connection.js';

/**
 * The router's real output: XTEST FakeInput into one display. Requests are batched (x11
 * `bufferRequests`) and written on flush(), once per input batch, so an event costs a buffer
 * copy, not a syscall. After the server is gone every call is a no-op: input to a dead display
 * is dropped, never thrown.
 */
export interface XtestSink extends DisplaySink {
  display: string;
  conn: XConnection;
  close(): Promise<void>;
}

const KeyPress = 2;
const KeyRelease = 3;
const ButtonPress = 4;
const ButtonRelease = 5;
const MotionNotify = 6;

const clamp16 = (v: number) => Math.max(-32768, Math.min(32767, Math.round(v)));

/** Pure: absolute pointer position in pixels for a screen fraction (0..1 each axis). */
export function fractionToPixel(f: number, size: number): number {
  return Math.max(0, Math.min(size - 1, Math.round(f * (size - 1))));
}

function requireXtest(conn: XConnection): Promise<x11.XTestExt> {
  return new Promise((resolve, reject) => {
    conn.client.require('xtest', (err, ext) => {
      if (err || !ext) reject(new XError(conn.display, 'XTEST extension missing', { cause: err }));
      else resolve(ext);
    });
  });
}

export async function createXtestSink(display: string, opts: ConnectOptions = {}): Promise<XtestSink> {
  const conn = await connectDisplay(display, { bufferRequests: true, ...opts });
  const xt = await requireXtest(conn);
  const { min_keycode: minKey, max_keycode: maxKey } = conn.client.display;
  const fake = (type: number, detail: number, x = 0, y = 0) => {
    if (!conn.isClosed()) xt.FakeInput(type, detail, 0, 0, x, y);
  };
  return {
    display,
    conn,
    key(code, down) {
      const keycode = code + 8;
      if (keycode < minKey || keycode > maxKey) return;
      fake(down ? KeyPress : KeyRelease, keycode);
    },
    button(button, down) {
      fake(down ? ButtonPress : ButtonRelease, button);
    },
    moveRelative(dx, dy) {
      fake(MotionNotify, 1, clamp16(dx), clamp16(dy));
    },
    moveAbsolute(fx, fy) {
      fake(MotionNotify, 0, fractionToPixel(fx, conn.width), fractionToPixel(fy, conn.height));
    },
    flush() {
      if (!conn.isClosed()) conn.client.pack_stream.flush();
    },
    close: () => conn.close(),
  };
}
