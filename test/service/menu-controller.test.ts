import { describe, expect, it } from 'vitest';
import { BTN_MOUSE, EV, keyCode } from '../../src/input/codes.js';
import type { InputEvent } from '../../src/input/event.js';
import type { AskRequest } from '../../src/menu/ask.js';
import type { MenuItem, MenuState } from '../../src/menu/model.js';
import { TrustLeds } from '../../src/menu/trust-leds.js';
import { MenuController, type MenuGeometry, type MenuView } from '../../src/service/menu-controller.js';

/** A view that records what it was asked to draw (an adapter-level fake, as its name says). */
class RecordingView implements MenuView {
  readonly log: string[] = [];
  // two rows of 20 px inside a window at (100, 100) on a 1000x800 screen
  readonly geometry: MenuGeometry = {
    rows: [
      { name: 'alpha', x: 0, y: 40, width: 200, height: 20 },
      { name: 'beta', x: 0, y: 60, width: 200, height: 20 },
    ],
    window: { x: 100, y: 100, width: 200, height: 100 },
    screen: { width: 1000, height: 800 },
  };
  showMenu(display: string, state: MenuState) {
    this.log.push(`show on ${display}: ${state.selected}`);
    return this.geometry;
  }
  redrawMenu(state: MenuState) {
    this.log.push(`redraw: ${state.selected}`);
  }
  showAsk(display: string, r: AskRequest) {
    this.log.push(`ask on ${display}: ${r.from} ${r.method}`);
  }
  hide() {
    this.log.push('hide');
  }
}

const items: MenuItem[] = [
  { name: 'alpha', kind: 'vm', state: 'running' },
  { name: 'beta', kind: 'vm', state: 'stopped' },
];

function setup(showDelayMs = 0) {
  const view = new RecordingView();
  const leds: number[] = [];
  const chosen: string[] = [];
  const captured: boolean[] = [];
  let active = 'alpha';
  const c = new MenuController({
    view,
    leds: new TrustLeds({ setLeds: (m) => leds.push(m) }),
    items: () => items,
    active: () => active,
    ledMask: () => 0b010,
    choose: (name) => {
      chosen.push(name);
      active = name;
    },
    setInputCaptured: (on) => captured.push(on),
    now: () => 0,
    showDelayMs,
  });
  return { c, view, leds, chosen, captured };
}

const key = (name: string, value = 1): InputEvent => ({
  type: EV.KEY,
  code: keyCode(name)!,
  value,
  timeMs: 0,
});
const ev = (type: number, code: number, value: number): InputEvent => ({ type, code, value, timeMs: 0 });
const flush = () => new Promise((r) => setTimeout(r, 0));

