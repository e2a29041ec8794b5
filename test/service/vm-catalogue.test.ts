import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyOverlay, overlayPath } from '../../src/config/overlay.js';
import { type Config, configSchema } from '../../src/config/schema.js';
import { connectSocket } from '../../src/control/rpc/client.js';
import { configMethods } from '../../src/service/config-methods.js';
import type { ConsoleInput } from '../../src/service/console-input.js';
import { jobMethods } from '../../src/service/job-methods.js';
import { Switcher } from '../../src/service/switcher.js';
import { affectsImages, VmCatalogue } from '../../src/service/vm-catalogue.js';
import type { Backend } from '../../src/session/backends/backend.js';
import { createCommandBackend } from '../../src/session/backends/command.js';
import { Supervisor } from '../../src/session/supervisor.js';
import { type Logger, silentLogger } from '../../src/util/log.js';
import { isAlive } from '../../src/util/proc.js';
import { codeOf, startServer } from '../control/helpers.js';
import { tempDir } from '../helpers/temp.js';
import { ownXvfbs } from './helpers/own-x-servers.js';

/**
 * The catalogue with a real supervisor and real processes. Found images are QEMU VMs; the
 * stand-in QEMU backend (`sleepAsQemu`) runs `sleep` instead, so no guest has to boot.
 */
function sleepAsQemu(): Backend {
  const command = createCommandBackend({ termTimeoutMs: 2000 });
  return {
    kind: 'qemu',
    hostKeys: [],
    start: (vm, ctx) => command.start({ ...vm, backend: 'command', command: ['sleep', '600'] }, ctx),
    adopt: async () => null,
  };
}

interface Rig {
  config: Config;
  images: string;
  supervisor: Supervisor;
  switcher: Switcher;
  catalogue: VmCatalogue;
}

const rigs: Rig[] = [];

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    r.catalogue.close();
    await r.supervisor.shutdown({ force: true });
    await r.switcher.stop();
  }
});

function rig(images: string[], opts: { displays?: boolean; log?: Logger } = {}): Rig {
  const dir = tempDir('kvmux-catalogue-');
  const imageDir = join(dir, 'images');
  mkdirSync(imageDir, { recursive: true });
  for (const f of images) writeFileSync(join(imageDir, f), '');
  const config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    console: 'virtual',
    x: { firstDisplay: 150 },
    imageDirs: [imageDir],
  });
  mkdirSync(config.stateDir, { recursive: true });
  const switcher = new Switcher({ config });
  const supervisor = new Supervisor({
    config: { runDir: config.runDir, stateDir: config.stateDir, vms: [] },
    backends: { qemu: sleepAsQemu() },
    // sleep draws nothing: a real display only where the test is about displays
    displayFor: (vm) =>
      opts.displays ? switcher.displayInfo(vm.name) : { display: ':150', width: 1024, height: 768 },
    // a crash waits a minute for its relaunch: the test sees the crashed state
    policy: { baseMs: 60_000, maxMs: 60_000, maxCrashes: 5, windowMs: 120_000 },
  });
  // the catalogue only tells the console input which chords a VM blocks
  const input = { setBlocked: () => {} } as unknown as ConsoleInput;
  const catalogue = new VmCatalogue({
    base: config,
    overlay: emptyOverlay(),
    log: opts.log ?? silentLogger,
    supervisor,
    switcher,
    input,
    net: null,
  });
  catalogue.attachInitial();
  const r = { config, images: imageDir, supervisor, switcher, catalogue };
  rigs.push(r);
  return r;
}

const names = (r: Rig) => r.catalogue.vms.map((v) => v.name).sort();

describe('VM catalogue changes against running VMs', () => {
  it('refuses a change that would remove a running found VM, writes nothing, and later changes still work', async () => {
    const r = rig(['c.img', 'd.img']);
    const c = await r.supervisor.start('c');
    await expect(r.catalogue.create({ name: 'x', disk: join(r.images, 'c.img') })).rejects.toMatchObject({
      rpcCode: -32009,
      message: expect.stringContaining('VM "c" is running'),
    });
    expect(existsSync(overlayPath(r.config.stateDir))).toBe(false);
    expect(names(r)).toEqual(['c', 'd']);
    expect(r.supervisor.has('x')).toBe(false);
    expect(isAlive(c.pid!)).toBe(true);
    // the refused change blocks nothing: another VM can be made from the other found image
    await r.catalogue.create({ name: 'y', disk: join(r.images, 'd.img') });
    expect(names(r)).toEqual(['c', 'y']);
    expect(readFileSync(overlayPath(r.config.stateDir), 'utf8')).toContain('name: y');
    await r.catalogue.rescan();
    expect(names(r)).toEqual(['c', 'y']);
    // once c is stopped its image can become x
    await r.supervisor.stop('c', { force: true });
    await r.catalogue.create({ name: 'x', disk: join(r.images, 'c.img') });
    expect(names(r)).toEqual(['x', 'y']);
    expect(r.supervisor.has('c')).toBe(false);
  }, 30_000);

  it('deletes a crashed VM for good: gone from the list and never relaunched', async () => {
    const r = rig(['a.img']);
    const a = await r.supervisor.start('a');
    const crashed = new Promise<void>((resolve) =>
      r.supervisor.on('state', (st) => st.name === 'a' && st.state === 'crashed' && resolve()),
    );
    process.kill(a.pid!, 'SIGKILL');
    await crashed;
    expect(r.supervisor.get('a').nextRestartAt).not.toBeNull();
    await expect(r.catalogue.delete('a')).resolves.toMatchObject({ name: 'a' });
    expect(names(r)).toEqual([]);
    expect(r.supervisor.has('a')).toBe(false);
    expect(r.catalogue.describe().overlay.removed).toEqual(['a']);
  }, 30_000);
});

