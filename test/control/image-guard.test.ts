import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { attachGuestChannel, type GuestChannel } from '../../src/control/guest-channel.js';
import { startControlPlane } from '../../src/control/plane.js';
import { connectSocket, RpcClient } from '../../src/control/rpc/client.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { hostUpdateMethods } from '../../src/control/transfer/host-update.js';
import { SpaceLedger } from '../../src/control/transfer/space-ledger.js';
import { sendFile } from '../../src/control/transfer/transfer-client.js';
import { imageUploadMethods } from '../../src/control/transfer/upload.js';
import { discoverImages } from '../../src/session/images.js';
import { RpcError } from '../../src/util/errors.js';
import { codeOf, PASSWORD, startServer, tempDir, until } from './helpers.js';

/**
 * The guest's side of image uploads, played over real guest channels: disks that name host files,
 * sidecars and autostart a guest must not inherit, space a guest must not hold, and staging a
 * guest must not keep from the admin.
 */
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const visible = (dir: string) => readdirSync(dir).sort();

describe('image uploads from a hostile guest', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;
  let images: string;
  let state: string;
  let boot: string;
  let defaults: Record<string, number | boolean>;
  let ledger: SpaceLedger;
  let inUse: (p: string) => boolean;
  const cleanups: Array<() => void | Promise<void>> = [];

  beforeEach(async () => {
    t = tempDir('kvmux-guard-');
    images = join(t.dir, 'images');
    state = join(t.dir, 'state');
    boot = join(t.dir, 'boot');
    mkdirSync(images);
    mkdirSync(state, { recursive: true });
    defaults = { reserveMiB: 0 };
    ledger = new SpaceLedger();
    inUse = () => false;
    ({ server, sock } = await startServer(t.dir, {
      policy: [
        { from: '*', method: 'image.*', action: 'allow' },
        { from: '*', method: 'host.update.*', action: 'allow' },
      ],
    }));
    server.register([
      ...imageUploadMethods({
        imageDirs: () => [images],
        stateDir: () => state,
        imageDefaults: () => defaults,
        ledger,
        inUse: (p) => inUse(p),
        users: (p) =>
          p.endsWith('/admins.img') ? [{ name: 'office', state: 'stopped', configured: true }] : [],
      }),
      ...hostUpdateMethods({ bootDir: () => boot, currentSlot: async () => 'a' }),
    ]);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await server.close();
    t.cleanup();
  });

  /** A logged-in guest `vm` on its own channel (kvmux connects to a socket that plays QEMU). */
  async function guest(vm: string): Promise<RpcClient> {
    const path = join(t.dir, `${vm}.chardev`);
    let accepted: (s: Socket) => void = () => undefined;
    const got = new Promise<Socket>((r) => (accepted = r));
    const qemu: Server = createServer((s) => accepted(s));
    await new Promise<void>((r) => qemu.listen(path, r));
    const ch: GuestChannel = attachGuestChannel(server, { vm, path, minBackoffMs: 20, maxBackoffMs: 100 });
    const client = new RpcClient(await got);
    cleanups.push(() => {
      client.close();
      ch.close();
      return new Promise<void>((r) => qemu.close(() => r()));
    });
    await client.call('auth.login', { password: PASSWORD });
    return client;
  }

  async function local(): Promise<RpcClient> {
    const c = await connectSocket(sock);
    cleanups.push(() => c.close());
    return c;
  }

  function qcow2(name: string, ...opts: string[]): string {
    const path = join(t.dir, name);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...opts, path, '1M']);
    return path;
  }

  it('refuses a qcow2 whose backing file is /etc/shadow, and shows nothing in the image folder', async () => {
    const evil = qcow2('evil.qcow2', '-b', '/etc/shadow', '-F', 'raw');
    const g = await guest('alpha');
    const [code, msg] = await codeOf(
      sendFile(g, { prefix: 'image.upload', file: evil, begin: { name: 'evil.qcow2' } }),
    );
    expect(code).toBe(-32602);
    expect(msg).toMatch(/backing file \(\/etc\/shadow\).*refused/);
    expect(visible(images)).toEqual([]);
    // not from the root socket either, unless the admin allows backing files
    const l = await local();
    expect(
      (await codeOf(sendFile(l, { prefix: 'image.upload', file: evil, begin: { name: 'evil.qcow2' } })))[0],
    ).toBe(-32602);
    expect(visible(images)).toEqual([]);
  });

  it('refuses a qcow2 with an external data file, and one whose data file is missing', async () => {
    const victim = join(t.dir, 'victim');
    const evil = qcow2('data.qcow2', '-o', `data_file=${victim}`);
    const g = await guest('alpha');
    const [code, msg] = await codeOf(
      sendFile(g, { prefix: 'image.upload', file: evil, begin: { name: 'd.qcow2' } }),
    );
    expect(code).toBe(-32602);
    expect(msg).toMatch(new RegExp(`names another file \\(${victim}\\)`));
    const ghost = qcow2('ghost.qcow2', '-o', `data_file=${join(t.dir, 'gone')}`);
    execFileSync('rm', [join(t.dir, 'gone')]);
    expect(
      (await codeOf(sendFile(g, { prefix: 'image.upload', file: ghost, begin: { name: 'g.qcow2' } })))[0],
    ).toBe(-32602);
    expect(visible(images)).toEqual([]);
  });

  it('accepts a plain qcow2, and lets an admin-allowed backing file through from the root socket', async () => {
    const plain = qcow2('plain.qcow2');
    const g = await guest('alpha');
    await sendFile(g, { prefix: 'image.upload', file: plain, begin: { name: 'plain.qcow2' } });
    defaults['allowBackingFiles'] = true;
    const base = join(images, 'base.img');
    writeFileSync(base, Buffer.alloc(1 << 20));
    const child = qcow2('child.qcow2', '-b', base, '-F', 'raw');
    await sendFile(await local(), { prefix: 'image.upload', file: child, begin: { name: 'child.qcow2' } });
    expect(visible(images)).toEqual(['base.img', 'child.qcow2', 'plain.qcow2']);
  });

  it('never lets an upload inherit an admin sidecar or autostart', async () => {
    writeFileSync(join(images, 'desk.img'), Buffer.alloc(4096));
    writeFileSync(join(images, 'desk.yaml'), 'autostart: true\nguestChannel: true\n');
    const found = () =>
      discoverImages([images], [], { stateDir: state, imageDefaults: { autostart: true } }).vms.map((v) => [
        v.qemu?.disk?.split('/').pop(),
        v.autostart,
        v.guestChannel,
      ]);
    expect(found()).toEqual([['desk.img', true, true]]);
    const g = await guest('alpha');
    const src = join(t.dir, 'mine.raw');
    writeFileSync(src, randomBytes(8192));
    // same stem, other extension: the stem sidecar would have matched it
    await sendFile(g, { prefix: 'image.upload', file: src, begin: { name: 'desk.raw' } });
    expect(found()).toEqual([
      ['desk.img', true, true],
      ['desk.raw', false, false],
    ]);
    // replacing the admin's own image: the sidecar no longer applies to what the guest wrote
    await sendFile(g, { prefix: 'image.upload', file: src, begin: { name: 'desk.img', replace: true } });
    expect(found()).toEqual([
      ['desk.img', false, false],
      ['desk.raw', false, false],
    ]);
    // the admin copying a disk over the name makes it the admin's again
    execFileSync('cp', ['--remove-destination', src, join(images, 'desk.img')]);
    expect(found()[0]).toEqual(['desk.img', true, true]);
  });

  it('never lets a guest replace the disk of a configured VM, even a stopped one', async () => {
    writeFileSync(join(images, 'admins.img'), 'office disk');
    const src = join(t.dir, 'mine.raw');
    writeFileSync(src, randomBytes(4096));
    const g = await guest('alpha');
    const [code, msg] = await codeOf(
      sendFile(g, { prefix: 'image.upload', file: src, begin: { name: 'admins.img', replace: true } }),
    );
    expect([code, msg]).toEqual([
      -32009,
      'image "admins.img" is the disk of configured VM "office": a guest may not replace it',
    ]);
    expect(readFileSync(join(images, 'admins.img'), 'utf8')).toBe('office disk');
    // the admin may
    await sendFile(await local(), {
      prefix: 'image.upload',
      file: src,
      begin: { name: 'admins.img', replace: true },
    });
    expect(readFileSync(join(images, 'admins.img')).length).toBe(4096);
  });

  it('compares real paths when refusing to replace a running VM disk (symlinked image folder)', async () => {
    const link = join(t.dir, 'images-link');
    symlinkSync(images, link);
    writeFileSync(join(images, 'running.img'), 'live');
    const real = realpathSync(join(images, 'running.img'));
    inUse = (p) => p === real;
    server.register(
      imageUploadMethods({ imageDirs: () => [link], inUse: (p) => inUse(p) }).map((m) => ({
        ...m,
        name: m.name.replace('image.upload', 'image.viaLink'),
      })),
    );
    const l = await local();
    const data = Buffer.from('evil');
    const [code] = await codeOf(
      l.call('image.viaLink.begin', {
        name: 'running.img',
        size: data.length,
        sha256: sha(data),
        replace: true,
      }),
    );
    expect(code).toBe(-32009);
    expect(readFileSync(join(images, 'running.img'), 'utf8')).toBe('live');
  });

  it('refuses a guest that declares more than the image disk has free, holding nothing', async () => {
    const g = await guest('alpha');
    const [code, msg] = await codeOf(
      g.call('image.upload.begin', { name: 'fill.img', size: 2 ** 40, sha256: sha(Buffer.alloc(0)) }),
    );
    expect(code).toBe(-32602);
    expect(msg).toMatch(/not enough space: 1099511627776 bytes declared/);
    expect([ledger.count, visible(images)]).toEqual([0, []]);
  });

  it('holds a guest to its quota, counting open uploads and the images it stored', async () => {
    defaults['guestQuotaMiB'] = 2;
    const g = await guest('alpha');
    const begin = (c: RpcClient, name: string, size: number) =>
      c.call<{ uploadId: string }>('image.upload.begin', { name, size, sha256: sha(Buffer.alloc(0)) });
    const first = await begin(g, 'a.img', 1536 << 10);
    const [code, msg] = await codeOf(begin(g, 'b.img', 1 << 20));
    expect(code).toBe(-32602);
    expect(msg).toMatch(/quota of VM "alpha" exceeded/);
    await g.call('image.upload.abort', first);
    const src = join(t.dir, 'x.raw');
    writeFileSync(src, randomBytes(1536 << 10));
    await sendFile(g, { prefix: 'image.upload', file: src, begin: { name: 'kept.img' } });
    expect((await codeOf(begin(g, 'b.img', 1 << 20)))[1]).toMatch(/quota/); // what it stored counts
    const beta = await guest('beta');
    await begin(beta, 'c.img', 1 << 20); // another VM's quota is its own
    await begin(await local(), 'd.img', 3 << 20); // the root socket has none
  });

  it('lets a guest that goes idle, logs out or disconnects lose its reservation and temp file', async () => {
    defaults['transferIdleSeconds'] = 0.3;
    const g = await guest('alpha');
    const data = randomBytes(1 << 20);
    const { uploadId } = await g.call<{ uploadId: string }>('image.upload.begin', {
      name: 'idle.img',
      size: 64 << 20,
      sha256: sha(data),
    });
    await g.call('image.upload.chunk', { uploadId, offset: 0, data: data.toString('base64') });
    expect(ledger.count).toBe(1);
    expect(visible(images)).toHaveLength(1);
    await until(() => ledger.count === 0 && visible(images).length === 0);
    expect((await codeOf(g.call('image.upload.chunk', { uploadId, offset: 1 << 20, data: '' })))[0]).toBe(
      -32004,
    );
    // refused chunks do not keep a transfer from its idle end (nor its reservation)
    const held = await g.call<{ uploadId: string }>('image.upload.begin', {
      name: 'held.img',
      size: 1 << 20,
      sha256: sha(data),
    });
    const since = Date.now();
    for (let n = 0; ledger.count > 0 && Date.now() - since < 3000; n++) {
      // a chunk at a wrong offset, or an empty one at the right offset: neither is progress
      const empty = n % 2 === 1;
      const code = await g.call('image.upload.chunk', { ...held, offset: empty ? 0 : 5, data: '' }).then(
        () => 0,
        (e: unknown) => (e instanceof RpcError ? e.code : Promise.reject(e)),
      );
      // or already gone (ended between the two checks)
      expect(empty ? [0, -32004] : [-32602, -32004]).toContain(code);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(ledger.count).toBe(0);

    defaults['transferIdleSeconds'] = 300;
    await g.call('image.upload.begin', { name: 'out.img', size: 1 << 20, sha256: sha(data) });
    expect(ledger.count).toBe(1);
    await g.call('auth.logout');
    await until(() => ledger.count === 0 && visible(images).length === 0);

    const beta = await guest('beta');
    await beta.call('image.upload.begin', { name: 'cut.img', size: 1 << 20, sha256: sha(data) });
    expect(ledger.count).toBe(1);
    beta.close();
    await until(() => ledger.count === 0 && visible(images).length === 0);
  });

  it('keeps uploads and host updates in separate tables; the root socket takes staging from a guest', async () => {
    const g = await guest('alpha');
    const data = Buffer.from('x');
    const begin = (c: RpcClient, prefix: string, name?: string) =>
      c.call<{ uploadId: string }>(`${prefix}.begin`, {
        ...(name ? { name } : {}),
        size: 1,
        sha256: sha(data),
      });
    await begin(g, 'image.upload', 'a.img');
    await begin(g, 'image.upload', 'b.img');
    const staged = await begin(g, 'host.update'); // two open uploads do not count against it
    const beta = await guest('beta');
    expect((await codeOf(begin(beta, 'host.update')))[1]).toMatch(/already being staged \(by alpha\)/);
    const l = await local();
    await begin(l, 'host.update');
    expect((await codeOf(g.call('host.update.chunk', { ...staged, offset: 0, data: 'eA==' })))[0]).toBe(
      -32004,
    );
    expect((await codeOf(begin(g, 'host.update')))[1]).toMatch(/already being staged \(by local\)/);
  });
});

