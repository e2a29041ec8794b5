import x11 from 'x11';
import { errText, XError } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/log.js';

/**
 * One X client connection with an error handler always installed: an unhandled 'error' event
 * would kill kvmux, and an X server may die at any time. Races on windows that vanished
 * (BadWindow, BadDrawable, BadMatch on a destroyed window) are expected and dropped; other X
 * errors are logged; a lost connection resolves `closed` and never throws.
 */
export interface XConnection {
  display: string;
  client: x11.XClient;
  screen: x11.Screen;
  root: number;
  width: number;
  height: number;
  /** Resolves once the connection is gone (server died or close() was called). */
  closed: Promise<void>;
  /** True once the server went away or close() was called: send nothing more. */
  isClosed(): boolean;
  /** Subscribe to X events; a throwing handler is logged, never allowed to kill kvmux. */
  onEvent(handler: (ev: x11.XEvent) => void): void;
  /** A request with a reply, as a promise; X errors reject with an XError naming the display. */
  call<T>(request: (cb: x11.Callback<T>) => void): Promise<T>;
  /** Interned atom (cached per connection). */
  atom(name: string): Promise<number>;
  /** Round trip: every request so far has been processed (errors delivered). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** X error codes that are races with other clients' windows, not bugs. */
const expectedErrors = new Set([3 /* BadWindow */, 8 /* BadMatch */, 9 /* BadDrawable */]);
export const xErrorNames: Record<number, string> = {
  1: 'BadRequest',
  2: 'BadValue',
  3: 'BadWindow',
  5: 'BadAtom',
  7: 'BadFont',
  8: 'BadMatch',
  9: 'BadDrawable',
  10: 'BadAccess',
  11: 'BadAlloc',
  14: 'BadIDChoice',
  16: 'BadLength',
};

export function isXProtocolError(err: unknown): err is x11.XProtocolError {
  return typeof err === 'object' && err !== null && typeof (err as { error?: unknown }).error === 'number';
}

export interface ConnectOptions {
  log?: Logger;
  /** Keep retrying a missing socket for this long (default 0: one attempt). */
  timeoutMs?: number;
  /** Batch requests until the end of the tick (x11 `bufferRequests`); used by the XTEST sink. */
  bufferRequests?: boolean;
}

function connectOnce(display: string, opts: ConnectOptions): Promise<x11.XClient> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const client = x11.createClient(
      { display, bufferRequests: opts.bufferRequests ?? false, shm: false },
      (err: Error | undefined) => {
        if (settled) return;
        settled = true;
        if (err) reject(new XError(display, `cannot connect: ${err.message}`, { cause: err }));
        else resolve(client);
      },
    );
    // installed before anything can fail: errors during setup go to the init callback or here
    client.on('error', (err: Error) => {
      if (settled) return;
      settled = true;
      reject(new XError(display, `cannot connect: ${err.message}`, { cause: err }));
    });
  });
}

export async function connectDisplay(display: string, opts: ConnectOptions = {}): Promise<XConnection> {
  const deadline = Date.now() + (opts.timeoutMs ?? 0);
  for (;;) {
    try {
      return wrap(display, await connectOnce(display, opts), opts.log ?? silentLogger);
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function wrap(display: string, client: x11.XClient, log: Logger): XConnection {
  const screen = client.display.screen[0]!;
  let isClosed = false;
  let markClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  const onGone = () => {
    isClosed = true;
    markClosed();
  };
  client.removeAllListeners('error');
  client.on('error', (err: Error) => {
    if (isXProtocolError(err)) {
      if (expectedErrors.has(err.error)) return;
      const kind = xErrorNames[err.error] ?? `error ${err.error}`;
      log.warn({ display, major: err.majorOpcode, minor: err.minorOpcode, bad: err.badParam }, `X ${kind}`);
      return;
    }
    log.warn({ display, err: err.message }, 'X connection error');
    onGone();
  });
  client.on('end', onGone);
  client.stream.on('close', onGone);
  const atoms = new Map<string, Promise<number>>();
  const call = <T>(request: (cb: x11.Callback<T>) => void): Promise<T> => {
    if (isClosed) return Promise.reject(new XError(display, 'connection is closed'));
    return new Promise<T>((resolve, reject) => {
      request((err, value) => {
        if (err) reject(new XError(display, `X request failed: ${describe(err)}`, { cause: err }));
        else resolve(value);
        return true;
      });
      // a dead server never answers: fail the pending call instead of hanging
      void closed.then(() => reject(new XError(display, 'connection closed')));
    });
  };
  const atom = (name: string) => {
    let a = atoms.get(name);
    if (!a) {
      a = call<number>((cb) => client.InternAtom(false, name, cb));
      atoms.set(name, a);
    }
    return a;
  };
  const close = async () => {
    if (isClosed) return;
    // from here on requests would throw ('client is in closing state'): callers check isClosed()
    isClosed = true;
    client.terminate();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    onGone();
  };
  const onEvent = (handler: (ev: x11.XEvent) => void) => {
    client.on('event', (ev: x11.XEvent) => {
      if (isClosed) return;
      try {
        handler(ev);
      } catch (err) {
        log.warn({ display, event: ev.name, err: errText(err) }, 'X event handler failed');
      }
    });
  };
  const sync = () => call<unknown>((cb) => client.GetInputFocus(cb)).then(() => undefined);
  const { root, pixel_width: width, pixel_height: height } = screen;
  return {
    display,
    client,
    screen,
    root,
    width,
    height,
    closed,
    isClosed: () => isClosed,
    onEvent,
    call,
    atom,
    sync,
    close,
  };
}

function describe(err: unknown): string {
  if (isXProtocolError(err))
    return `${xErrorNames[err.error] ?? `error ${err.error}`} (major ${err.majorOpcode})`;
  return errText(err);
}
