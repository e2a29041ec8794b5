import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeQemuChardev, type LinePeer } from '../control/helpers.js';
import { tempDir } from '../helpers/temp.js';
import { type Kvmux, startKvmux } from './kvmux-harness.js';

/**
 * A hostile guest against configuration as state, through its real guest channel under
 * `kvmux run` (the test plays QEMU's chardev: kvmux dials it and the test writes what the guest
 * would). The guest is logged in and its policy allows every method: what stops it here are the
 * rules of the methods themselves. Each refusal leaves kvmux's layer, the password and the
 * images as they were.
 */
const PASSWORD = 'guest-config-pw';
const PHRASE = 'amber falcon seven';
let k: Kvmux;
let images: string;
let outside: string;
let guest: LinePeer;
let chardev: Awaited<ReturnType<typeof fakeQemuChardev>>;

function diskState(): string {
  const state = join(k.dir, 'state');
  const files = [join(state, 'config.yaml'), join(state, 'admin.passwd'), outside];
  const all = [...files, ...readdirSync(images).map((f) => join(images, f))];
  return all
    .map((f) => `${f} ${existsSync(f) ? createHash('sha256').update(readFileSync(f)).digest('hex') : '-'}`)
    .join('\n');
}

beforeAll(async () => {
  const dir = tempDir('kvmux-guestcfg-');
  images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  outside = join(dir, 'outside.img');
  writeFileSync(outside, Buffer.alloc(1 << 16));
  writeFileSync(join(images, 'victim.img'), Buffer.alloc(1 << 16));
  writeFileSync(join(images, 'spare.img'), Buffer.alloc(1 << 16));
  writeFileSync(join(images, 'spare.yaml'), 'autostart: false\n');
  writeFileSync(join(images, '.kvmux-upload-1234.part'), Buffer.alloc(1 << 12));
  // a qcow2 whose header sends QEMU to a host file (as if copied in by someone careless)
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-F',
    'raw',
    '-b',
    outside,
    join(images, 'evil.qcow2'),
  ]);
  k = await startKvmux({
    password: PASSWORD,
    firstDisplay: 176,
    vms: [
      { name: 'mallory', backend: 'qemu', qemu: { disk: outside }, guestChannel: true, autostart: false },
      { name: 'victim', backend: 'qemu', qemu: { disk: join(images, 'victim.img') }, autostart: false },
    ],
    extra: {
      // the second folder is an unplugged USB disk: it must not break requests naming the first
      imageDirs: [images, join(dir, 'unplugged')],
      menu: { phrase: PHRASE },
      policy: [{ from: 'mallory', method: '*', action: 'allow', target: '*' }],
    },
  });
  const sock = join(k.dir, 'run', 'vm', 'mallory', 'control.sock');
  mkdirSync(join(k.dir, 'run', 'vm', 'mallory'), { recursive: true });
  chardev = await fakeQemuChardev(sock);
  guest = await chardev.nextPeer();
  expect((await guest.call('auth.login', { password: PASSWORD })).result).toMatchObject({ ok: true });
}, 90_000);

afterAll(async () => {
  guest?.close();
  await chardev?.close();
  await k?.stop();
});

describe('a logged-in guest allowed every method', () => {
  it('is refused what would let it escape its VM, with the contract codes, and nothing changes on disk', async () => {
    const before = diskState();
    const cases: Array<[string, unknown, number]> = [
      // network identity: the anti-spoofing rules trust the configured MAC and pinned addresses
      ['vm.update', { name: 'mallory', nics: [{ network: 'lan', mac: '02:00:00:00:00:01' }] }, -32003],
      ['vm.create', { name: 'twin', disk: 'spare.img', nics: [{ network: 'lan' }] }, -32003],
      // another VM's disk
      ['vm.update', { name: 'mallory', disk: 'victim.img' }, -32009],
      // files in the image folder that are not disk images: a sidecar, an upload in progress
      ['vm.create', { name: 'side', disk: 'spare.yaml' }, -32602],
      ['vm.create', { name: 'part', disk: '.kvmux-upload-1234.part' }, -32602],
      // a disk whose header names a host file: QEMU as root would read and write it
      ['vm.create', { name: 'evil', disk: 'evil.qcow2' }, -32602],
      ['vm.update', { name: 'mallory', disk: 'evil.qcow2' }, -32602],
      // a host file by absolute path, and deleting its own disk that lies outside the folders
      ['vm.create', { name: 'host', disk: outside }, -32003],
      ['vm.delete', { name: 'mallory', deleteDisk: true }, -32003],
    ];
    for (const [method, params, code] of cases) {
      const r = await guest.call(method, params);
      expect(r.error?.code, `${method} ${JSON.stringify(params)}: ${JSON.stringify(r)}`).toBe(code);
    }
    expect(diskState()).toBe(before);
    expect(existsSync(outside)).toBe(true);
  });

  it('reads the VMs from config.get but not the file behind them (host phrase, policy)', async () => {
    const r = await guest.call('config.get', {});
    expect(r.result.vms.map((v: { name: string }) => v.name)).toEqual(
      expect.arrayContaining(['mallory', 'victim', 'spare']),
    );
    const text = JSON.stringify(r.result);
    expect(text).not.toContain(PHRASE);
    expect(r.result.file).toBeUndefined();
    // the console still gets everything
    const local = await k.call<{ file: { menu: { phrase: string } } }>('config.get', {});
    expect(local.file.menu.phrase).toBe(PHRASE);
  });

  it('may still make a VM from a real image in the folders, with an unplugged folder listed', async () => {
    const r = await guest.call('vm.create', { name: 'spare2', disk: 'spare.img', autostart: false });
    expect(r.error, JSON.stringify(r)).toBeUndefined();
    expect(r.result.vm).toMatchObject({ name: 'spare2', qemu: { disk: join(images, 'spare.img') } });
  });
});