describe('uploads and the free space of the image disk', () => {
  let t: ReturnType<typeof tempDir>;
  let mnt: string;

  beforeEach(() => {
    t = tempDir('kvmux-guard-fs-');
    mnt = join(t.dir, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  });
  afterEach(() => {
    // lazy: a failed test may leave an upload's file open on it; the mount must go anyway
    execFileSync('umount', ['-l', mnt]);
    t.cleanup();
  });

  it('refuses declared sizes that do not fit together, keeping the margin free', async () => {
    const { server, sock } = await startServer(t.dir);
    const defaults = { reserveMiB: 1 };
    server.register(imageUploadMethods({ imageDirs: () => [mnt], imageDefaults: () => defaults }));
    const a = await connectSocket(sock);
    const b = await connectSocket(sock);
    try {
      const begin = (c: RpcClient, name: string, size: number) =>
        c.call('image.upload.begin', { name, size, sha256: sha(Buffer.alloc(0)) });
      expect((await codeOf(begin(a, 'huge.img', 9 << 20)))[1]).toMatch(/not enough space/);
      expect((await codeOf(begin(a, 'edge.img', 7.5 * (1 << 20))))[1]).toMatch(/1048576 kept free/);
      await begin(a, 'one.img', 4 << 20);
      const [code, msg] = await codeOf(begin(b, 'two.img', 4 << 20));
      expect(code).toBe(-32602);
      expect(msg).toMatch(/4194304 promised to open uploads/);
      await begin(b, 'small.img', 2 << 20);
      a.close();
      await until(() => visible(mnt).length === 1);
      await begin(b, 'two.img', 4 << 20); // the space a's dropped upload held is free again
    } finally {
      a.close();
      b.close();
      await server.close();
    }
  });
});

describe('a restart', () => {
  it('sweeps temp files that no upload owns any more', async () => {
    const t = tempDir('kvmux-guard-sweep-');
    try {
      const images = join(t.dir, 'images');
      const boot = join(t.dir, 'boot');
      mkdirSync(images);
      mkdirSync(join(boot, 'slot-b'), { recursive: true });
      writeFileSync(join(images, '.kvmux-upload-0123456789ab.part'), 'half');
      writeFileSync(join(images, 'keep.img'), 'disk');
      writeFileSync(join(boot, 'slot-b', '.kvmux-upload-ba9876543210.part'), 'half');
      const cfg = configSchema.parse({
        runDir: join(t.dir, 'run'),
        stateDir: join(t.dir, 'state'),
        imageDirs: [images],
        hostUpdate: { bootDir: boot },
      });
      const plane = await startControlPlane(cfg);
      await plane.close();
      expect(visible(images)).toEqual(['keep.img']);
      expect(existsSync(join(boot, 'slot-b', '.kvmux-upload-ba9876543210.part'))).toBe(false);
    } finally {
      t.cleanup();
    }
  });
});
