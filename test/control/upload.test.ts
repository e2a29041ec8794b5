import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { attachmentPool } from '../../src/control/rpc/buffer-pool.js';
import { connectSocket, type RpcClient } from '../../src/control/rpc/client.js';
import { binaryHeader } from '../../src/control/rpc/framing.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { sendFile } from '../../src/control/transfer/transfer-client.js';
import { imageUploadMethods } from '../../src/control/transfer/upload.js';
import { RpcError } from '../../src/util/errors.js';
import { codeOf, heldMethod, LinePeer, startServer, tempDir, until } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function upload(c: RpcClient, name: string, data: Buffer, chunk = 1 << 20, extra: object = {}) {
  const { uploadId } = await c.call<{ uploadId: string }>('image.upload.begin', {
    name,
    size: data.length,
    sha256: sha(data),
    ...extra,
  });
  for (let off = 0; off < data.length; off += chunk) {
    const part = data.subarray(off, off + chunk);
    await c.call('image.upload.chunk', { uploadId, offset: off, data: part.toString('base64') });
  }
  return { uploadId, commit: () => c.call<{ path: string }>('image.upload.commit', { uploadId }) };
}

describe('image upload over the local socket', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;
  let images: string;
  let client: RpcClient;
  const added: string[] = [];

  beforeEach(async () => {
    t = tempDir();
    images = join(t.dir, 'images');
    mkdirSync(images);
    added.length = 0;
    ({ server, sock } = await startServer(t.dir));
    server.register(
      imageUploadMethods({
        imageDirs: () => [images, join(t.dir, 'second')],
        onImageAdded: (p) => void added.push(p),
        inUse: (p) => p.endsWith('/running.img'),
      }),
    );
    client = await connectSocket(sock);
  });
  afterEach(async () => {
    client.close();
    await server.close();
    t.cleanup();
  });

  it('stores the exact bytes under the final name and announces it', async () => {
    const data = randomBytes((5 << 20) + 17);
    const up = await upload(client, 'new-vm.img', data);
    expect(readdirSync(images)).toHaveLength(1); // only the temp file so far
    expect(readdirSync(images)[0]).toMatch(/^\.kvmux-upload-[0-9a-f]+\.part$/);
    const r = await up.commit();
    expect(r).toEqual({ path: join(images, 'new-vm.img'), size: data.length, sha256: sha(data) });
    expect(readFileSync(r.path).equals(data)).toBe(true);
    expect(readdirSync(images)).toEqual(['new-vm.img']);
    expect(added).toEqual([r.path]);
  });

  it('rejects a wrong sha256 at commit and leaves no file', async () => {
    const data = randomBytes(300_000);
    const { uploadId } = await client.call<{ uploadId: string }>('image.upload.begin', {
      name: 'bad.img',
      size: data.length,
      sha256: sha(Buffer.from('something else')),
    });
    await client.call('image.upload.chunk', { uploadId, offset: 0, data: data.toString('base64') });
    const [code, msg] = await codeOf(client.call('image.upload.commit', { uploadId }));
    expect(code).toBe(-32602);
    expect(msg).toMatch(/sha256 mismatch/);
    expect(readdirSync(images)).toEqual([]);
    expect(added).toEqual([]);
    // the id is gone too
    expect((await codeOf(client.call('image.upload.commit', { uploadId })))[0]).toBe(-32004);
  });

  it('leaves nothing when the connection dies mid-upload', async () => {
    const data = randomBytes(4 << 20);
    const { uploadId } = await client.call<{ uploadId: string }>('image.upload.begin', {
      name: 'cut.raw',
      size: data.length,
      sha256: sha(data),
    });
    await client.call('image.upload.chunk', {
      uploadId,
      offset: 0,
      data: data.subarray(0, 1 << 20).toString('base64'),
    });
    expect(readdirSync(images)).toHaveLength(1);
    client.close();
    await until(() => readdirSync(images).length === 0);
    client = await connectSocket(sock);
  });

  it('checks offsets and the declared size, keeping the transfer usable', async () => {
    const data = randomBytes(1000);
    const { uploadId } = await client.call<{ uploadId: string }>('image.upload.begin', {
      name: 'off.img',
      size: data.length,
      sha256: sha(data),
    });
    const chunk = (offset: number, b: Buffer) =>
      client.call('image.upload.chunk', { uploadId, offset, data: b.toString('base64') });
    await chunk(0, data.subarray(0, 400));
    expect(await codeOf(chunk(0, data.subarray(0, 400)))).toEqual([
      -32602,
      'invalid params: offset: expected 400, got 0',
    ]);
    expect((await codeOf(chunk(400, randomBytes(601))))[1]).toMatch(/exceed the declared size 1000/);
    expect(
      (await codeOf(client.call('image.upload.chunk', { uploadId, offset: 400, data: '!!!!' })))[1],
    ).toMatch(/base64/);
    expect((await codeOf(client.call('image.upload.commit', { uploadId })))[1]).toMatch(/incomplete/);
    expect(readdirSync(images)).toEqual([]);
  });

  it('gives every refused or unread attachment back to the pool: a peer cannot use up its shared memory', async () => {
    const data = randomBytes(4 << 20);
    const { uploadId } = await client.call<{ uploadId: string }>('image.upload.begin', {
      name: 'pool.img',
      size: data.length,
      sha256: sha(data),
    });
    attachmentPool.clear(); // nothing free: each refusal below that kept its slab would need a new one
    const shared0 = attachmentPool.bytesShared;
    const part = data.subarray(0, 2 << 20);
    const chunk = (params: object) => client.callBinary('image.upload.chunk', { uploadId, ...params }, part);
    const raw = await LinePeer.connect(sock);
    const refusals: [string, () => Promise<unknown>][] = [
      ['no such method', () => client.callBinary('no.such.method', {}, part)],
      ['a method that reads no attachment', () => client.callBinary('vm.list', {}, part)],
      ['bad offset (refused by the transfer)', () => chunk({ offset: 5 })],
      ['data and an attachment', () => chunk({ offset: 0, data: 'AAAA' })],
      ['unknown transfer', () => chunk({ uploadId: '0'.repeat(32), offset: 0 })],
      [
        'not JSON',
        async () => {
          raw.send(Buffer.concat([Buffer.from(binaryHeader(part.length)), part, Buffer.from('{oops\n')]));
          expect((await raw.next()).error?.code).toBe(-32700);
        },
      ],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [what, call] of refusals) {
        // refused as such (a test mistake throws something else)
        await call().catch((e: unknown) => {
          if (!(e instanceof RpcError)) throw e;
        });
        // one slab in all, and it is free again
        expect(attachmentPool.bytesShared - shared0, what).toBe(attachmentPool.slabBytes);
        expect(attachmentPool.bytesFree, what).toBe(attachmentPool.slabBytes);
      }
    }
    raw.close();
    // the transfer is still usable, and a taken chunk is given back once written and hashed
    await client.callBinary('image.upload.chunk', { uploadId, offset: 0 }, part);
    await client.callBinary(
      'image.upload.chunk',
      { uploadId, offset: part.length },
      data.subarray(part.length),
    );
    await client.call('image.upload.commit', { uploadId });
    expect(readFileSync(join(images, 'pool.img')).equals(data)).toBe(true);
    expect(attachmentPool.bytesFree).toBe(attachmentPool.bytesShared);
  });

  it.each([
    ['the peer goes', false],
    ['the channel is closed as the call before them ends', true],
  ])(
    'gives back the attachments of lines not yet answered, and a half-read one, when %s',
    async (_, atEnd) => {
      const { method, release } = heldMethod('test.hold');
      server.register(method);
      attachmentPool.clear();
      const slab = attachmentPool.slabBytes;
      const raw = await LinePeer.connect(sock);
      const line = (i: number) => `${JSON.stringify({ jsonrpc: '2.0', id: i, method: 'vm.list' })}\n`;
      const att = (i: number) =>
        Buffer.concat([Buffer.from(binaryHeader(1 << 20)), Buffer.alloc(1 << 20, i), Buffer.from(line(i))]);
      try {
        raw.send(`${JSON.stringify({ jsonrpc: '2.0', id: 'h', method: 'test.hold', params: {} })}\n`);
        // three lines queued behind the held call, and a fourth attachment half read
        raw.send(
          Buffer.concat([
            att(1),
            att(2),
            att(3),
            Buffer.from(binaryHeader(1 << 20)),
            Buffer.alloc(512 << 10),
          ]),
        );
        await until(() => attachmentPool.bytesShared === 4 * slab);
        expect(attachmentPool.bytesFree).toBe(0);
        if (atEnd) {
          // kvmux closes the channel (a VM stopped, a peer not reading) in the turn the held call ends
          for (const c of server.connections) c.close();
          release();
        } else raw.close();
        await until(() => attachmentPool.bytesFree === 4 * slab);
        expect(attachmentPool.bytesShared).toBe(4 * slab);
      } finally {
        release();
      }
    },
  );

  it('never overwrites an existing image unless asked to', async () => {
    writeFileSync(join(images, 'old.img'), 'old');
    expect((await codeOf(upload(client, 'old.img', Buffer.from('new'))))[0]).toBe(-32009);
    const up = await upload(client, 'old.img', Buffer.from('new'), 1 << 20, { replace: true });
    await up.commit();
    expect(readFileSync(join(images, 'old.img'), 'utf8')).toBe('new');
    // a file that appears between begin and commit is not clobbered either
    const late = await upload(client, 'race.img', Buffer.from('mine'));
    writeFileSync(join(images, 'race.img'), 'theirs');
    expect((await codeOf(late.commit()))[0]).toBe(-32009);
    expect(readFileSync(join(images, 'race.img'), 'utf8')).toBe('theirs');
    expect(readdirSync(images).sort()).toEqual(['old.img', 'race.img']);
    // the disk of a running VM is never replaced
    writeFileSync(join(images, 'running.img'), 'live');
    const live = upload(client, 'running.img', Buffer.from('evil'), 1 << 20, { replace: true });
    expect(await codeOf(live)).toEqual([
      -32009,
      'image "running.img" is in use by a running VM; stop it first',
    ]);
    expect(readFileSync(join(images, 'running.img'), 'utf8')).toBe('live');
  });

  it('sendFile streams a file with several chunks in flight', async () => {
    const src = join(t.dir, 'src.raw');
    const data = randomBytes((3 << 20) + 5);
    writeFileSync(src, data);
    const progress: number[] = [];
    const r = await sendFile(client, {
      prefix: 'image.upload',
      file: src,
      begin: { name: 'sent.raw' },
      chunkBytes: 1 << 20,
      onProgress: (sent) => progress.push(sent),
    });
    expect(r).toMatchObject({ path: join(images, 'sent.raw'), size: data.length });
    expect(readFileSync(join(images, 'sent.raw')).equals(data)).toBe(true);
    expect(progress).toEqual([1 << 20, 2 << 20, 3 << 20, data.length]);
    // a refused transfer leaves nothing behind
    await expect(
      sendFile(client, { prefix: 'image.upload', file: src, begin: { name: 'sent.raw' } }),
    ).rejects.toThrow(/already exists/);
    expect(readdirSync(images)).toEqual(['sent.raw']);
  });

  it('keeps uploads private to their connection and limits how many are open', async () => {
    const data = Buffer.from('x');
    const begin = (c: RpcClient, name: string) =>
      c.call<{ uploadId: string }>('image.upload.begin', { name, size: 1, sha256: sha(data) });
    const { uploadId } = await begin(client, 'a.img');
    const other = await connectSocket(sock);
    expect((await codeOf(other.call('image.upload.abort', { uploadId })))[0]).toBe(-32004);
    await begin(client, 'b.img');
    expect((await codeOf(begin(client, 'c.img')))[0]).toBe(-32029);
    await begin(other, 'c.img');
    await client.call('image.upload.abort', { uploadId });
    await begin(client, 'd.img');
    other.close();
    await until(() => readdirSync(images).length === 3);
  });
});

