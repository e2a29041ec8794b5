import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectSocket, type RpcClient } from '../../src/control/rpc/client.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { imageDownloadMethods } from '../../src/control/transfer/download.js';
import type { ImageUser } from '../../src/control/transfer/image-files.js';
import { imageMethods } from '../../src/control/transfer/image-methods.js';
import { SpaceLedger } from '../../src/control/transfer/space-ledger.js';
import { receiveFile } from '../../src/control/transfer/transfer-client.js';
import { imageUploadMethods } from '../../src/control/transfer/upload.js';
import { codeOf, startServer, tempDir } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const shaFile = (p: string) => sha(readFileSync(p));
const run = promisify(execFile);
const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const TSX = join(import.meta.dirname, '../../node_modules/.bin/tsx');

/** Every file in a folder with its size and sha256: "nothing changed on disk" compares these. */
const snapshot = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map((f) => `${f}:${statSync(join(dir, f)).size}:${shaFile(join(dir, f))}`);

describe('image.list, image.delete, image.download, image.import', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;
  let images: string;
  let c: RpcClient;
  let users: Record<string, ImageUser[]>;
  let rescans = 0;

  beforeEach(async () => {
    t = tempDir('kvmux-imgm-');
    images = join(t.dir, 'images');
    mkdirSync(images);
    users = {};
    rescans = 0;
    ({ server, sock } = await startServer(t.dir));
    const ledger = new SpaceLedger();
    const common = {
      imageDirs: () => [images],
      stateDir: () => join(t.dir, 'state'),
      imageDefaults: () => ({ reserveMiB: 0 }),
      ledger,
      users: (real: string) => users[real.split('/').pop() ?? ''] ?? [],
    };
    server.register([
      ...imageUploadMethods(common),
      ...imageDownloadMethods(common),
      ...imageMethods({ ...common, onImagesChanged: () => void rescans++ }),
    ]);
    c = await connectSocket(sock);
  });
  afterEach(async () => {
    c.close();
    await server.close();
    t.cleanup();
  });

  it('lists images with size, sha256, the VMs using each and who uploaded it', async () => {
    const a = randomBytes(70_000);
    writeFileSync(join(images, 'a.img'), a);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(images, 'b.qcow2'), '1M']);
    writeFileSync(join(images, 'notes.txt'), 'not an image');
    writeFileSync(join(images, '.kvmux-upload-0123456789ab.part'), 'temp');
    users['a.img'] = [{ name: 'alpha', state: 'running', configured: true }];
    const rows = await c.call<Array<Record<string, unknown>>>('image.list', {});
    expect(rows).toEqual([
      {
        name: 'a.img',
        path: join(images, 'a.img'),
        size: a.length,
        sha256: sha(a),
        usedBy: ['alpha'],
        running: ['alpha'],
        uploadedBy: null,
      },
      expect.objectContaining({ name: 'b.qcow2', sha256: shaFile(join(images, 'b.qcow2')), usedBy: [] }),
    ]);
    // without hashing: sha256 only when already known
    writeFileSync(join(images, 'c.raw'), 'new');
    const quick = await c.call<Array<{ name: string; sha256: string | null }>>('image.list', {
      sha256: false,
    });
    expect(quick.map((r) => [r.name, r.sha256])).toEqual([
      ['a.img', sha(a)],
      ['b.qcow2', shaFile(join(images, 'b.qcow2'))],
      ['c.raw', null],
    ]);
  });

  it('deletes an unused image, refuses one in use, and bad input changes nothing on disk', async () => {
    writeFileSync(join(images, 'busy.img'), 'x');
    writeFileSync(join(images, 'named.img'), 'y');
    writeFileSync(join(images, 'found.img'), 'z');
    users['busy.img'] = [{ name: 'web', state: 'running', configured: false }];
    users['named.img'] = [{ name: 'db', state: 'stopped', configured: true }];
    users['found.img'] = [{ name: 'found', state: 'stopped', configured: false }];
    const before = snapshot(images);
    const cases: Array<[unknown, number, RegExp]> = [
      [{ name: 'busy.img' }, -32009, /in use by VM "web" \(running\): stop it first/],
      [{ name: 'named.img' }, -32009, /in use by VM "db" \(configured\)/],
      [{ name: 'nope.img' }, -32004, /no image named "nope.img"/],
      [{ name: '../images/busy.img' }, -32602, /name/],
      [{ name: 'a/b.img' }, -32602, /name/],
      [{ name: '..img' }, -32602, /name/],
      [{ name: '.kvmux-upload-0.img' }, -32602, /name/],
      [{ name: 'busy.txt' }, -32602, /must end in/],
      [{ name: 5 }, -32602, /name/],
      [{}, -32602, /name/],
      [{ name: 'busy.img', force: true }, -32602, /force/],
    ];
    for (const [params, code, msg] of cases) {
      const [got, text] = await codeOf(c.call('image.delete', params));
      expect([got, text], JSON.stringify(params)).toEqual([code, expect.stringMatching(msg)]);
    }
    expect(snapshot(images)).toEqual(before);
    expect(rescans).toBe(0);
    expect(await c.call('image.delete', { name: 'found.img' })).toMatchObject({ deleted: true });
    expect(readdirSync(images).sort()).toEqual(['busy.img', 'named.img']);
    expect(rescans).toBe(1);
  });

  it('downloads an image as binary and as base64, the client checking the sha256', async () => {
    const data = randomBytes((5 << 20) + 3);
    writeFileSync(join(images, 'disk.img'), data);
    for (const binary of [true, false]) {
      const out = join(t.dir, `got-${binary}.img`);
      const progress: number[] = [];
      const r = await receiveFile(c, { name: 'disk.img', out, binary, onProgress: (n) => progress.push(n) });
      expect(r).toEqual({ path: out, size: data.length, sha256: sha(data) });
      expect(readFileSync(out).equals(data)).toBe(true);
      expect(progress.at(-1)).toBe(data.length);
    }
    expect(readdirSync(t.dir).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('keeps nothing when the image changes under a download (sha256 mismatch)', async () => {
    const data = randomBytes(3 << 20);
    writeFileSync(join(images, 'moving.img'), data);
    const out = join(t.dir, 'moving.img');
    let flipped = false;
    await expect(
      receiveFile(c, {
        name: 'moving.img',
        out,
        chunkBytes: 1 << 20,
        inFlight: 1,
        onProgress: () => {
          if (flipped) return;
          flipped = true;
          writeFileSync(join(images, 'moving.img'), randomBytes(3 << 20)); // same size, new bytes
        },
      }),
    ).rejects.toThrow(/sha256 mismatch.*nothing kept/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(t.dir).filter((f) => f.includes('moving'))).toEqual([]);
  });

  it('refuses downloads of a running disk and bad chunk requests', async () => {
    writeFileSync(join(images, 'live.img'), 'x');
    writeFileSync(join(images, 'idle.img'), randomBytes(100));
    users['live.img'] = [{ name: 'web', state: 'running', configured: true }];
    expect((await codeOf(c.call('image.download.begin', { name: 'live.img' })))[0]).toBe(-32009);
    expect((await codeOf(c.call('image.download.begin', { name: '../x.img' })))[0]).toBe(-32602);
    expect((await codeOf(c.call('image.download.begin', { name: 'gone.img' })))[0]).toBe(-32004);
    const { downloadId } = await c.call<{ downloadId: string }>('image.download.begin', { name: 'idle.img' });
    const chunk = (p: object) =>
      codeOf(c.call('image.download.chunk', { downloadId, offset: 0, length: 10, ...p }));
    expect((await chunk({ length: 0 }))[0]).toBe(-32602);
    expect((await chunk({ length: (4 << 20) + 1, binary: true }))[0]).toBe(-32602);
    expect((await chunk({ length: 3 << 20 }))[1]).toMatch(/at most 2097152 as base64/);
    expect((await chunk({ offset: 101 }))[1]).toMatch(/past the end/);
    expect((await chunk({ downloadId: 'f'.repeat(32) }))[0]).toBe(-32004);
    await c.call('image.download.end', { downloadId });
    expect((await chunk({}))[0]).toBe(-32004);
  });

  it('moves an image between hosts with kvmux image upload/download, sha256 checked (256 MiB: npm run bench)', async () => {
    const src = join(t.dir, 'big.img');
    const block = randomBytes(1 << 20);
    writeFileSync(
      src,
      Buffer.concat(
        Array.from({ length: 32 }, (_, i) =>
          Buffer.concat([block.subarray(0, 8), Buffer.from([i]), block.subarray(9)]),
        ),
      ),
    );
    const want = shaFile(src);
    const up = await run(TSX, [MAIN, 'image', 'upload', src, '--name', 'moved.img', '--socket', sock], {
      maxBuffer: 1 << 20,
    });
    expect(JSON.parse(up.stdout)).toMatchObject({ path: join(images, 'moved.img'), sha256: want });
    const out = join(t.dir, 'back.img');
    const down = await run(TSX, [MAIN, 'image', 'download', 'moved.img', '--out', out, '--socket', sock]);
    expect(JSON.parse(down.stdout)).toEqual({ path: out, size: 32 << 20, sha256: want });
    expect(shaFile(out)).toBe(want);
    // the CLI fails loudly, exit 1, on a refusal
    const refused = await run(TSX, [
      MAIN,
      'image',
      'download',
      'absent.img',
      '--out',
      out,
      '--socket',
      sock,
    ]).catch((e: { code: number; stderr: string }) => e);
    expect(refused).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no image named "absent.img".*-32004/),
    });
  }, 120_000);

  it('imports a qcow2, an .ova (converted, with its memory and CPUs) and a .vbox with its disk', async () => {
    const src = join(t.dir, 'src');
    mkdirSync(src);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(src, 'plain.qcow2'), '2M']);
    expect(await c.call('image.import', { path: join(src, 'plain.qcow2') })).toEqual({
      paths: [join(images, 'plain.qcow2')],
    });
    // .ova: a tar of an OVF descriptor and a stream-optimized VMDK
    execFileSync('qemu-img', [
      'convert',
      '-O',
      'vmdk',
      '-o',
      'subformat=streamOptimized',
      join(src, 'plain.qcow2'),
      join(src, 'disk1.vmdk'),
    ]);
    writeFileSync(
      join(src, 'app.ovf'),
      '<Envelope><VirtualHardwareSection><Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>' +
        '<Item><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item></VirtualHardwareSection></Envelope>',
    );
    execFileSync('tar', ['-cf', join(src, 'app.ova'), '-C', src, 'app.ovf', 'disk1.vmdk']);
    expect(await c.call('image.import', { path: join(src, 'app.ova') })).toEqual({
      paths: [join(images, 'app.qcow2'), join(images, 'app.qcow2.yaml')],
    });
    expect(
      JSON.parse(
        execFileSync('qemu-img', ['info', '--output=json', join(images, 'app.qcow2')], { encoding: 'utf8' }),
      ),
    ).toMatchObject({
      format: 'qcow2',
      'virtual-size': 2 << 20,
    });
    expect(readFileSync(join(images, 'app.qcow2.yaml'), 'utf8')).toBe(
      'qemu:\n  cpus: 2\n  memoryMiB: 1024\n',
    );
    // .vbox naming a disk beside it
    execFileSync('qemu-img', ['create', '-q', '-f', 'vdi', join(src, 'seed.vdi'), '1M']);
    writeFileSync(
      join(src, 'seed.vbox'),
      '<VirtualBox><Machine name="Seed"><MediaRegistry><HardDisks><HardDisk uuid="{1}" location="seed.vdi" format="VDI"/></HardDisks></MediaRegistry></Machine></VirtualBox>',
    );
    expect(await c.call('image.import', { path: join(src, 'seed.vbox') })).toEqual({
      paths: [join(images, 'seed.vdi'), join(images, 'seed.vbox')],
    });
    expect(rescans).toBe(3);
  });

  it('refuses imports that name host files, exist already, or are not images, leaving the folder as it was', async () => {
    const src = join(t.dir, 'src');
    mkdirSync(src);
    execFileSync('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      '/etc/shadow',
      '-F',
      'raw',
      join(src, 'evil.qcow2'),
      '1M',
    ]);
    writeFileSync(join(src, 'abs.vbox'), '<HardDisk uuid="{1}" location="/etc/shadow" format="VDI"/>');
    writeFileSync(join(src, 'notes.txt'), 'hello');
    writeFileSync(join(src, 'bad.ova'), 'not a tar');
    writeFileSync(join(images, 'taken.img'), 'mine');
    writeFileSync(join(src, 'taken.img'), 'theirs');
    const before = snapshot(images);
    const cases: Array<[unknown, number, RegExp]> = [
      [{ path: join(src, 'evil.qcow2') }, -32602, /backing file \(\/etc\/shadow\)/],
      [{ path: join(src, 'abs.vbox') }, -32602, /only disks beside the .vbox/],
      [{ path: join(src, 'notes.txt') }, -32602, /import takes/],
      [{ path: join(src, 'bad.ova') }, -32602, /not a readable .ova/],
      [{ path: join(src, 'taken.img') }, -32009, /already exists/],
      [{ path: join(src, 'gone.img') }, -32004, /ENOENT/],
      [{ path: 'relative.img' }, -32602, /absolute path/],
      [{ path: `${src}/../src/taken.img` }, -32602, /without ".."/],
      [{ path: join(src, 'taken.img'), name: '../x.img' }, -32602, /name/],
    ];
    for (const [params, code, msg] of cases) {
      const [got, text] = await codeOf(c.call('image.import', params));
      expect([got, text], JSON.stringify(params)).toEqual([code, expect.stringMatching(msg)]);
    }
    expect(snapshot(images)).toEqual(before);
  });
});

describe('bulk replies and a slow reader', () => {
  it('waits for a client that reads slowly instead of dropping it', async () => {
    const t = tempDir('kvmux-imgm-slow-');
    const images = join(t.dir, 'images');
    mkdirSync(images);
    const data = randomBytes(24 << 20);
    writeFileSync(join(images, 'big.img'), data);
    // 4 chunks of 4 MiB in flight are 16 MiB of replies against a 1 MiB backlog
    const { server, sock } = await startServer(t.dir, { limits: { maxWriteBacklog: 1 << 20 } });
    server.register(imageDownloadMethods({ imageDirs: () => [images] }));
    const c = await connectSocket(sock);
    try {
      const out = join(t.dir, 'out.img');
      let pauses = 0;
      const r = await receiveFile(c, {
        name: 'big.img',
        out,
        chunkBytes: 4 << 20,
        inFlight: 4,
        onProgress: () => {
          // a slow disk on the receiving side: stop reading for a moment after each chunk
          if (pauses++ % 2 === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150);
        },
      });
      expect(r.sha256).toBe(sha(data));
      expect(server.connections.size).toBe(1);
    } finally {
      c.close();
      await server.close();
      t.cleanup();
    }
  }, 60_000);
});
