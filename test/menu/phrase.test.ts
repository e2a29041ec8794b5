import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPhrase, generatePhrase, loadPhrase, PHRASE_FILE } from '../../src/menu/phrase.js';
import { markedMask, TrustLeds } from '../../src/menu/trust-leds.js';
import { tempDir } from '../helpers/temp.js';

const dirs: string[] = [];
const tmp = () => {
  const d = tempDir('kvmux-phrase-');
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('host phrase', () => {
  it('generates three words and a number', () => {
    expect(generatePhrase()).toMatch(/^[a-z]+ [a-z]+ [a-z]+ \d\d$/);
    expect(generatePhrase(() => 0)).toBe('amber amber amber 00');
  });

  it('uses the configured phrase and writes nothing', () => {
    const d = tmp();
    expect(loadPhrase({ configured: ' blue door ', stateDir: d })).toBe('blue door');
    expect(() => statSync(join(d, PHRASE_FILE))).toThrow();
  });

  it('generates once, stores it 0600, and returns the same phrase afterwards', () => {
    const d = join(tmp(), 'state');
    const first = loadPhrase({ stateDir: d });
    expect(readFileSync(join(d, PHRASE_FILE), 'latin1').trim()).toBe(first);
    expect(statSync(join(d, PHRASE_FILE)).mode & 0o777).toBe(0o600);
    expect(loadPhrase({ stateDir: d })).toBe(first);
  });

  it('keeps a phrase an admin wrote into the file', () => {
    const d = tmp();
    writeFileSync(join(d, PHRASE_FILE), 'the owl flies at noon\n');
    expect(loadPhrase({ stateDir: d })).toBe('the owl flies at noon');
  });

  it('never replaces a stored phrase it cannot use: a bad one or an unreadable file is an error, the file kept', () => {
    const d = tmp();
    const file = join(d, PHRASE_FILE);
    writeFileSync(file, 'snow \u2603\n', 'utf8');
    expect(() => loadPhrase({ stateDir: d })).toThrow(new RegExp(`${file}: host phrase`));
    expect(readFileSync(file, 'utf8')).toBe('snow \u2603\n');
    rmSync(file);
    mkdirSync(file); // EISDIR: not "no phrase yet"
    expect(() => loadPhrase({ stateDir: d })).toThrow(/EISDIR/);
    expect(statSync(file).isDirectory()).toBe(true);
  });

  it('refuses phrases the core font cannot draw, naming the source', () => {
    expect(() => checkPhrase('snow \u2603', 'menu.phrase')).toThrow(/menu.phrase: host phrase "snow \u2603"/);
    expect(() => checkPhrase('  ', 'menu.phrase')).toThrow(/1-64 printable/);
  });
});

describe('trust LEDs', () => {
  it('lights scroll lock on top of the current locks, or all three', () => {
    expect(markedMask(0b010, 'scroll')).toBe(0b110);
    expect(markedMask(0, 'all')).toBe(0b111);
  });

  it("restores what was lit before opening, or the new display's LEDs", () => {
    const seen: number[] = [];
    const leds = new TrustLeds({ setLeds: (m) => seen.push(m) });
    leds.mark(0b001);
    expect(leds.marked).toBe(true);
    leds.mark(0b101); // a redraw while open must not overwrite the saved mask
    leds.restore();
    expect(leds.marked).toBe(false);
    leds.mark(0);
    leds.restore(0b010);
    leds.restore(); // nothing saved: no write
    expect(seen).toEqual([0b101, 0b101, 0b001, 0b100, 0b010]);
  });
});