/** The rig's catalogue behind a real control socket, with the config and resource methods. */
async function served(r: Rig) {
  const { server, sock } = await startServer(tempDir('kvmux-catalogue-ctl-'));
  server.register([...configMethods(r.catalogue), ...jobMethods(r.supervisor, r.catalogue)]);
  const c = await connectSocket(sock);
  return {
    c,
    close: async () => {
      c.close();
      await server.close();
    },
  };
}

describe('VM catalogue over the control socket', () => {
  it('vm.create refuses a name that is not wholly [a-z0-9-] (1-31 chars): it would be a path component', async () => {
    const r = rig(['disk1.img', 'disk2.img']);
    const { c, close } = await served(r);
    try {
      for (const name of ['a/b', 'a/../../etc', 'a..', 'a b', 'a.b', 'a'.repeat(32), 'a'.repeat(200)]) {
        const [code, message] = await codeOf(c.call('vm.create', { name, disk: 'disk1.img' }));
        expect([name, code]).toEqual([name, -32602]);
        expect(message).toMatch(/name/);
      }
      expect(existsSync(overlayPath(r.config.stateDir))).toBe(false);
      expect(names(r)).toEqual(['disk1', 'disk2']);
      const longest = `a${'-0'.repeat(15)}`;
      expect(longest).toHaveLength(31);
      await c.call('vm.create', { name: longest, disk: 'disk1.img' });
      expect(names(r)).toEqual([longest, 'disk2']);
    } finally {
      await close();
    }
  }, 30_000);

  it('vm.setResources {name} removes the limits from kvmux own layer', async () => {
    const r = rig(['found.img']);
    const { c, close } = await served(r);
    try {
      await c.call('vm.create', { name: 'lim', disk: 'found.img' });
      expect(await c.call('vm.setResources', { name: 'lim', cpuQuota: 0.5, memoryMaxMiB: 256 })).toEqual({
        live: false,
        resources: { cpuQuota: 0.5, memoryMaxMiB: 256 },
      });
      expect(r.catalogue.find('lim')?.resources).toEqual({ cpuQuota: 0.5, memoryMaxMiB: 256 });
      expect(readFileSync(overlayPath(r.config.stateDir), 'utf8')).toContain('cpuQuota: 0.5');
      expect(await c.call('vm.setResources', { name: 'lim' })).toEqual({ live: false, resources: {} });
      expect(r.catalogue.find('lim')?.resources).toBeUndefined();
      expect(readFileSync(overlayPath(r.config.stateDir), 'utf8')).not.toMatch(/resources|cpuQuota/);
    } finally {
      await close();
    }
  }, 30_000);
});

describe('VM catalogue hot-add', () => {
  it('an image dropped into a folder becomes a VM whose X server starts only with the VM', async () => {
    const r = rig([], { displays: true });
    const before = ownXvfbs();
    writeFileSync(join(r.images, 'new.img'), '');
    await r.catalogue.rescan();
    expect(names(r)).toEqual(['new']);
    expect(r.switcher.list().map((d) => d.name)).toEqual(['new']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(ownXvfbs()).toEqual(before);
    await r.supervisor.start('new');
    expect(r.switcher.live('new')).not.toBeNull();
    expect(ownXvfbs().length).toBe(before.length + 1);
  }, 30_000);
});

/** A logger that keeps its lines (the catalogue logs each folder rescan at debug level). */
function keptLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }), lines };
}

async function until(fn: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Run `write` every 100 ms until the returned stop is called. */
function busyWriter(write: (n: number) => void): () => void {
  let n = 0;
  const t = setInterval(() => write(n++), 100);
  return () => clearInterval(t);
}

describe('watched image folders', () => {
  it.each([
    ['rename', 'new.qcow2', true],
    ['rename', 'new.yaml', true],
    ['change', 'new.yaml', true],
    ['change', 'busy.qcow2', false],
    ['change', 'busy.img', false],
    ['rename', 'notes.txt', false],
    ['change', null, true],
  ] as const)('%s of %s matters: %s', (event, file, expected) => {
    expect(affectsImages(event, file)).toBe(expected);
  });

  it('a guest writing its own image every 100 ms causes no rescans, and an image dropped in meanwhile appears', async () => {
    const { log, lines } = keptLog();
    const r = rig(['busy.img'], { log });
    r.catalogue.watchImages();
    const stop = busyWriter(() => appendFileSync(join(r.images, 'busy.img'), 'x'));
    try {
      // longer than the longest a rescan may be held back (2 s)
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(lines.filter((l) => l.includes('rescanning'))).toEqual([]);
      writeFileSync(join(r.images, 'new.img'), '');
      await until(() => names(r).includes('new'), 'the new image listed');
    } finally {
      stop();
    }
    expect(names(r)).toEqual(['busy', 'new']);
  }, 30_000);

  it('a sidecar rewritten every 100 ms does not hold back an image dropped in', async () => {
    const r = rig(['busy.img']);
    r.catalogue.watchImages();
    const stop = busyWriter((n) => writeFileSync(join(r.images, 'busy.yaml'), `autostart: false # ${n}\n`));
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      writeFileSync(join(r.images, 'new.img'), '');
      await until(() => names(r).includes('new'), 'the new image listed');
    } finally {
      stop();
    }
  }, 30_000);
});
