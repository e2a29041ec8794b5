/**
 * Linux input event codes (linux/input-event-codes.h) and the names kvmux uses for them in
 * config, logs, sequence tests and `kvmux monitor`. One table, shared by code and tests.
 */
export const EV = { SYN: 0x00, KEY: 0x01, REL: 0x02, ABS: 0x03, MSC: 0x04, LED: 0x11, REP: 0x14 } as const;
export const SYN_REPORT = 0;
export const REL = { X: 0x00, Y: 0x01, HWHEEL: 0x06, WHEEL: 0x08 } as const;
export const ABS = { X: 0x00, Y: 0x01 } as const;
export const LED = { NUML: 0x00, CAPSL: 0x01, SCROLLL: 0x02 } as const;
/** Key event values: the kernel's autorepeat is value 2. */
export const KEY_UP = 0;
export const KEY_DOWN = 1;
export const KEY_REPEAT = 2;

const KEYS: ReadonlyArray<readonly [string, number]> = [
  ['esc', 1],
  ['1', 2],
  ['2', 3],
  ['3', 4],
  ['4', 5],
  ['5', 6],
  ['6', 7],
  ['7', 8],
  ['8', 9],
  ['9', 10],
  ['0', 11],
  ['minus', 12],
  ['equal', 13],
  ['backspace', 14],
  ['tab', 15],
  ['q', 16],
  ['w', 17],
  ['e', 18],
  ['r', 19],
  ['t', 20],
  ['y', 21],
  ['u', 22],
  ['i', 23],
  ['o', 24],
  ['p', 25],
  ['leftbrace', 26],
  ['rightbrace', 27],
  ['enter', 28],
  ['leftctrl', 29],
  ['a', 30],
  ['s', 31],
  ['d', 32],
  ['f', 33],
  ['g', 34],
  ['h', 35],
  ['j', 36],
  ['k', 37],
  ['l', 38],
  ['semicolon', 39],
  ['apostrophe', 40],
  ['grave', 41],
  ['leftshift', 42],
  ['backslash', 43],
  ['z', 44],
  ['x', 45],
  ['c', 46],
  ['v', 47],
  ['b', 48],
  ['n', 49],
  ['m', 50],
  ['comma', 51],
  ['dot', 52],
  ['slash', 53],
  ['rightshift', 54],
  ['kpasterisk', 55],
  ['leftalt', 56],
  ['space', 57],
  ['capslock', 58],
  ['f1', 59],
  ['f2', 60],
  ['f3', 61],
  ['f4', 62],
  ['f5', 63],
  ['f6', 64],
  ['f7', 65],
  ['f8', 66],
  ['f9', 67],
  ['f10', 68],
  ['numlock', 69],
  ['scrolllock', 70],
  ['kp7', 71],
  ['kp8', 72],
  ['kp9', 73],
  ['kpminus', 74],
  ['kp4', 75],
  ['kp5', 76],
  ['kp6', 77],
  ['kpplus', 78],
  ['kp1', 79],
  ['kp2', 80],
  ['kp3', 81],
  ['kp0', 82],
  ['kpdot', 83],
  ['102nd', 86],
  ['f11', 87],
  ['f12', 88],
  ['kpenter', 96],
  ['rightctrl', 97],
  ['kpslash', 98],
  ['sysrq', 99],
  ['rightalt', 100],
  ['home', 102],
  ['up', 103],
  ['pageup', 104],
  ['left', 105],
  ['right', 106],
  ['end', 107],
  ['down', 108],
  ['pagedown', 109],
  ['insert', 110],
  ['delete', 111],
  ['mute', 113],
  ['volumedown', 114],
  ['volumeup', 115],
  ['power', 116],
  ['kpequal', 117],
  ['pause', 119],
  ['leftmeta', 125],
  ['rightmeta', 126],
  ['compose', 127],
  ['f13', 183],
  ['f14', 184],
  ['f15', 185],
  ['f16', 186],
  ['f17', 187],
  ['f18', 188],
  ['f19', 189],
  ['f20', 190],
  ['f21', 191],
  ['f22', 192],
  ['f23', 193],
  ['f24', 194],
  ['print', 210],
  ['btn_left', 0x110],
  ['btn_right', 0x111],
  ['btn_middle', 0x112],
  ['btn_side', 0x113],
  ['btn_extra', 0x114],
  ['btn_touch', 0x14a],
];

/** Aliases accepted when parsing (config, sequence files); never produced. */
const ALIASES: ReadonlyArray<readonly [string, number]> = [
  ['ctrl', 29],
  ['control', 29],
  ['shift', 42],
  ['alt', 56],
  ['altgr', 100],
  ['meta', 125],
  ['super', 125],
  ['scroll_lock', 70],
  ['scrlk', 70],
  ['del', 111],
  ['return', 28],
  ['escape', 1],
  ['prtsc', 99],
  ['zap', 14],
];

const byName = new Map<string, number>([...KEYS, ...ALIASES]);
const byCode = new Map<number, string>(KEYS.map(([n, c]) => [c, n]));

export const KEY = Object.fromEntries(KEYS.map(([n, c]) => [n.toUpperCase(), c])) as Record<string, number>;
export const KEY_SCROLLLOCK = 70;
export const KEY_MAX = 0x2ff;
export const BTN_MOUSE = 0x110;

/** Key code for a name (`scrolllock`, `leftctrl`, `f1`, `a`, or a decimal code), or undefined. */
export function keyCode(name: string): number | undefined {
  const lower = name.trim().toLowerCase();
  // Names win over numbers: "2" is the 2 key (code 3), not code 2.
  const named = byName.get(lower);
  if (named !== undefined) return named;
  if (/^\d+$/.test(lower)) {
    const n = Number(lower);
    return n > 0 && n <= KEY_MAX ? n : undefined;
  }
  return byName.get(lower) ?? byName.get(lower.replace(/^key_/, ''));
}

/** Canonical name of a key code (`key_123` when unnamed). */
export function keyName(code: number): string {
  return byCode.get(code) ?? `key_${code}`;
}

/** The four modifier families a chord can need; left and right keys count alike. */
export type Modifier = 'ctrl' | 'alt' | 'shift' | 'meta';
export const MODIFIER_OF: ReadonlyMap<number, Modifier> = new Map<number, Modifier>([
  [29, 'ctrl'],
  [97, 'ctrl'],
  [56, 'alt'],
  [100, 'alt'],
  [42, 'shift'],
  [54, 'shift'],
  [125, 'meta'],
  [126, 'meta'],
]);

/** Digit keys of the main row and the keypad, mapped to 1..9 and 0. */
export function digitOf(code: number): number | undefined {
  if (code >= 2 && code <= 10) return code - 1;
  if (code === 11) return 0;
  const kp: Record<number, number> = { 79: 1, 80: 2, 81: 3, 75: 4, 76: 5, 77: 6, 71: 7, 72: 8, 73: 9, 82: 0 };
  return kp[code];
}

export function isButton(code: number): boolean {
  return code >= 0x100 && code < 0x160;
}
