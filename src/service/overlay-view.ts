import type { Config } from '../config/schema.js';
import type { AskRequest } from '../menu/ask.js';
import type { MenuState } from '../menu/model.js';
import { OverlayMenu } from '../menu/overlay-menu.js';
import { errText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { LiveDisplay } from './display-runtime.js';
import type { MenuGeometry, MenuView } from './menu-controller.js';

/** What the overlay needs: the menu config, a logger, and the display a name is on now. */
export interface MenuViewHost {
  readonly config: Pick<Config, 'menu' | 'stateDir'>;
  readonly log: Logger;
  liveDisplay(name: string): LiveDisplay | null;
  /** The host phrase now (the console can change it). */
  phrase(): string;
}

/**
 * The switcher and ask dialogs on whichever display is active: one OverlayMenu per display,
 * created when the display comes up and kept, so opening is configure + map + paint.
 */
export function createOverlayMenuView(service: MenuViewHost): MenuView {
  const menus = new Map<
    string,
    { server: LiveDisplay['server']; phrase: string; menu: Promise<OverlayMenu> }
  >();
  let shown: OverlayMenu | null = null;
  let generation = 0;

  const menuFor = (name: string): Promise<OverlayMenu> | null => {
    const live = service.liveDisplay(name);
    if (!live) return null;
    const cached = menus.get(name);
    const phrase = service.phrase();
    // a restarted X server (often on the same display number) or a changed phrase gets a fresh overlay
    if (cached && cached.server === live.server && cached.phrase === phrase) return cached.menu;
    if (cached) void cached.menu.then((m) => m.destroy()).catch(() => {});
    const menu = OverlayMenu.create({
      display: live.server.display,
      phrase,
      fonts: [service.config.menu.font],
      log: service.log,
    });
    menus.set(name, { server: live.server, phrase, menu });
    menu.catch((err: unknown) => {
      service.log.warn({ display: name, err: errText(err) }, 'menu overlay unavailable');
      menus.delete(name);
    });
    return menu;
  };

  const hideShown = () => {
    shown?.close();
    shown = null;
  };

  return {
    async showMenu(display: string, state: MenuState): Promise<MenuGeometry | null> {
      const gen = ++generation;
      try {
        const menu = await menuFor(display);
        if (!menu || gen !== generation) return null;
        hideShown();
        shown = menu;
        const rows = menu.open(state);
        const conn = menu.overlay.conn;
        return { rows, window: menu.layout!.window, screen: { width: conn.width, height: conn.height } };
      } catch (err) {
        // the X server went away under the overlay: no menu this time, and never an unhandled rejection
        service.log.warn({ display, err: errText(err) }, 'menu could not be shown');
        return null;
      }
    },
    redrawMenu(state: MenuState): void {
      shown?.update(state);
    },
    showAsk(display: string, request: AskRequest): void {
      const gen = ++generation;
      void menuFor(display)
        ?.then((menu) => {
          if (gen !== generation) return;
          hideShown();
          shown = menu;
          menu.ask(request);
        })
        .catch((err: unknown) => service.log.warn({ display, err: errText(err) }, 'ask could not be shown'));
    },
    hide(): void {
      generation++;
      hideShown();
    },
    warm(display: string): void {
      void menuFor(display)?.catch(() => {});
    },
  };
}
