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
  /** Resolves once every event the server sent so far has been handled and acted on (tests). */
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
  /** Called when a top-level window is managed (mapped full-screen): the start-up timeline's "VM window shown". */
  onManage?: (wid: number) => void;
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

/** What the WM knows: managed windows bottom to top, and mapped override-redirect windows. */
interface WmState {
  stack: number[];
  // overlays (the menu): kept above every window the WM raises
  overlays: Set<number>;
}

type Verbs = ReturnType<typeof wmVerbs>;

/** The WM's small actions on the server (dwm style verbs). */
function wmVerbs(conn: XConnection, st: WmState, wmState: number, opts: KioskWmOptions) {
  const order = opts.order ?? 'map-then-resize';
  const { client } = conn;
  const fullScreen = (wid: number) =>
    client.ConfigureWindow(wid, { x: 0, y: 0, width: conn.width, height: conn.height, borderWidth: 0 });
  const setState = (wid: number, state: number) =>
    client.ChangeProperty(0, wid, wmState, wmState, 32, [state, 0]);
  const focus = (wid: number | null) => {
    if (wid === null) return client.SetInputFocus(PointerRoot, RevertToPointerRoot);
    client.RaiseWindow(wid);
    for (const o of st.overlays) client.RaiseWindow(o);
    client.SetInputFocus(wid, RevertToPointerRoot);
  };
  // ICCCM 4.1.5: a client whose request was not honoured as asked still gets a ConfigureNotify
  const tellGeometry = (wid: number) => {
    const ev = { name: 'ConfigureNotify', seq: 0, wid, wid1: wid, aboveSibling: 0, x: 0, y: 0 };
    const raw = x11.packEvent({ ...ev, width: conn.width, height: conn.height, borderWidth: 0 });
    client.SendEvent(wid, 0, x11.eventMask['StructureNotify']!, raw);
  };
  const manage = (wid: number) => {
    st.stack = [...st.stack.filter((w) => w !== wid), wid];
    client.ChangeWindowAttributes(wid, { eventMask: x11.eventMask['StructureNotify']! });
    if (order === 'resize-then-map') fullScreen(wid);
    client.MapWindow(wid);
    if (order !== 'resize-then-map') fullScreen(wid);
    setState(wid, NormalState);
    focus(wid);
    opts.onManage?.(wid);
  };
  const forget = (wid: number) => {
    st.overlays.delete(wid);
    if (!st.stack.includes(wid)) return;
    const wasFocused = st.stack.at(-1) === wid;
    const { stack, focus: top } = removeFromStack(st.stack, wid);
    st.stack = stack;
    if (wasFocused) focus(top);
  };
  return { fullScreen, setState, tellGeometry, manage, forget };
}

/** X event type → handler. Unmap/Destroy arrive twice (window and root): act on the root's copy. */
function wmHandlers(v: Verbs, st: WmState, root: number): Record<string, Handler> {
  return {
    MapRequest: (ev) => v.manage(ev.wid),
    ConfigureRequest: (ev) => {
      v.fullScreen(ev.wid);
      v.tellGeometry(ev.wid);
    },
    MapNotify: (ev) => {
      if (ev.event === root && ev.overrideRedirect) st.overlays.add(ev.wid);
    },
    UnmapNotify: (ev) => {
      if (ev.event !== root) return;
      if (st.stack.includes(ev.wid)) v.setState(ev.wid, WithdrawnState);
      v.forget(ev.wid);
    },
    DestroyNotify: (ev) => {
      if (ev.event === root) v.forget(ev.wid);
    },
  };
}

export async function startKioskWm(display: string, opts: KioskWmOptions = {}): Promise<KioskWm> {
  const log = opts.log ?? silentLogger;
  const conn = await connectDisplay(display, opts);
  const st: WmState = { stack: [], overlays: new Set() };
  const verbs = wmVerbs(conn, st, await conn.atom('WM_STATE'), opts);
  const handlers = wmHandlers(verbs, st, conn.root);
  conn.onEvent((ev) => {
    log.trace({ display, event: ev.name, wid: ev.wid }, 'wm event');
    handlers[ev.name]?.(ev);
  });
  await selectRedirect(conn);
  await adoptExisting(conn, verbs.manage);
  return {
    display,
    conn,
    windows: () => st.stack,
    focused: () => st.stack.at(-1) ?? null,
    // round trip 1: every event generated so far has been handled; 2: the requests that handling sent are done
    settle: () => conn.sync().then(() => conn.sync()),
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
