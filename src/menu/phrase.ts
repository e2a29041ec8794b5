import { randomInt } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../util/atomic-file.js';
import { ConfigError, errnoName } from '../util/errors.js';

/**
 * The host phrase shown in the menu: a guest can draw a fake menu but cannot know this text.
 * Config `menu.phrase` wins; otherwise it is generated once and kept in `<stateDir>/menu-phrase`.
 */
const WORDS = (
  'amber anchor apple arrow aspen badge baker banjo basil beacon birch bison blossom bramble breeze ' +
  'brook cabin cactus candle canyon cargo cedar chalk cherry cinder clover cobalt comet copper coral ' +
  'cotton crane crystal dahlia delta denim dune eagle ember falcon fern fig flint forest fossil ' +
  'garnet geyser ginger glacier granite harbor hazel heron hollow honey indigo iris ivory jasper ' +
  'juniper kelp kettle lagoon lantern larch lemon lilac linen lotus maple marble meadow mesa ' +
  'mint moss nectar nutmeg oak oasis olive onyx orbit otter pebble pepper pine plum poppy prairie ' +
  'quartz quill raven reef ridge river robin saffron sage salmon sequoia sierra silver spruce ' +
  'stone summit swallow thistle thunder tide timber topaz tulip tundra umber valley velvet walnut ' +
  'willow yarrow zephyr'
).split(' ');

export const PHRASE_FILE = 'menu-phrase';

/** Three words and a two-digit number: easy to recognise at a glance, about 2^25 choices. */
export function generatePhrase(pick: (n: number) => number = randomInt): string {
  const word = () => WORDS[pick(WORDS.length)]!;
  return `${word()} ${word()} ${word()} ${String(pick(100)).padStart(2, '0')}`;
}

/** Printable ISO 8859-1 only: the overlay draws with a core X font. */
export function checkPhrase(phrase: string, where: string): string {
  const text = phrase.trim();
  if (text.length === 0 || text.length > 64 || !/^[\x20-\x7e\xa0-\xff]+$/.test(text)) {
    throw new ConfigError(`${where}: host phrase "${phrase}" must be 1-64 printable Latin-1 characters`);
  }
  return text;
}

function readStored(file: string): string | undefined {
  try {
    return checkPhrase(readFileSync(file, 'latin1'), file);
  } catch (err) {
    if (errnoName(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** The phrase to show: config first, then the stored one, else a new one written atomically (0600). */
export function loadPhrase(opts: { configured?: string | undefined; stateDir: string }): string {
  if (opts.configured !== undefined) return checkPhrase(opts.configured, 'menu.phrase');
  const file = join(opts.stateDir, PHRASE_FILE);
  const stored = readStored(file);
  if (stored !== undefined) return stored;
  const phrase = generatePhrase();
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  writeFileAtomicSync(file, `${phrase}\n`);
  return phrase;
}
