import type { Config } from '../config/schema.js';
import { pipelineOptions, sourcesOptions } from '../input/from-config.js';
import { IdleGc } from '../input/idle-gc.js';
import { InputPipeline } from '../input/pipeline.js';
import { InputSources } from '../input/sources.js';
import type { MenuItem } from '../menu/model.js';
import { TrustLeds } from '../menu/trust-leds.js';
import type { Logger } from '../util/log.js';
import { MenuController, type MenuView } from './menu-controller.js';
import type { Switcher } from './switcher.js';

export interface ConsoleInputOptions {
  readonly config: Pick<Config, 'input' | 'menu'>;
  readonly log: Logger;
  readonly switcher: Switcher;
  readonly view: MenuView;
  /** Menu rows in menu order, with each VM's state. */
  readonly items: () => MenuItem[];
}

/**
 * The physical console: keyboards and mice (evdev or FIFO) → the input pipeline → the active
 * display's XTEST sink, and the switcher menu that takes the keyboard while it is open. The
 * pipeline and the menu talk both ways (double tap opens it; it captures input while open), so
 * both are built here together, before any device is opened.
 */
export class ConsoleInput {
  readonly pipeline: InputPipeline;
  readonly menu: MenuController;
  private readonly sources: InputSources;
  /** Young-generation GC in the pauses between keys, not during one (needs node --expose-gc). */
  readonly idleGc = new IdleGc();

  constructor(opts: ConsoleInputOptions) {
    const { config, log, switcher } = opts;
    const leds = { setLeds: (mask: number) => this.sources.setLeds(mask) };
    const show = (name: string | undefined, what: string) => {
      if (!name) return log.info({ what }, 'switch: no such display');
      void switcher
        .switchTo(name)
        .catch((err: unknown) => log.warn({ err: String(err), what }, 'switch failed'));
    };
    this.pipeline = new InputPipeline(pipelineOptions(config.input), {
      sinkFor: (name) => switcher.live(name)?.sink,
      leds,
      onMenuOpen: () => this.menu.open(),
      // the menu opened at the second tap; these close it even when no display is there
      onDirectSwitch: (index) => {
        this.menu.dismiss();
        show(switcher.nameAt(index), `direct ${index}`);
      },
      onCycle: (delta) => {
        this.menu.dismiss();
        show(switcher.neighbour(delta), delta > 0 ? 'next' : 'previous');
      },
      onMenuInput: (ev) => this.menu.input(ev),
      onMenuPointer: (p) => this.menu.pointerMoved(p),
    });
    this.menu = new MenuController({
      view: opts.view,
      leds: new TrustLeds(leds),
      items: opts.items,
      active: () => switcher.active,
      ledMask: (d) => this.pipeline.ledMask(d),
      choose: (name) => show(name, 'menu'),
      setInputCaptured: (captured) => this.pipeline.setMenuOpen(captured), // the one writer of "menu open"
      setHotkeyLive: (live) => this.pipeline.setHotkeyLive(live),
      now: () => performance.now(),
      showDelayMs: config.menu.showDelayMs,
      askTimeoutMs: config.menu.askTimeoutSeconds * 1000,
      askCooldownMs: config.menu.askCooldownSeconds * 1000,
    });
    const pipeline = this.pipeline;
    const idleGc = this.idleGc;
    this.sources = new InputSources(
      { ...sourcesOptions(config.input), log },
      {
        feed(ev) {
          pipeline.feed(ev);
          idleGc.poke();
        },
        setAbsRange: (source, x, y, touchpad) => pipeline.setAbsRange(source, x, y, touchpad),
      },
    );
    // input follows a switch at once; the menu closes
    switcher.on('switched', (name) => {
      this.pipeline.setActive(name);
      this.menu.dismiss();
    });
  }

  /** Open the devices (grabbed once no key is down). */
  start(): void {
    this.sources.start();
  }

  /** Chords swallowed while `display` is active (backend host keys + the VM's blockedKeys). */
  setBlocked(display: string, chords: string[]): void {
    this.pipeline.setExtraBlocked(display, chords);
  }

  /** Grabs released, held keys released in the displays that got them. */
  close(): void {
    this.idleGc.close();
    this.sources.close();
    this.pipeline.close();
  }
}
