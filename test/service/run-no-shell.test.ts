import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/demo/fifo-keys.js';
import { type Kvmux, startKvmux } from '../../src/demo/kvmux-process.js';
import { connectDisplay } from '../../src/x/connection.js';
import { distinctColours, grab } from '../../src/x/screenshot.js';
import { actAndSettle } from '../helpers/screen-wait.js';

/**
 * The appliance as its owner meets it, with no shell: `kvmux run` (built CLI, Xvfb from :160)
 * starts with no password; every step is keys typed through the FIFO keyboard into the admin
 * display (first-boot setup, then the VMs pane). Only the checks use the control socket.
 */
let k: Kvmux;
let imageDir: string;
let image: string;

interface Row {
  name: string;
  state: string;
  memoryMiB: number | null;
  cpus: number | null;
}
const vmList = () => k.call<Row[]>('vm.list');
const row = async (name: string) => (await vmList()).find((v) => v.name === name);

async function until(fn: () => Promise<boolean>, what: string, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}\n${k.log().slice(-3000)}`);
    await sleep(200);
  }
}

/** ScrLk ScrLk 2 (admin is last: one VM, then admin), then wait until the TUI has painted. */
async function showAdmin(): Promise<void> {
  await k.kb.doubleTap();
  await k.kb.tap('2');
  await until(
    async () => (await k.call<{ active: string }>('service.status')).active === 'admin',
    'admin shown',
  );
  const admin = (await k.call<Array<{ name: string; display: string }>>('display.list')).find(
    (d) => d.name === 'admin',
  )!.display;
  await until(async () => {
    const conn = await connectDisplay(admin);
    try {
      return distinctColours(await grab(conn), 4) >= 3;
    } finally {
      await conn.close();
    }
  }, 'the admin TUI');
  await sleep(800);
}

async function enter(text: string): Promise<void> {
  await k.kb.chord(['leftctrl'], 'u');
  await k.kb.type(text);
  await k.kb.tap('enter');
  await sleep(400);
}

/** What must not change when a call is refused: kvmux's config layer, the password, the images. */
function diskState(): string {
  const state = join(k.dir, 'state');
  const files = [join(state, 'config.yaml'), join(state, 'admin.passwd'), join(state, 'menu-phrase')];
  const images = readdirSync(imageDir).map((f) => join(imageDir, f));
  return [...files, ...images]
    .map((f) => `${f} ${existsSync(f) ? createHash('sha256').update(readFileSync(f)).digest('hex') : '-'}`)
    .join('\n');
}

beforeAll(async () => {
  k = await startKvmux({
    firstDisplay: 160,
    admin: true,
    vms: [],
    extra: { imageDirs: [] },
  });
  // the image folder is inside kvmux's temp dir; set it up, then restart on the same dir
  imageDir = join(k.dir, 'images');
  mkdirSync(imageDir);
  image = join(imageDir, 'disk1.img');
  writeFileSync(image, Buffer.alloc(1 << 20));
  await k.crash('SIGTERM');
  const cfg = readFileSync(k.configPath, 'utf8').replace('imageDirs: []', `imageDirs:\n  - ${imageDir}`);
  writeFileSync(k.configPath, cfg);
  k = await k.restart();
}, 120_000);

afterAll(async () => {
  await k?.stop();
});

describe('run the appliance without a shell', () => {
  it('starts with no password; the found image is a stopped VM', async () => {
    expect(await k.call('auth.status')).toEqual({ passwordSet: false });
    expect(await row('disk1')).toMatchObject({ state: 'stopped' });
  });

  it('first-boot setup on the admin display: password twice, phrase kept, first VM from the found image', async () => {
    const phrase = readFileSync(join(k.dir, 'state', 'menu-phrase'), 'utf8');
    await showAdmin();
    await enter('Secret12');
    await enter('Secret13'); // a typo: asked again
    expect(await k.call('auth.status')).toEqual({ passwordSet: false });
    await enter('Secret12');
    await enter('Secret12');
    await until(
      async () => (await k.call<{ passwordSet: boolean }>('auth.status')).passwordSet,
      'password set',
    );
    await k.kb.tap('enter'); // keep the phrase
    await sleep(400);
    await enter('1'); // the first (only) image
    await enter('web');
    await k.kb.tap('escape'); // do not start it now
    await until(async () => (await row('web')) !== undefined, 'web created');
    expect(await row('disk1')).toBeUndefined(); // the found image is web's disk now
    expect(readFileSync(join(k.dir, 'state', 'menu-phrase'), 'utf8')).toBe(phrase);
    const audit = await k.call<Array<{ method: string; params: unknown }>>('audit.tail', { lines: 50 });
    const passwd = audit.find((a) => a.method === 'auth.passwd');
    expect(JSON.stringify(passwd)).not.toContain('Secret12'); // audited, password redacted
  });

  it('changes memory and CPUs from the VMs pane', async () => {
    await k.kb.tap('tab'); // focus the VMs pane; web is the only row
    await sleep(300);
    await k.kb.tap('c');
    await sleep(400);
    await enter('3');
    await until(async () => (await row('web'))?.cpus === 3, 'cpus 3');
    await k.kb.tap('m');
    await sleep(400);
    await enter('384');
    await until(async () => (await row('web'))?.memoryMiB === 384, 'memory 384');
  });

  it('SIGTERM and start again: the changes are still there, and no setup is offered', async () => {
    await k.crash('SIGTERM');
    k = await k.restart();
    expect(await row('web')).toMatchObject({ state: 'stopped', cpus: 3, memoryMiB: 384 });
    expect(await row('disk1')).toBeUndefined();
    expect(await k.call('auth.status')).toEqual({ passwordSet: true });
    const cfg = await k.call<{ overlay: { vms: Array<{ name: string; qemu: { disk: string } }> } }>(
      'config.get',
    );
    expect(cfg.overlay.vms).toMatchObject([{ name: 'web', qemu: { disk: image } }]);
  });

  it('refuses bad input to every new method with the contract code, and nothing changes on disk', async () => {
    // a disk outside the image folders: the console (root) may name one
    const other = join(k.dir, 'other.img');
    writeFileSync(other, Buffer.alloc(4096));
    const before = diskState();
    const cases: Array<[string, unknown, number]> = [
      ['vm.create', { name: 'a/b', disk: 'disk1.img' }, -32602],
      ['vm.create', { name: '..', disk: 'disk1.img' }, -32602],
      ['vm.create', { name: 5, disk: 'disk1.img' }, -32602],
      ['vm.create', { name: 'x', disk: '../state/admin.passwd' }, -32602],
      ['vm.create', { name: 'x', disk: `${imageDir}/../kvmux.yaml` }, -32602],
      ['vm.create', { name: 'x', disk: 'nope.img' }, -32004],
      ['vm.create', { name: 'x', disk: 'disk1.img', memoryMiB: 'lots' }, -32602],
      ['vm.create', { name: 'x', disk: other, nics: [{ network: 'nowhere' }] }, -32602],
      ['vm.create', { name: 'x', disk: other, cpus: 0 }, -32602],
      ['vm.create', { name: 'x', disk: 'disk1.img', colour: 'red' }, -32602],
      ['vm.create', { name: 'web', disk: 'disk1.img' }, -32009],
      ['vm.update', { name: 'ghost', cpus: 2 }, -32004],
      ['vm.update', { name: 'web', cpus: 'two' }, -32602],
      ['vm.update', { name: 'a/../web', cpus: 2 }, -32602],
      ['vm.update', { name: 'web', blockedKeys: ['ctrl+nosuchkey'] }, -32602],
      ['vm.update', { name: 'web', disk: '../kvmux.yaml' }, -32602],
      ['vm.update', { name: 'web', nics: [{ network: 'nowhere' }] }, -32602],
      ['vm.delete', { name: 'ghost' }, -32004],
      ['vm.delete', { name: '../web' }, -32602],
      ['vm.delete', { name: 'web', deleteDisk: 'yes' }, -32602],
      ['config.get', { x: 1 }, -32602],
      ['auth.passwd', { new: 5 }, -32602],
      ['auth.passwd', { new: '' }, -32602],
      ['auth.passwd', { new: 'other' }, -32602],
      ['auth.passwd', { old: 'wrong', new: 'other' }, -32001],
      ['menu.phrase', { phrase: 7 }, -32602],
      ['image.delete', { name: 'disk1.img' }, -32009], // the configured VM "web" names it
      ['image.delete', { name: '../state/admin.passwd' }, -32602],
      ['image.delete', { name: 'a/disk1.img' }, -32602],
      ['image.delete', { name: 'nope.img' }, -32004],
      ['image.list', { sha256: 'yes' }, -32602],
      ['image.download.begin', { name: 5 }, -32602],
      ['image.download.begin', { name: '..img' }, -32602],
      ['image.download.begin', { name: 'nope.img' }, -32004],
      ['image.download.chunk', { downloadId: 'f'.repeat(32), offset: 0, length: 1 }, -32004],
      ['image.import', { path: 'disk1.img' }, -32602],
      ['image.import', { path: other, name: 'disk1.img' }, -32009],
      ['image.import', { path: `${imageDir}/../other.img` }, -32602],
      ['image.import', { path: join(k.dir, 'gone.img') }, -32004],
    ];
    for (const [method, params, code] of cases) {
      const err = await k.call(method, params).then(
        () => null,
        (e: unknown) => e as { code: number; message: string },
      );
      expect(err?.code, `${method} ${JSON.stringify(params)}: ${err?.message}`).toBe(code);
    }
    expect(diskState()).toBe(before);
    expect(await row('web')).toMatchObject({ cpus: 3, memoryMiB: 384 });
    const images = await k.call<Array<{ name: string; usedBy: string[] }>>('image.list', {});
    expect(images.map((i) => [i.name, i.usedBy])).toEqual([['disk1.img', ['web']]]);
  });

  it('deletes the VM from the admin display; the image survives and is found again', async () => {
    await showAdmin();
    const logins = async () =>
      (await k.call<Array<{ method: string }>>('audit.tail', { lines: 200 })).filter(
        (e) => e.method === 'auth.login',
      ).length;
    const before = await logins();
    await enter('Secret12'); // the lock screen this time
    await until(async () => (await logins()) > before, 'the login answered');
    await sleep(1000);
    const admin = (await k.call<Array<{ name: string; display: string }>>('display.list')).find(
      (d) => d.name === 'admin',
    )!.display;
    await k.kb.tap('tab');
    await sleep(300);
    // the confirmation must be on screen before Enter, or Enter goes to the pane
    await actAndSettle(admin, () => k.kb.tap('d'));
    await k.kb.tap('enter');
    await until(async () => (await row('web')) === undefined, 'web deleted');
    expect(statSync(image).size).toBe(1 << 20);
    await until(async () => (await row('disk1')) !== undefined, 'the image is a found VM again');
    const cfg = await k.call<{ overlay: { vms: unknown[] } }>('config.get');
    expect(cfg.overlay.vms).toEqual([]);
  });
});
