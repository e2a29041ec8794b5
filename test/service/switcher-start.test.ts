import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { Switcher } from '../../src/service/switcher.js';
import { tempDir } from '../helpers/temp.js';
import { ownXvfbs } from './helpers/own-x-servers.js';

/** Start-up order on real Xvfb servers: the display shown first comes up alone, the others on `startRest`. */
const switchers: Switcher[] = [];

afterEach(async () => {
  for (const s of switchers.splice(0)) await s.stop();
  expect(ownXvfbs()).toEqual([]);
});

function make(active?: string): Switcher {
  const dir = tempDir('kvmux-switcher-start-');
  const config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    console: 'virtual',
    x: { firstDisplay: 190, width: 640, height: 480 },
  });
  if (active) {
    // what an earlier kvmux remembered as shown (it stopped with leaveRunning, or crashed)
    mkdirSync(config.stateDir, { recursive: true });
    writeFileSync(join(config.stateDir, 'active-display'), `${active}\n`);
  }
  const s = new Switcher({ config });
  switchers.push(s);
  for (const name of ['a', 'b', 'c']) s.add(name, 'vm');
  return s;
}

const upNames = (s: Switcher) =>
  s
    .list()
    .filter((d) => d.display !== '')
    .map((d) => d.name);

describe('switcher start order', () => {
  it('startFirst brings up only the first display; startRest the others', async () => {
    const s = make();
    expect(await s.startFirst()).toBe('a');
    expect(upNames(s)).toEqual(['a']);
    expect(ownXvfbs()).toHaveLength(1);
    s.startRest();
    await Promise.all(['b', 'c'].map((n) => s.displayInfo(n)));
    expect(upNames(s)).toEqual(['a', 'b', 'c']);
    expect(ownXvfbs()).toHaveLength(3);
  });

  it('the display remembered as shown comes first', async () => {
    const s = make('c');
    expect(await s.startFirst()).toBe('c');
    expect(upNames(s)).toEqual(['c']);
  });

  it('a display started meanwhile (a VM added at run time) is not started twice by startRest', async () => {
    const s = make();
    await s.startFirst();
    s.startLater('b');
    s.startRest();
    await Promise.all(['b', 'c'].map((n) => s.displayInfo(n)));
    // a second server for b would show up as a fourth Xvfb (and lose its display on the first's exit)
    await new Promise((r) => setTimeout(r, 500));
    expect(ownXvfbs()).toHaveLength(3);
  });
});
