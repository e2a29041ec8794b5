import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Config, configSchema } from '../../src/config/schema.js';
import { headStartName, startHeadStart } from '../../src/service/head-start.js';
import { Switcher } from '../../src/service/switcher.js';
import { silentLogger } from '../../src/util/log.js';
import { tempDir } from '../helpers/temp.js';
import { ownXvfbs } from './helpers/own-x-servers.js';

describe('headStartName: the first display, when the configured VMs alone tell it', () => {
  it.each([
    { what: 'the first VM in config order', names: ['a', 'b'], remembered: null, want: 'a' },
    {
      what: 'the remembered display when it is a configured VM',
      names: ['a', 'b'],
      remembered: 'b',
      want: 'b',
    },
    {
      what: 'none when the remembered one may be a found image or admin',
      names: ['a'],
      remembered: 'admin',
      want: null,
    },
    {
      what: 'none without configured VMs (the first may be a found image)',
      names: [],
      remembered: null,
      want: null,
    },
  ])('$what', ({ names, remembered, want }) => {
    expect(headStartName(names, remembered)).toBe(want);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The head start on real Xvfb servers, handed to the switcher as `kvmux run` does. */
const switchers: Switcher[] = [];

afterEach(async () => {
  for (const s of switchers.splice(0)) await s.stop();
  expect(ownXvfbs()).toEqual([]);
});

function config(extra: Record<string, unknown> = {}): Config {
  const dir = tempDir('kvmux-head-start-');
  return configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    console: 'virtual',
    x: { firstDisplay: 195, width: 640, height: 480 },
    ...extra,
  });
}

function switcher(cfg: Config, headStart: ReturnType<typeof startHeadStart>): Switcher {
  const s = new Switcher({ config: cfg, headStart });
  switchers.push(s);
  for (const name of ['a', 'b']) s.add(name, 'vm');
  return s;
}

describe('head start', () => {
  it('the first display takes the server started early (no second server)', async () => {
    const cfg = config();
    const head = startHeadStart(cfg, ['a', 'b'], silentLogger);
    expect(head?.name).toBe('a');
    const early = await head!.server;
    const s = switcher(cfg, head);
    expect(await s.startFirst()).toBe('a');
    expect(s.live('a')?.server.pid).toBe(early.pid);
    expect(ownXvfbs()).toEqual([early.pid]);
  });

  it('a server started for a display that is not first after all is stopped', async () => {
    const cfg = config();
    const head = startHeadStart(cfg, ['b', 'a'], silentLogger); // the guess: b
    const early = await head!.server;
    const s = switcher(cfg, head); // the switcher's order: a first
    expect(await s.startFirst()).toBe('a');
    expect(s.live('a')?.server.pid).not.toBe(early.pid);
    await Promise.race([early.exited, sleep(5000)]);
    expect(ownXvfbs()).toEqual([s.live('a')?.server.pid]);
  });

  it('an unused head start is stopped with the switcher (a start that failed early)', async () => {
    const cfg = config();
    const head = startHeadStart(cfg, ['a'], silentLogger);
    const early = await head!.server;
    const s = new Switcher({ config: cfg, headStart: head });
    await s.stop();
    await Promise.race([early.exited, sleep(5000)]);
    expect(ownXvfbs()).toEqual([]);
  });

  it('none for console: vt, nor when an earlier kvmux left a server to adopt', () => {
    expect(startHeadStart(config({ console: 'vt' }), ['a'], silentLogger)).toBeNull();
    const cfg = config();
    mkdirSync(join(cfg.stateDir, 'displays'), { recursive: true });
    writeFileSync(join(cfg.stateDir, 'displays', 'a.json'), '{}');
    expect(startHeadStart(cfg, ['a'], silentLogger)).toBeNull();
  });
});
