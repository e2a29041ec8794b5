import x11 from 'x11';
import { XError } from '../util/errors.js';
import { type ConnectOptions, connectDisplay, type XConnection } from './connection.js';

/**
 * Overlay painter: an override-redirect window above everything (the kiosk WM never touches it,
 * and re-raises it over windows it maps later), drawn with a real core font from xfonts-base.
 *
 *   const ov = await createOverlay(':21', { x, y, width, height, name: 'kvmux menu', paint });
 *   paint = (ov) => { ov.fillRect(0, 0, ov.width, ov.height, 0x202020);
 *                     ov.text(10, 10 + ov.font.ascent, 'alpha', 0xffffff); };
 *   ov.map();  ...  ov.redraw();  ...  ov.unmap();  await ov.destroy();
 *
 * Colours are 0xRRGGBB numbers (24-bit TrueColor). `text(x, y)` takes the baseline y; text is
 * Latin-1 (other characters become '?');
 * `textWidth` is computed locally from the font metrics (no round trip). Drawing calls are
 * buffered requests; `flush()` / `sync()` push them. paint runs on every Expose and redraw().
 */
export interface OverlayOptions extends ConnectOptions {
  x: number;
  y: number;
  width: number;
  height: number;
  /** WM_NAME of the window (the menu uses 'kvmux menu'). */
  name?: string;
  /** Core font names tried in order; the last resort is 'fixed'. */
  fonts?: string[];
  /** Draws the whole window; called on Expose and redraw(). */
  paint?: (ov: Overlay) => void;
  /** Background colour (0xRRGGBB) the server clears to before paint. */
  background?: number;
}

export interface FontMetrics {
  name: string;
  ascent: number;
  descent: number;
  /** ascent + descent: the line height. */
  height: number;
}

export interface Overlay {
  display: string;
  conn: XConnection;
  wid: number;
  x: number;
  y: number;
  width: number;
  height: number;
  font: FontMetrics;
  fillRect(x: number, y: number, width: number, height: number, rgb: number): void;
  text(x: number, baselineY: number, text: string, rgb: number): void;
  textWidth(text: string): number;
  setName(name: string): void;
  setPaint(paint: (ov: Overlay) => void): void;
  /** Move/resize; the next Expose repaints. */
  setGeometry(x: number, y: number, width: number, height: number): void;
  map(): void;
  unmap(): void;
  raise(): void;
  redraw(): void;
  isMapped(): boolean;
  flush(): void;
  sync(): Promise<void>;
  /** Destroy the window and close the connection (when the overlay opened it). */
  destroy(): Promise<void>;
}

export const defaultFonts = [
  '-misc-fixed-bold-r-normal--18-*-*-*-*-*-iso8859-1',
  '-misc-fixed-medium-r-normal--18-*',
];

/** Pure: the pixel value of 0xRRGGBB for a TrueColor visual with the given channel masks. */
export function rgbToPixel(rgb: number, visual: Pick<x11.Visual, 'red_mask' | 'green_mask' | 'blue_mask'>) {
  const channel = (value: number, mask: number) => {
    if (mask === 0) return 0;
    const shift = Math.log2(mask & -mask);
    const bits = Math.log2((mask >>> shift) + 1);
    return ((value >> (8 - bits)) << shift) >>> 0;
  };
  return (
    (channel((rgb >> 16) & 0xff, visual.red_mask) |
      channel((rgb >> 8) & 0xff, visual.green_mask) |
      channel(rgb & 0xff, visual.blue_mask)) >>>
    0
  );
}

/** Core fonts here are ISO 8859-1: anything outside Latin-1 is drawn (and measured) as '?'. */
export function latin1(text: string): string {
  return text.replace(/[^\x00-\xff]/g, '?');
}

function rootVisual(conn: XConnection): x11.Visual {
  const visual = conn.screen.depths[conn.screen.root_depth]?.[conn.screen.root_visual];
  if (visual?.class !== 4) throw new XError(conn.display, 'overlay needs a TrueColor root visual');
  return visual;
}

interface LoadedFont {
  fid: number;
  metrics: FontMetrics;
  widths: Map<number, number>;
  defaultWidth: number;
}

async function loadFont(conn: XConnection, names: string[]): Promise<LoadedFont> {
  for (const name of [...names, 'fixed']) {
    const fid = conn.client.AllocID();
    try {
      await conn.call<undefined>((cb) => conn.client.OpenFont(fid, name, cb));
      const q = await conn.call<x11.FontInfo>((cb) => conn.client.QueryFont(fid, cb));
      const widths = new Map(q.charInfos.map((ci, i) => [q.minCharOrByte2 + i, ci.characterWidth]));
      const metrics = {
        name,
        ascent: q.fontAscent,
        descent: q.fontDescent,
        height: q.fontAscent + q.fontDescent,
      };
      return { fid, metrics, widths, defaultWidth: q.maxBounds.characterWidth };
    } catch {
      // not installed under this name: try the next one
    }
  }
  throw new XError(conn.display, `no usable core font among ${JSON.stringify(names)} or 'fixed'`);
}

