import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectSocket } from '../../src/control/rpc/client.js';
import type { Connection } from '../../src/control/rpc/connection.js';
import { READ_BUFFER_BYTES, withOwnReadBuffer } from '../../src/control/rpc/own-read-buffer.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { sendFile } from '../../src/control/transfer/transfer-client.js';
import { imageUploadMethods } from '../../src/control/transfer/upload.js';
import { startServer, tempDir, until } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the local socket reads into its own reused buffer', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir();
  });
  afterEach(() => t.cleanup());

  it('swaps an accepted socket for one on a dup of its fd: same peer, both ways, one buffer', async () => {
    const path = join(t.dir, 'plain.sock');
    const seen: { text: string; buffer: ArrayBufferLike }[] = [];
    let swapped: Socket | null = null;
    const server = createServer({ pauseOnConnect: true }, (accepted) => {
      swapped = withOwnReadBuffer(accepted, {
        bytes: (chunk) => seen.push({ text: chunk.toString(), buffer: chunk.buffer }),
        target: () => null,
        landed: () => expect.unreachable('no target was offered'),
      });
      swapped?.write('hello\n');
    });
    await new Promise<void>((r) => server.listen(path, r));
    const c = connect(path);
    await until(() => swapped !== null, 3000); // null: fell back to the plain socket
    const greeting = await new Promise<string>((r) => c.once('data', (d) => r(d.toString())));
    expect(greeting).toBe('hello\n');
    c.write('one');
    await sleep(30);
    c.write('two');
    await sleep(30);
    expect(seen.map((s) => s.text)).toEqual(['one', 'two']);
    expect(seen[0]!.buffer).toBe(seen[1]!.buffer);
    expect(seen[0]!.buffer.byteLength).toBe(READ_BUFFER_BYTES);
    const closed = new Promise((r) => c.once('close', r));
    (swapped as Socket | null)?.destroy();
    await closed;
    c.destroy();
    await new Promise((r) => server.close(r));
  });

  it('reads straight into the memory its sink offers, and into its own buffer otherwise', async () => {
    const path = join(t.dir, 'target.sock');
    const into = Buffer.alloc(300_000);
    let filled = 0;
    const seen: string[] = [];
    let swapped: Socket | null = null;
    const server = createServer({ pauseOnConnect: true }, (accepted) => {
      swapped = withOwnReadBuffer(accepted, {
        bytes: (chunk) => seen.push(chunk.toString()),
        target: () => (filled < into.length && seen.length > 0 ? into.subarray(filled) : null),
        landed: (n) => {
          filled += n;
        },
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    const c = connect(path);
    await until(() => swapped !== null, 3000);
    c.write('head');
    await until(() => seen.length === 1);
    const bulk = randomBytes(into.length);
    c.write(bulk);
    await until(() => filled === into.length);
    c.write('tail');
    await until(() => seen.length === 2);
    // nothing of the bulk went through the shared buffer, nothing past it landed in place
    expect(seen).toEqual(['head', 'tail']);
    expect(into.equals(bulk)).toBe(true);
    (swapped as Socket | null)?.destroy();
    c.destroy();
    await new Promise((r) => server.close(r));
  });

  describe('through the control server', () => {
    let server: ControlServer;
    let sock: string;
    let images: string;
    beforeEach(async () => {
      images = join(t.dir, 'images');
      mkdirSync(images);
      ({ server, sock } = await startServer(t.dir));
      server.register(imageUploadMethods({ imageDirs: () => [images] }));
    });
    afterEach(async () => {
      await server.close();
    });

    it('parses a long line written in pieces, though each read overwrites the last', async () => {
      const data = randomBytes(600_000); // base64 line of 800 kB: several reads of the 256 KiB buffer
      const raw = connect(sock);
      await new Promise((r) => raw.once('connect', r));
      const replies: string[] = [];
      raw.on('data', (d) => replies.push(...d.toString().split('\n').filter(Boolean)));
      const begin = {
        jsonrpc: '2.0',
        id: 1,
        method: 'image.upload.begin',
        params: { name: 'pieces.img', size: data.length, sha256: sha(data) },
      };
      raw.write(`${JSON.stringify(begin)}\n`);
      await until(() => replies.length === 1);
      const id = (JSON.parse(replies[0]!) as { result: { uploadId: string } }).result.uploadId;
      const line = `${JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'image.upload.chunk', params: { uploadId: id, offset: 0, data: data.toString('base64') } })}\n`;
      for (let at = 0; at < line.length; at += 100_000) {
        raw.write(line.slice(at, at + 100_000));
        await sleep(15);
      }
      raw.write(
        `${JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'image.upload.commit', params: { uploadId: id } })}\n`,
      );
      await until(() => replies.length === 3);
      expect(replies.map((r) => (JSON.parse(r) as { error?: unknown }).error ?? 'ok')).toEqual([
        'ok',
        'ok',
        'ok',
      ]);
      expect(readFileSync(join(images, 'pieces.img')).equals(data)).toBe(true);
      raw.destroy();
    });

    it('lands a pipelined binary upload of pooled chunks byte for byte', async () => {
      const data = randomBytes(40 << 20);
      let conn: Connection | undefined;
      const src = join(t.dir, 'src.img');
      writeFileSync(src, data);
      const c = await connectSocket(sock);
      try {
        await until(() => server.connections.size === 1);
        expect([...server.connections].map((conn) => conn.readsOwnBuffer)).toEqual([true]);
        conn = [...server.connections][0];
        await sendFile(c, {
          prefix: 'image.upload',
          file: src,
          begin: { name: 'pooled.img' },
          chunkBytes: 512 << 10,
          inFlight: 8,
        });
      } finally {
        c.close();
        rmSync(src);
      }
      expect(readFileSync(join(images, 'pooled.img')).equals(data)).toBe(true);
      // most of each attachment was read in place (a read that also holds its header is copied)
      expect(conn?.bytesLandedInPlace).toBeGreaterThan(data.length * 0.5);
    });
  });
});