describe('menu controller', () => {
  it('opens on the active display with the trust LED lit, captures input, and restores on Esc', async () => {
    const { c, view, leds, captured } = setup();
    c.open();
    await flush();
    expect(view.log).toEqual(['show on alpha: alpha']);
    expect(leds).toEqual([0b110]); // Scroll Lock added to the display's CapsLock
    expect(c.view()).toEqual({ open: true, items: ['alpha', 'beta'], selected: 'alpha' });
    c.input(key('esc'));
    expect(view.log.at(-1)).toBe('hide');
    expect(leds.at(-1)).toBe(0b010);
    expect(captured).toEqual([true, false]);
    expect(c.isOpen).toBe(false);
  });

  it('chooses with arrows and Enter', async () => {
    const { c, chosen } = setup();
    c.open();
    await flush();
    c.input(key('down'));
    c.input(key('down', 0));
    c.input(key('enter'));
    expect(chosen).toEqual(['beta']);
    expect(c.isOpen).toBe(false);
  });

  it('moves its own pointer with relative motion: hover selects, a left click chooses', async () => {
    const { c, view, chosen } = setup();
    c.open();
    await flush();
    // the pointer starts at the window centre (200, 150): window y 50, the alpha row
    c.pointerMoved({ kind: 'move', dx: 0, dy: 10 }); // window y 60: the beta row
    expect(view.log.at(-1)).toBe('redraw: beta');
    c.pointerMoved({ kind: 'move', dx: 0, dy: -15 }); // window y 45: alpha
    expect(view.log.at(-1)).toBe('redraw: alpha');
    c.input(ev(EV.KEY, BTN_MOUSE, 1));
    expect(chosen).toEqual(['alpha']);
  });

  it('takes absolute positions as fractions of the screen, and ignores clicks outside the rows', async () => {
    const { c, chosen } = setup();
    c.open();
    await flush();
    c.pointerMoved({ kind: 'abs', fx: 0, fy: 0 });
    c.input(ev(EV.KEY, BTN_MOUSE, 1));
    expect(chosen).toEqual([]);
    expect(c.isOpen).toBe(true);
    c.pointerMoved({ kind: 'abs', fx: 150 / 1000, fy: 170 / 800 });
    c.input(ev(EV.KEY, BTN_MOUSE, 1));
    expect(chosen).toEqual(['beta']);
  });

  it('with a show delay, a direct switch before it ends never maps the menu; otherwise it appears', async () => {
    const { c, view, chosen } = setup(60);
    c.open();
    c.input(key('2'));
    await new Promise((r) => setTimeout(r, 120));
    expect(chosen).toEqual(['beta']);
    expect(view.log.filter((l) => l.startsWith('show'))).toEqual([]);
    c.open();
    expect(view.log.filter((l) => l.startsWith('show'))).toEqual([]);
    await new Promise((r) => setTimeout(r, 120));
    expect(view.log.filter((l) => l.startsWith('show'))).toEqual(['show on beta: beta']);
  });

  it('asks the person at the keyboard: Enter allows, Esc denies, and input is captured meanwhile', async () => {
    const { c, view, captured } = setup();
    const first = c.confirm('alpha', 'vm.stop', { name: 'beta' });
    expect(view.log).toEqual(['ask on alpha: alpha vm.stop']);
    expect(captured).toEqual([true]);
    c.input(key('enter'));
    expect(await first).toBe(true);
    const second = c.confirm('alpha', 'host.update.commit', {});
    c.input(key('esc'));
    expect(await second).toBe(false);
    expect(captured.at(-1)).toBe(false);
  });

  it('opens the menu over a question, which waits behind it and comes back when the menu closes', async () => {
    const { c, view } = setup();
    const answer = c.confirm('beta', 'vm.stop', { name: 'beta' });
    c.open();
    await flush();
    expect(view.log).toEqual(['ask on alpha: beta vm.stop', 'hide', 'show on alpha: alpha']);
    c.input(key('enter')); // chooses alpha in the menu, does not answer the question
    expect(view.log.at(-1)).toBe('ask on alpha: beta vm.stop');
    c.input(key('esc'));
    expect(await answer).toBe(false);
  });

  it('refuses a second question from a VM with -32029 at once, and drops one whose caller left', async () => {
    const { c, view } = setup();
    const gone = new AbortController();
    const first = c.confirm('beta', 'vm.stop', { name: 'beta' }, gone.signal);
    await expect(c.confirm('beta', 'vm.start', { name: 'beta' })).rejects.toMatchObject({ code: -32029 });
    gone.abort();
    expect(await first).toBe(false);
    expect(view.log.at(-1)).toBe('hide');
  });

  it('a double Scroll Lock through the real input pipeline opens the menu over a question', async () => {
    const { InputPipeline } = await import('../../src/input/pipeline.js');
    const view = new RecordingView();
    let pipeline: InstanceType<typeof InputPipeline> | undefined;
    const c = new MenuController({
      view,
      leds: null,
      items: () => items,
      active: () => 'alpha',
      ledMask: () => 0,
      choose: () => undefined,
      setInputCaptured: (on) => pipeline?.setMenuOpen(on),
      setHotkeyLive: (on) => pipeline?.setHotkeyLive(on),
      now: () => 0,
    });
    pipeline = new InputPipeline(
      { windowMs: 500, ctrlAltDelToVm: true },
      {
        sinkFor: () => undefined,
        onMenuOpen: () => c.open(),
        onDirectSwitch: () => undefined,
        onCycle: () => undefined,
        onMenuInput: (e) => c.input(e),
      },
    );
    pipeline.setActive('alpha');
    const answer = c.confirm('beta', 'vm.stop', { name: 'beta' });
    expect(pipeline.isMenuOpen).toBe(true); // the question holds the keys
    for (const v of [1, 0, 1, 0]) pipeline.feed(key('scrolllock', v));
    await flush();
    expect(view.log).toEqual(['ask on alpha: beta vm.stop', 'hide', 'show on alpha: alpha']);
    pipeline.feed(key('esc')); // closes the menu; the question comes back
    pipeline.feed(key('esc', 0));
    expect(view.log.at(-1)).toBe('ask on alpha: beta vm.stop');
    pipeline.feed(key('esc')); // and Esc now answers it
    expect(await answer).toBe(false);
    pipeline.close();
  });
});
