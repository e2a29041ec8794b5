import { ConfigError } from '../util/errors.js';
import { keyCode, keyName, MODIFIER_OF, type Modifier } from './codes.js';

/** A blocked key combination: the final key pressed while every listed modifier family is held. */
export interface Chord {
  readonly mods: readonly Modifier[];
  readonly key: number;
  readonly text: string;
}

const MOD_NAMES: Readonly<Record<string, Modifier>> = {
  ctrl: 'ctrl',
  control: 'ctrl',
  alt: 'alt',
  shift: 'shift',
  meta: 'meta',
  super: 'meta',
  win: 'meta',
};

/** Key names that only make sense in chords (QEMU's gtk accelerators say "plus"). */
const CHORD_KEYS: Readonly<Record<string, string>> = { plus: 'equal' };

/** Parse "ctrl+alt+backspace", "Alt+SysRq", "ctrl+alt+f1"; the last part is the key. */
export function parseChord(text: string): Chord {
  const parts = text.trim().toLowerCase().split('+');
  const keyPart = parts.pop() ?? '';
  const key = keyCode(CHORD_KEYS[keyPart] ?? keyPart);
  if (keyPart === '' || key === undefined) throw new ConfigError(`chord "${text}": unknown key "${keyPart}"`);
  if (MODIFIER_OF.has(key)) throw new ConfigError(`chord "${text}": the last part must not be a modifier`);
  const mods = new Set<Modifier>();
  for (const p of parts) {
    const mod = MOD_NAMES[p];
    if (!mod) throw new ConfigError(`chord "${text}": unknown modifier "${p}"`);
    mods.add(mod);
  }
  const sorted = [...mods].sort();
  return { mods: sorted, key, text: [...sorted, keyName(key)].join('+') };
}

export function parseChords(texts: readonly string[]): Chord[] {
  return texts.map(parseChord);
}

/** Host escapes swallowed on every display unless `input.blocked` replaces them. */
export const DEFAULT_BLOCKED: readonly string[] = [
  'ctrl+alt+backspace',
  ...Array.from({ length: 12 }, (_, i) => `ctrl+alt+f${i + 1}`),
  'sysrq',
  'alt+sysrq',
];

/** Blocked too when `input.ctrlAltDelToVm` is false. */
export const CTRL_ALT_DEL: readonly string[] = ['ctrl+alt+delete', 'ctrl+alt+kpdot'];

/** QEMU gtk/SDL host keys: console switch, grab, full-screen, quit, scaling, menu bar, zoom. */
export const QEMU_HOST_KEYS: readonly string[] = [
  ...Array.from({ length: 9 }, (_, i) => `ctrl+alt+${i + 1}`),
  'ctrl+alt+0',
  'ctrl+alt+g',
  'ctrl+alt+f',
  'ctrl+alt+q',
  'ctrl+alt+u',
  'ctrl+alt+m',
  'ctrl+alt+plus',
  'ctrl+alt+kpplus',
  'ctrl+alt+minus',
  'ctrl+alt+kpminus',
];