type Painter = Pick<Overlay, 'fillRect' | 'text' | 'textWidth'>;

/** Drawing primitives on one window; after the connection is gone they do nothing. */
function painter(
  conn: XConnection,
  wid: number,
  gc: number,
  font: LoadedFont,
  px: (rgb: number) => number,
): Painter {
  const { client } = conn;
  const textWidth = (raw: string) => {
    const text = latin1(raw);
    let w = 0;
    for (let i = 0; i < text.length; i++) w += font.widths.get(text.charCodeAt(i)) ?? font.defaultWidth;
    return w;
  };
  return {
    fillRect(x, y, w, h, rgb) {
      if (conn.isClosed()) return;
      client.ChangeGC(gc, { foreground: px(rgb) });
      client.PolyFillRectangle(wid, gc, [x, y, w, h]);
    },
    text(x, y, raw, rgb) {
      if (conn.isClosed()) return;
      const text = latin1(raw);
      client.ChangeGC(gc, { foreground: px(rgb) });
      // PolyText8 items are limited to 254 bytes each
      for (let i = 0; i < text.length; i += 254) {
        client.PolyText8(wid, gc, x + textWidth(text.slice(0, i)), y, [text.slice(i, i + 254)]);
      }
    },
    textWidth,
  };
}

function createWindow(conn: XConnection, opts: OverlayOptions, px: (rgb: number) => number, fid: number) {
  const wid = conn.client.AllocID();
  const gc = conn.client.AllocID();
  conn.client.CreateWindow(
    wid,
    conn.root,
    opts.x,
    opts.y,
    opts.width,
    opts.height,
    0,
    0,
    x11.InputOutput,
    0,
    {
      backgroundPixel: px(opts.background ?? 0),
      overrideRedirect: 1,
      eventMask: x11.eventMask['Exposure']!,
    },
  );
  conn.client.CreateGC(gc, wid, { foreground: px(0xffffff), font: fid, graphicsExposures: 0 });
  return { wid, gc };
}

export async function createOverlay(display: string | XConnection, opts: OverlayOptions): Promise<Overlay> {
  const own = typeof display === 'string';
  const conn = own ? await connectDisplay(display, opts) : display;
  const visual = rootVisual(conn);
  const font = await loadFont(conn, opts.fonts ?? defaultFonts);
  const { client } = conn;
  const px = (rgb: number) => rgbToPixel(rgb, visual);
  const { wid, gc } = createWindow(conn, opts, px, font.fid);
  let paint = opts.paint ?? (() => {});
  let mapped = false;
  // window requests after the connection is gone would throw or go nowhere: skip them
  const live = (fn: () => void) => () => {
    if (!conn.isClosed()) fn();
  };
  const ov: Overlay = {
    display: conn.display,
    conn,
    wid,
    x: opts.x,
    y: opts.y,
    width: opts.width,
    height: opts.height,
    font: font.metrics,
    ...painter(conn, wid, gc, font, px),
    setName: (name) =>
      live(() => client.ChangeProperty(0, wid, 39 /* WM_NAME */, 31 /* STRING */, 8, name))(),
    setPaint(p) {
      paint = p;
    },
    setGeometry(x, y, width, height) {
      Object.assign(ov, { x, y, width, height });
      live(() => client.ConfigureWindow(wid, { x, y, width, height }))();
    },
    map: live(() => {
      mapped = true;
      client.MapWindow(wid);
      client.RaiseWindow(wid);
    }),
    unmap: live(() => {
      mapped = false;
      client.UnmapWindow(wid);
    }),
    raise: live(() => client.RaiseWindow(wid)),
    redraw: live(() => mapped && paint(ov)),
    isMapped: () => mapped,
    flush: live(() => client.pack_stream.flush()),
    sync: () => conn.sync(),
    async destroy() {
      if (conn.isClosed()) return;
      client.DestroyWindow(wid);
      client.FreeGC(gc);
      client.CloseFont(font.fid);
      if (own) await conn.close();
      else await conn.sync().catch(() => {});
    },
  };
  conn.onEvent((ev) => {
    if (ev.name === 'Expose' && ev.wid === wid && ev.count === 0) ov.redraw();
  });
  if (opts.name !== undefined) ov.setName(opts.name);
  return ov;
}
