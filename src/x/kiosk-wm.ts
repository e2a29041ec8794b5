import x11 from 'x11';
import { XError } from '../util/errors.js';
import { silentLogger } from '../util/log.js';
import { type ConnectOptions, connectDisplay, type XConnection } from './connection.js';

/**
 * Kiosk window manager, one per display: SubstructureRedirect on the root, and every top-level
 * window becomes full-screen, raised and focused. Override-redirect windows (the menu overlay) are
 * never redirected, so they are left alone. X events go through a handler table (dwm style).
 */
export interface KioskWm {
  display: string;
  conn: XConnection;
  /** Managed windows, bottom to top; the last one has the focus. */
  windows(): readonly number[];
  focused(): number | null;
  /** Resolves after every event so far has been handled (tests: "the WM has seen it"). */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

export interface KioskWmOptions extends ConnectOptions {
  /**
   * 'map-then-resize' (default): map at the client's size, then make it full-screen — QEMU gtk
   * stayed on "Guest has not initialized the display" behind a WM that resized at MapRequest.
   * 'resize-then-map' is the classic order.
   */
  order?: 'map-then-resize' | 'resize-then-map';
}

const RevertToPointerRoot = 1;
const PointerRoot = 1;
const NormalState = 1;
const WithdrawnState = 0;

/** Pure: the window to focus after `wid` leaves the stack (the topmost remaining one). */
export function removeFromStack(
  stack: readonly number[],
  wid: number,
): { stack: number[]; focus: number | null } {
  const next = stack.filter((w) => w !== wid);
  return { stack: next, focus: next.at(-1) ?? null };
}

type Handler = (ev: x11.XEvent) => void;

export async function startKioskWm(display: string, opts: KioskWmOptions = {}): Promise<KioskWm> {
  const log = opts.log ?? silentLogger;
  const conn = await connectDisplay(display, opts);
  const { client, root } = conn;
  const order = opts.order ?? 'map-then-resize';
  let stack: number[] = [];
  // mapped override-redirect windows (overlays): kept above every window the WM raises
  const overlays = new Set<number>();
  const wmState = await conn.atom('WM_STATE');

  const fullScreen = (wid: number) =>
    client.ConfigureWindow(wid, { x: 0, y: 0, width: conn.width, height: conn.height, borderWidth: 0 });
  const setState = (wid: number, state: number) =>
    client.ChangeProperty(0, wid, wmState, wmState, 32, [state, 0]);
  const focus = (wid: number | null) => {
    if (wid === null) return client.SetInputFocus(PointerRoot, RevertToPointerRoot);
    client.RaiseWindow(wid);
    for (const o of overlays) client.RaiseWindow(o);
    client.SetInputFocus(wid, RevertToPointerRoot);
  };
  // ICCCM 4.1.5: a client whose request was not honoured as asked still gets a ConfigureNotify
  const tellGeometry = (wid: number) => {
    const ev = { name: 'ConfigureNotify', seq: 0, wid, wid1: wid, aboveSibling: 0, x: 0, y: 0 };
    const raw = x11.packEvent({ ...ev, width: conn.width, height: conn.height, borderWidth: 0 });
    client.SendEvent(wid, 0, x11.eventMask['StructureNotify']!, raw);
  };
  const manage = (wid: number) => {
    stack = [...stack.filter((w) => w !== wid), wid];
    client.ChangeWindowAttributes(wid, { eventMask: x11.eventMask['StructureNotify']! });
    if (order === 'resize-then-map') fullScreen(wid);
    client.MapWindow(wid);
    if (order === 'map-then-resize') fullScreen(wid);
    setState(wid, NormalState);
    focus(wid);
    log.debug({ display, wid }, 'wm: managed window');
  };
  const forget = (wid: number) => {
    if (!stack.includes(wid)) return;
    const { stack: next, focus: top } = removeFromStack(stack, wid);
    const wasFocused = stack.at(-1) === wid;
    stack = next;
    if (wasFocused) focus(top);
  };
  const handlers: Record<string, Handler> = {
    MapRequest: (ev) => manage(ev.wid),
    ConfigureRequest: (ev) => {
      fullScreen(ev.wid);
      tellGeometry(ev.wid);
    },
    MapNotify: (ev) => {
      if (ev.event === root && ev.overrideRedirect) overlays.add(ev.wid);
    },
    UnmapNotify: (ev) => {
      if (ev.event !== root) return;
      overlays.delete(ev.wid);
      if (stack.includes(ev.wid)) setState(ev.wid, WithdrawnState);
      forget(ev.wid);
    },
    DestroyNotify: (ev) => {
      if (ev.event !== root) return;
      overlays.delete(ev.wid);
      forget(ev.wid);
    },
  };
  conn.onEvent((ev) => handlers[ev.name]?.(ev));

  await selectRedirect(conn);
  await adoptExisting(conn, manage);
  return {
    display,
    conn,
    windows: () => stack,
    focused: () => stack.at(-1) ?? null,
    settle: () => conn.sync(),
    stop: () => conn.close(),
  };
}

/** Only one client may select SubstructureRedirect: BadAccess means another WM runs there. */
async function selectRedirect(conn: XConnection): Promise<void> {
  const mask = x11.eventMask['SubstructureRedirect']! | x11.eventMask['SubstructureNotify']!;
  try {
    await conn.call<undefined>((cb) =>
      conn.client.ChangeWindowAttributes(conn.root, { eventMask: mask }, cb),
    );
  } catch (err) {
    await conn.close();
    throw new XError(conn.display, 'another window manager is running (SubstructureRedirect taken)', {
      cause: err,
    });
  }
}

/** Windows already mapped when the WM starts (e.g. after a kvmux restart) are managed too. */
async function adoptExisting(conn: XConnection, manage: (wid: number) => void): Promise<void> {
  const tree = await conn.call<x11.Tree>((cb) => conn.client.QueryTree(conn.root, cb));
  for (const wid of tree.children) {
    try {
      const attrs = await conn.call<x11.WindowAttributes>((cb) => conn.client.GetWindowAttributes(wid, cb));
      if (!attrs.overrideRedirect && attrs.mapState === 2 /* Viewable */) manage(wid);
    } catch {
      // destroyed while we looked: nothing to manage
    }
  }
}
