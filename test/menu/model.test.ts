import { describe, expect, it } from 'vitest';
import { KEY, keyCode } from '../../src/input/codes.js';
import {
  initialMenu,
  itemNumber,
  type MenuAction,
  type MenuEvent,
  type MenuItem,
  type MenuState,
  menuStateView,
  menuStep,
} from '../../src/menu/model.js';

const items: MenuItem[] = [
  { name: 'alpha', kind: 'vm', state: 'running' },
  { name: 'beta', kind: 'vm', state: 'stopped' },
  { name: 'gamma', kind: 'vm', state: 'crashed' },
  { name: 'admin', kind: 'admin', state: 'running' },
];
const rows = items.map((i, n) => ({ name: i.name, x: 10, y: 50 + n * 20, width: 200, height: 20 }));

/** One line per event: `open beta`, `down` (press), `down up`, `down repeat`, `click 20 75`, `hover 20 75`. */
function parse(line: string): MenuEvent {
  const [a = '', b = '', c = ''] = line.split(' ');
  if (a === 'open') return { kind: 'open', active: b === 'none' ? null : b };
  if (a === 'dismiss') return { kind: 'dismiss' };
  if (a === 'click' || a === 'hover')
    return { kind: 'pointer', x: Number(b), y: Number(c), press: a === 'click' };
  // keyCode('1') reads a decimal key CODE, so digit keys go through the name table.
  const code = /^\d$/.test(a) ? KEY[a] : keyCode(a);
  if (code === undefined) throw new Error(`bad key ${a}`);
  return { kind: 'key', code, value: b === 'up' ? 0 : b === 'repeat' ? 2 : 1 };
}

const show = (a: MenuAction): string => (a.kind === 'choose' ? `choose ${a.name}` : a.kind);

function run(lines: string[], start: MenuState = initialMenu(items)) {
  let s = menuStep(start, { kind: 'rows', rows }).state;
  const actions: string[] = [];
  for (const line of lines) {
    const r = menuStep(s, parse(line), 0);
    s = r.state;
    actions.push(...r.actions.map(show));
    expect(r.nextDeadlineMs).toBeNull();
  }
  return { state: s, actions, view: menuStateView(s) };
}

// [name, events, expected selected (or null when closed), expected actions]
const cases: Array<[string, string[], string | null, string[]]> = [
  ['opening selects the active display', ['open beta'], 'beta', ['show']],
  ['opening with an unknown active display selects the first', ['open nobody'], 'alpha', ['show']],
  ['opening with no active display selects the first', ['open none'], 'alpha', ['show']],
  ['a second open while open changes nothing', ['open beta', 'open alpha'], 'beta', ['show']],
  ['down moves to the next item', ['open alpha', 'down'], 'beta', ['show', 'redraw']],
  ['down wraps from the last to the first', ['open admin', 'down'], 'alpha', ['show', 'redraw']],
  ['up wraps from the first to the last', ['open alpha', 'up'], 'admin', ['show', 'redraw']],
  ['up moves to the previous item', ['open gamma', 'up'], 'beta', ['show', 'redraw']],
  ['home goes to the first', ['open gamma', 'home'], 'alpha', ['show', 'redraw']],
  ['end goes to the last (admin)', ['open alpha', 'end'], 'admin', ['show', 'redraw']],
  ['home on the first item does not redraw', ['open alpha', 'home'], 'alpha', ['show']],
  [
    'pageup and pagedown act like home and end',
    ['open beta', 'pagedown', 'pageup'],
    'alpha',
    ['show', 'redraw', 'redraw'],
  ],
  ['releases are ignored', ['open alpha', 'down up', 'enter up'], 'alpha', ['show']],
  [
    'arrow autorepeat keeps moving',
    ['open alpha', 'down', 'down repeat', 'down repeat'],
    'admin',
    ['show', 'redraw', 'redraw', 'redraw'],
  ],
  [
    'enter chooses the selection and closes',
    ['open alpha', 'down', 'enter'],
    null,
    ['show', 'redraw', 'choose beta', 'close'],
  ],
  ['keypad enter chooses', ['open gamma', 'kpenter'], null, ['show', 'choose gamma', 'close']],
  ['space chooses', ['open beta', 'space'], null, ['show', 'choose beta', 'close']],
  ['enter autorepeat does not choose', ['open alpha', 'enter repeat'], 'alpha', ['show']],
  ['escape closes without choosing', ['open alpha', 'down', 'esc'], null, ['show', 'redraw', 'close']],
  ['escape autorepeat is ignored', ['open alpha', 'esc repeat'], 'alpha', ['show']],
  ['a third scroll lock closes', ['open alpha', 'scrolllock'], null, ['show', 'close']],
  ['digit 1 jumps to and chooses the first', ['open gamma', '1'], null, ['show', 'choose alpha', 'close']],
  ['digit 3 chooses the third', ['open alpha', '3'], null, ['show', 'choose gamma', 'close']],
  ['digit 4 chooses admin (last)', ['open alpha', '4'], null, ['show', 'choose admin', 'close']],
  ['keypad digits work too', ['open alpha', 'kp2'], null, ['show', 'choose beta', 'close']],
  ['a digit beyond the items does nothing', ['open alpha', '7'], 'alpha', ['show']],
  ['digit 0 with fewer than ten items does nothing', ['open alpha', '0'], 'alpha', ['show']],
  ['digit autorepeat is ignored', ['open alpha', '2 repeat'], 'alpha', ['show']],
  ['other keys are swallowed and ignored', ['open alpha', 'a', 'leftctrl', 'f1'], 'alpha', ['show']],
  ['keys while closed do nothing', ['down', 'enter', '1', 'esc'], null, []],
  ['a click on a row chooses it', ['open alpha', 'click 20 95'], null, ['show', 'choose gamma', 'close']],
  ['a click outside every row does nothing', ['open alpha', 'click 300 95'], 'alpha', ['show']],
  ['a click on a row edge just outside does nothing', ['open alpha', 'click 210 55'], 'alpha', ['show']],
  ['hovering a row selects it', ['open alpha', 'hover 20 75'], 'beta', ['show', 'redraw']],
  ['pointer while closed does nothing', ['click 20 75'], null, []],
  ['dismiss closes an open menu', ['open alpha', 'dismiss'], null, ['show', 'close']],
  ['dismiss while closed does nothing', ['dismiss'], null, []],
  [
    'reopening after close selects the active display again',
    ['open alpha', 'esc', 'open gamma'],
    'gamma',
    ['show', 'close', 'show'],
  ],
];

