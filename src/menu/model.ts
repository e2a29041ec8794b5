import { digitOf, KEY_DOWN, KEY_REPEAT, KEY_SCROLLLOCK, keyCode } from '../input/codes.js';

/**
 * The switcher menu, pure: `(state, event, nowMs) → {state, actions, nextDeadlineMs}`.
 * Items are every display in menu order (VMs in config order, then `admin`). `selected` is the
 * item NAME (not an index), so `menu.state` stays right when items change under an open menu.
 */
export type ItemState = 'running' | 'starting' | 'stopping' | 'stopped' | 'crashed' | 'unknown';

export interface MenuItem {
  readonly name: string;
  readonly kind: 'vm' | 'admin';
  readonly state: ItemState;
}

/** A clickable row as laid out on screen (from layout.ts), in window pixels. */
export interface RowHit {
  readonly name: string;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface MenuState {
  readonly open: boolean;
  readonly items: readonly MenuItem[];
  readonly selected: string | null;
  readonly rows: readonly RowHit[];
}

export type MenuEvent =
  /** The hotkey detector saw the double tap; `active` is the display now shown. */
  | { readonly kind: 'open'; readonly active: string | null }
  | { readonly kind: 'key'; readonly code: number; readonly value: number }
  /** Pointer position or button press, in window pixels (the renderer translates). */
  | { readonly kind: 'pointer'; readonly x: number; readonly y: number; readonly press: boolean }
  | { readonly kind: 'items'; readonly items: readonly MenuItem[] }
  | { readonly kind: 'rows'; readonly rows: readonly RowHit[] }
  /** Closed from outside (display.switch over RPC, display lost). */
  | { readonly kind: 'dismiss' };

/** `choose` is always followed by `close`; `show` maps the window, `redraw` repaints it. */
export type MenuAction =
  | { readonly kind: 'show' }
  | { readonly kind: 'redraw' }
  | { readonly kind: 'close' }
  | { readonly kind: 'choose'; readonly name: string };

export interface MenuStep {
  readonly state: MenuState;
  readonly actions: readonly MenuAction[];
  /** The menu has no timers; kept for the shape every pure engine shares. */
  readonly nextDeadlineMs: number | null;
}

export function initialMenu(items: readonly MenuItem[] = []): MenuState {
  return { open: false, items, selected: null, rows: [] };
}

/** The number shown beside an item and typed after `ScrLk ScrLk`: 1..9, then 0 for the tenth. */
export function itemNumber(index: number): number | null {
  if (index < 9) return index + 1;
  return index === 9 ? 0 : null;
}

export function indexOfNumber(digit: number): number {
  return digit === 0 ? 9 : digit - 1;
}

/** The contract's `menu.state` result. */
export function menuStateView(s: MenuState): { open: boolean; items: string[]; selected: string | null } {
  return { open: s.open, items: s.items.map((i) => i.name), selected: s.open ? s.selected : null };
}

const step = (state: MenuState, actions: MenuAction[] = []): MenuStep => ({
  state,
  actions,
  nextDeadlineMs: null,
});

const closed = (s: MenuState, extra: MenuAction[] = []): MenuStep =>
  step({ ...s, open: false, selected: null }, [...extra, { kind: 'close' }]);

const choose = (s: MenuState, name: string): MenuStep => closed(s, [{ kind: 'choose', name }]);

function moveTo(s: MenuState, index: number): MenuStep {
  const item = s.items[Math.max(0, Math.min(s.items.length - 1, index))];
  if (!item || item.name === s.selected) return step(s);
  return step({ ...s, selected: item.name }, [{ kind: 'redraw' }]);
}

const selectedIndex = (s: MenuState): number => s.items.findIndex((i) => i.name === s.selected);

type KeyHandler = (s: MenuState) => MenuStep;

/** Navigation keys; autorepeat (value 2) counts as a press for these only, so holding an arrow scrolls. */
const NAV_KEYS: ReadonlyMap<number, KeyHandler> = new Map<number, KeyHandler>([
  [keyCode('up')!, (s) => moveTo(s, selectedIndex(s) <= 0 ? s.items.length - 1 : selectedIndex(s) - 1)],
  [keyCode('down')!, (s) => moveTo(s, (selectedIndex(s) + 1) % Math.max(1, s.items.length))],
  [keyCode('home')!, (s) => moveTo(s, 0)],
  [keyCode('end')!, (s) => moveTo(s, s.items.length - 1)],
  [keyCode('pageup')!, (s) => moveTo(s, 0)],
  [keyCode('pagedown')!, (s) => moveTo(s, s.items.length - 1)],
]);

const chooseSelected: KeyHandler = (s) => (s.selected ? choose(s, s.selected) : step(s));

/** Keys that act once per press: a held Enter must not choose twice, a held Esc must not leak. */
const PRESS_KEYS: ReadonlyMap<number, KeyHandler> = new Map<number, KeyHandler>([
  [keyCode('enter')!, chooseSelected],
  [keyCode('kpenter')!, chooseSelected],
  [keyCode('space')!, chooseSelected],
  [keyCode('esc')!, (s) => closed(s)],
  [KEY_SCROLLLOCK, (s) => closed(s)],
]);

function onKey(s: MenuState, code: number, value: number): MenuStep {
  if (value !== KEY_DOWN && value !== KEY_REPEAT) return step(s);
  const nav = NAV_KEYS.get(code);
  if (nav) return nav(s);
  if (value === KEY_REPEAT) return step(s);
  const press = PRESS_KEYS.get(code);
  if (press) return press(s);
  const digit = digitOf(code);
  const item = digit === undefined ? undefined : s.items[indexOfNumber(digit)];
  return item ? choose(s, item.name) : step(s);
}

const hit = (rows: readonly RowHit[], x: number, y: number): RowHit | undefined =>
  rows.find((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);

function onPointer(s: MenuState, x: number, y: number, press: boolean): MenuStep {
  const row = hit(s.rows, x, y);
  if (!row || !s.items.some((i) => i.name === row.name)) return step(s);
  if (press) return choose(s, row.name);
  return moveTo(
    s,
    s.items.findIndex((i) => i.name === row.name),
  );
}

function onItems(s: MenuState, items: readonly MenuItem[]): MenuStep {
  const keep = items.some((i) => i.name === s.selected);
  const selected = keep ? s.selected : s.open ? (items[0]?.name ?? null) : null;
  return step({ ...s, items, selected }, s.open ? [{ kind: 'redraw' }] : []);
}

function onOpen(s: MenuState, active: string | null): MenuStep {
  if (s.open) return step(s);
  const selected = s.items.some((i) => i.name === active) ? active : (s.items[0]?.name ?? null);
  return step({ ...s, open: true, selected }, [{ kind: 'show' }]);
}

/** While open the menu consumes every key and pointer event; while closed it ignores them. */
export function menuStep(s: MenuState, ev: MenuEvent, _nowMs = 0): MenuStep {
  switch (ev.kind) {
    case 'open':
      return onOpen(s, ev.active);
    case 'items':
      return onItems(s, ev.items);
    case 'rows':
      return step({ ...s, rows: ev.rows });
    case 'dismiss':
      return s.open ? closed(s) : step(s);
    case 'key':
      return s.open ? onKey(s, ev.code, ev.value) : step(s);
    case 'pointer':
      return s.open ? onPointer(s, ev.x, ev.y, ev.press) : step(s);
  }
}
