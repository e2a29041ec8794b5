import type { AskRequest } from '../menu/ask.js';
import { type FontMetrics, layoutAsk, layoutMenu, type MenuLayout, PALETTE } from '../menu/layout.js';
import type { MenuState, RowHit } from '../menu/model.js';
import { loadPhrase } from '../menu/phrase.js';
import { createOverlay, type Overlay } from '../x/index.js';
import type { MenuView } from './menu-controller.js';
import type { Service } from './service.js';

const WINDOW_NAME = 'kvmux menu';

/**
 * The switcher and ask dialogs as override-redirect windows: one overlay per display, created on
 * first use and kept (font and window ready), so opening is configure + map + paint.
 */
export function createOverlayMenuView(service: Service): MenuView {
  const overlays = new Map<string, Promise<Overlay>>();
  const phrase = loadPhrase({ configured: service.config.menu.phrase, stateDir: service.config.stateDir });
  let shown: { ov: Overlay; layout: MenuLayout } | null = null;
  let generation = 0;

  const overlayFor = (name: string): Promise<Overlay> | null => {
    const live = service.liveDisplay(name);
    if (!live) return null;
    const cached = overlays.get(name);
    if (cached)
      return cached.then((ov) => (ov.conn.isClosed() || ov.display !== live.server.display ? fresh() : ov));
    return fresh();
    function fresh(): Promise<Overlay> {
      const p = createOverlay(live!.server.display, {
        x: 0,
        y: 0,
        width: 10,
        height: 10,
        name: WINDOW_NAME,
        fonts: [service.config.menu.font],
        background: PALETTE.bg,
        log: service.log,
      });
      overlays.set(name, p);
      p.catch(() => overlays.delete(name));
      return p;
    }
  };

  const metrics = (ov: Overlay): FontMetrics => ({
    charWidth: ov.textWidth('M'),
    ascent: ov.font.ascent,
    descent: ov.font.descent,
  });

  const present = (ov: Overlay, layout: MenuLayout) => {
    const w = layout.window;
    ov.setPaint((o) => {
      for (const op of layout.ops) {
        if (op.op === 'rect') o.fillRect(op.x, op.y, op.width, op.height, PALETTE[op.color]);
        else o.text(op.x, op.y, op.text, PALETTE[op.color]);
      }
    });
    if (ov.x !== w.x || ov.y !== w.y || ov.width !== w.width || ov.height !== w.height)
      ov.setGeometry(w.x, w.y, w.width, w.height);
    ov.map();
    ov.raise();
    ov.redraw();
    ov.flush();
    shown = { ov, layout };
  };

  const menuLayout = (ov: Overlay, state: MenuState) =>
    layoutMenu({
      items: state.items,
      selected: state.selected,
      phrase,
      font: metrics(ov),
      screen: { width: ov.conn.width, height: ov.conn.height },
    });

  const hideShown = () => {
    if (!shown) return;
    shown.ov.unmap();
    shown.ov.flush();
    shown = null;
  };

  return {
    async showMenu(display: string, state: MenuState): Promise<readonly RowHit[]> {
      const gen = ++generation;
      const ov = await overlayFor(display);
      if (!ov || gen !== generation) return [];
      hideShown();
      const layout = menuLayout(ov, state);
      present(ov, layout);
      return layout.rows;
    },
    redrawMenu(state: MenuState): void {
      if (!shown) return;
      present(shown.ov, menuLayout(shown.ov, state));
    },
    showAsk(display: string, request: AskRequest): void {
      const gen = ++generation;
      void overlayFor(display)?.then((ov) => {
        if (gen !== generation) return;
        hideShown();
        present(ov, layoutAsk(request, metrics(ov), { width: ov.conn.width, height: ov.conn.height }));
      });
    },
    hide(): void {
      generation++;
      hideShown();
    },
    warm(display: string): void {
      overlayFor(display)?.catch((err: unknown) =>
        service.log.warn({ display, err: String(err) }, 'menu overlay'),
      );
    },
  };
}