describe('switcher menu model', () => {
  it.each(cases)('%s', (_name, lines, selected, actions) => {
    const r = run(lines);
    expect(r.actions).toEqual(actions);
    expect(r.view.selected).toBe(selected);
    expect(r.view.open).toBe(selected !== null);
  });

  it('menu.state lists item names in order and the selection by NAME', () => {
    const r = run(['open beta', 'down']);
    expect(r.view).toEqual({ open: true, items: ['alpha', 'beta', 'gamma', 'admin'], selected: 'gamma' });
  });

  it('keeps the selection by name when items change under an open menu', () => {
    let s = run(['open gamma']).state;
    expect(s.selected).toBe('gamma');
    // gamma (index 2 before) moves to the end: neither the first item nor at its old index
    const [alpha, beta, gamma, admin] = items as [MenuItem, MenuItem, MenuItem, MenuItem];
    const r = menuStep(s, { kind: 'items', items: [beta, alpha, admin, gamma] });
    expect(r.actions.map(show)).toEqual(['redraw']);
    s = r.state;
    expect(s.selected).toBe('gamma');
    expect(menuStateView(s)).toEqual({
      open: true,
      items: ['beta', 'alpha', 'admin', 'gamma'],
      selected: 'gamma',
    });
    expect(menuStep(s, parse('enter')).actions.map(show)).toEqual(['choose gamma', 'close']);
    // and navigation goes on from its new place: up from the last row is admin
    expect(menuStep(s, parse('up')).state.selected).toBe('admin');
  });

  it('falls back to the first item when the selected one vanishes', () => {
    const s = run(['open gamma']).state;
    const [alpha, beta, , admin] = items as [MenuItem, MenuItem, MenuItem, MenuItem];
    const r = menuStep(s, { kind: 'items', items: [admin, beta, alpha] });
    expect(r.actions.map(show)).toEqual(['redraw']);
    expect(r.state.selected).toBe('admin');
    expect(menuStep(r.state, parse('enter')).actions.map(show)).toEqual(['choose admin', 'close']);
    // nothing left to select: none, and enter chooses nothing
    const empty = menuStep(r.state, { kind: 'items', items: [] }).state;
    expect(empty.selected).toBeNull();
    expect(menuStep(empty, parse('enter')).actions).toEqual([]);
  });

  it('a click on a row drawn for an item that has gone since chooses nothing, nor moves', () => {
    // rows are from the last draw; gamma is removed before the next one
    const [alpha, beta, , admin] = items as [MenuItem, MenuItem, MenuItem, MenuItem];
    const s = menuStep(run(['open alpha']).state, { kind: 'items', items: [alpha, beta, admin] }).state;
    expect(menuStep(s, parse('click 20 95')).actions).toEqual([]);
    expect(menuStep(s, parse('hover 20 95')).state.selected).toBe('alpha');
  });

  it('item changes while closed select nothing; the next open selects the active display', () => {
    const [alpha, beta, gamma] = items as [MenuItem, MenuItem, MenuItem];
    const s = menuStep(initialMenu(items), { kind: 'items', items: [gamma, beta, alpha] }).state;
    expect(s.selected).toBeNull();
    expect(menuStep(s, { kind: 'open', active: 'beta' }).state.selected).toBe('beta');
  });

  it('item updates while closed do not redraw', () => {
    const r = menuStep(initialMenu(items), { kind: 'items', items });
    expect(r.actions).toEqual([]);
  });

  it('an empty menu opens with nothing selected and enter does nothing', () => {
    const s = menuStep(initialMenu([]), { kind: 'open', active: null }).state;
    expect(s.selected).toBeNull();
    expect(menuStep(s, parse('enter')).actions).toEqual([]);
    expect(menuStep(s, parse('down')).actions).toEqual([]);
  });

  it('numbers items 1..9, then 0 for the tenth, then none', () => {
    expect([0, 1, 8, 9, 10].map(itemNumber)).toEqual([1, 2, 9, 0, null]);
    const many: MenuItem[] = Array.from({ length: 10 }, (_, i) => ({
      name: `vm${i}`,
      kind: 'vm',
      state: 'running',
    }));
    const s = menuStep(initialMenu(many), { kind: 'open', active: null }).state;
    expect(menuStep(s, parse('0')).actions.map(show)).toEqual(['choose vm9', 'close']);
  });
});
