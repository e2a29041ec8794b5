import { describe, expect, it } from 'vitest';
import {
  CTRL_ALT_DEL,
  DEFAULT_BLOCKED,
  parseChord,
  parseChords,
  QEMU_HOST_KEYS,
} from '../../src/input/chord.js';
import { keyCode } from '../../src/input/codes.js';

describe('chord syntax', () => {
  it.each([
    ['ctrl+alt+backspace', ['alt', 'ctrl'], 'backspace'],
    ['Alt+Ctrl+BackSpace', ['alt', 'ctrl'], 'backspace'],
    ['ctrl+alt+f1', ['alt', 'ctrl'], 'f1'],
    ['sysrq', [], 'sysrq'],
    ['alt+sysrq', ['alt'], 'sysrq'],
    ['control+alt+del', ['alt', 'ctrl'], 'delete'],
    ['ctrl+alt+2', ['alt', 'ctrl'], '2'],
    ['ctrl+alt+plus', ['alt', 'ctrl'], 'equal'],
    ['super+l', ['meta'], 'l'],
  ])('%s', (text, mods, key) => {
    const c = parseChord(text);
    expect(c.mods).toEqual(mods);
    expect(c.key).toBe(keyCode(key));
  });

  it('reads "2" as the 2 key, not key code 2', () => {
    expect(parseChord('ctrl+alt+2').key).toBe(3);
  });

  it.each([
    ['ctrl+alt+nosuchkey', /unknown key "nosuchkey"/],
    ['hyper+a', /unknown modifier "hyper"/],
    ['ctrl+alt', /must not be a modifier/],
    ['', /unknown key ""/],
  ])('rejects %j naming the chord', (text, msg) => {
    expect(() => parseChord(text)).toThrow(msg);
  });

  it('has parseable default, Ctrl+Alt+Del and QEMU sets', () => {
    expect(parseChords(DEFAULT_BLOCKED)).toHaveLength(15);
    expect(parseChords(CTRL_ALT_DEL)).toHaveLength(2);
    expect(parseChords(QEMU_HOST_KEYS).map((c) => c.text)).toContain('alt+ctrl+q');
  });
});
