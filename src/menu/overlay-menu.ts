import type { Logger } from '../util/log.js';
import type { XConnection } from '../x/connection.js';
import { createOverlay, type Overlay } from '../x/overlay.js';
import type { AskRequest } from './ask.js';
import { type FontMetrics, layoutAsk, layoutMenu, type MenuLayout, PALETTE } from './layout.js';
import type { MenuState, RowHit } from './model.js';

/**
 * The menu renderer for one display: paints layout.ts's draw ops through the X overlay
 * primitives. The window, font and GC are created up front and kept, so opening is only
 * configure + map + raise + paint, with no round trip to the X server (one frame is the goal).
 */
export const MENU_WINDOW_NAME = 'kvmux menu';
export const DEFAULT_MENU_FONT = '-misc-fixed-bold-r-normal--18-*-*-*-*-*-iso8859-1';

export interface OverlayMenuOptions {
  /** ':21' or an existing connection (then the caller owns it). */
  readonly display: string | XConnection;
  readonly phrase: string;
  /** Core font names tried in order (config `menu.font`). */
  readonly fonts?: readonly string[];
  readonly log?: Logger;
}

type Painter = Pick<Overlay, 'fillRect' | 'text'>;

/** Paint every op of a layout; rect and text colours come from the palette roles. */
export function paintLayout(o: Painter, layout: MenuLayout): void {
  for (const op of layout.ops) {
    if (op.op === 'rect') o.fillRect(op.x, op.y, op.width, op.height, PALETTE[op.color]);
    else o.text(op.x, op.y, op.text, PALETTE[op.color]);
  }
}

export function overlayMetrics(ov: Overlay): FontMetrics {
  return { charWidth: ov.textWidth('M'), ascent: ov.font.ascent, descent: ov.font.descent };
}

export class OverlayMenu {
  private current: MenuLayout | null = null;

  private constructor(
    readonly overlay: Overlay,
    private readonly phrase: string,
  ) {}

  /** Pre-create the (unmapped) window, font and GC on `display`. */
  static async create(opts: OverlayMenuOptions): Promise<OverlayMenu> {
    const overlay = await createOverlay(opts.display, {
      x: 0,
      y: 0,
      width: 16,
      height: 16,
      name: MENU_WINDOW_NAME,
      fonts: [...(opts.fonts ?? [DEFAULT_MENU_FONT])],
      background: PALETTE.bg,
      ...(opts.log ? { log: opts.log } : {}),
    });
    return new OverlayMenu(overlay, opts.phrase);
  }

  /** The layout on screen now (window geometry, rows, parts), or null when hidden. */
  get layout(): MenuLayout | null {
    return this.current;
  }

  get metrics(): FontMetrics {
    return overlayMetrics(this.overlay);
  }

  private screen() {
    return { width: this.overlay.conn.width, height: this.overlay.conn.height };
  }

  /** Lay out, move, map, raise and paint; returns the clickable rows (window pixels). */
  private present(layout: MenuLayout): MenuLayout {
    const ov = this.overlay;
    const w = layout.window;
    ov.setPaint((o) => paintLayout(o, layout));
    if (ov.x !== w.x || ov.y !== w.y || ov.width !== w.width || ov.height !== w.height) {
      ov.setGeometry(w.x, w.y, w.width, w.height);
    }
    if (!ov.isMapped()) ov.map();
    ov.raise();
    ov.redraw();
    ov.flush();
    this.current = layout;
    return layout;
  }

  /** Show the switcher for `state` (the model's state after `open`). */
  open(state: MenuState): readonly RowHit[] {
    return this.update(state);
  }

  /** Repaint after a `redraw` action (selection moved, items changed). */
  update(state: MenuState): readonly RowHit[] {
    const layout = layoutMenu({
      items: state.items,
      selected: state.selected,
      phrase: this.phrase,
      font: this.metrics,
      screen: this.screen(),
    });
    return this.present(layout).rows;
  }

  /** The `ask` confirmation in the same window and style. */
  ask(request: AskRequest): void {
    this.present(layoutAsk(request, this.metrics, this.screen()));
  }

  close(): void {
    if (!this.current) return;
    this.overlay.unmap();
    this.overlay.flush();
    this.current = null;
  }

  /** Destroy the window (and close the connection when this menu opened it). */
  destroy(): Promise<void> {
    this.current = null;
    return this.overlay.destroy();
  }
}