describe('image upload onto a full disk', () => {
  let t: ReturnType<typeof tempDir>;
  let mnt: string;

  beforeEach(() => {
    t = tempDir();
    mnt = join(t.dir, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  });
  afterEach(() => {
    execFileSync('umount', [mnt]);
    t.cleanup();
  });

  it('refuses at begin when the image cannot fit, and cleans up on ENOSPC mid-way', async () => {
    const { server, sock } = await startServer(t.dir);
    server.register(imageUploadMethods({ imageDirs: () => [mnt], imageDefaults: () => ({ reserveMiB: 0 }) }));
    const client = await connectSocket(sock);
    try {
      const big = randomBytes(3 << 20);
      expect((await codeOf(upload(client, 'big.img', big)))[1]).toMatch(/not enough space/);
      const data = randomBytes(1536 << 10);
      const { uploadId } = await client.call<{ uploadId: string }>('image.upload.begin', {
        name: 'fill.img',
        size: data.length,
        sha256: sha(data),
      });
      writeFileSync(join(mnt, 'other-tenant'), randomBytes(1 << 20)); // the disk fills meanwhile
      let failure = '';
      for (let off = 0; off < data.length && !failure; off += 256 << 10) {
        const part = data.subarray(off, off + (256 << 10)).toString('base64');
        failure = await client.call('image.upload.chunk', { uploadId, offset: off, data: part }).then(
          () => '',
          (err: Error) => err.message,
        );
      }
      expect(failure).toMatch(/disk full \(ENOSPC\).*nothing kept/);
      expect(readdirSync(mnt)).toEqual(['other-tenant']);
      expect(statSync(join(mnt, 'other-tenant')).size).toBe(1 << 20);
      expect((await codeOf(client.call('image.upload.commit', { uploadId })))[0]).toBe(-32004);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('chunk calls and the input thread', () => {
  it('tells the onBulk hook of each chunk call, and of no other call', async () => {
    const t2 = tempDir();
    let bulk = 0;
    const { server: s2, sock: sock2 } = await startServer(t2.dir, { onBulk: () => void bulk++ });
    s2.register(imageUploadMethods({ imageDirs: () => [t2.dir] }));
    const c = await connectSocket(sock2);
    try {
      const data = randomBytes(3 << 20);
      const up = await upload(c, 'bulk.img', data); // 3 chunks of 1 MiB
      expect(bulk).toBe(3);
      await up.commit();
      await c.call('vm.list');
      expect(bulk).toBe(3);
    } finally {
      c.close();
      await s2.close();
      t2.cleanup();
    }
  });
});
