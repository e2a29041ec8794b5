import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreMethods } from '../../src/control/core-methods.js';
import { attachGuestChannel, type GuestChannel } from '../../src/control/guest-channel.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { hostUpdateMethods } from '../../src/control/transfer/host-update.js';
import { imageUploadMethods } from '../../src/control/transfer/upload.js';
import { mulberry32 } from '../helpers/prng.js';
import { fakeQemuChardev, LinePeer, PASSWORD, type Reply, startServer, tempDir } from './helpers.js';

const ERROR_CODES = new Set([-32700, -32600, -32601, -32602, -32001, -32003, -32004, -32029]);

function expectErrorReply(r: Reply, codes: number[] = [...ERROR_CODES]) {
  expect(r.jsonrpc).toBe('2.0');
  expect(r.error, JSON.stringify(r)).toBeDefined();
  expect(codes).toContain(r.error!.code);
  expect(typeof r.error!.message).toBe('string');
}

describe('protocol fuzzing over real sockets', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;
  const channels: GuestChannel[] = [];
  const closers: (() => Promise<void>)[] = [];

  async function guest(vm: string): Promise<LinePeer> {
    const path = join(t.dir, 'vm', vm, 'control.sock');
    mkdirSync(join(t.dir, 'vm', vm), { recursive: true });
    const qemu = await fakeQemuChardev(path);
    const ch = attachGuestChannel(server, { vm, path });
    channels.push(ch);
    closers.push(() => qemu.close());
    return qemu.nextPeer();
  }

  beforeEach(async () => {
    t = tempDir();
    mkdirSync(join(t.dir, 'images'));
    ({ server, sock } = await startServer(t.dir, {
      policy: [{ from: '*', method: '*', action: 'allow' }],
      limits: { maxLineBytes: 1 << 20, rate: { perSecond: 1e6, burst: 1e6 } },
    }));
    server.register(imageUploadMethods({ imageDirs: () => [join(t.dir, 'images')] }));
  });
  afterEach(async () => {
    for (const c of channels.splice(0)) c.close();
    for (const c of closers.splice(0)) await c();
    await server.close();
    t.cleanup();
  });

  it('answers random bytes with one error per line while another VM carries on', async () => {
    const hostile = await guest('mallory');
    const honest = await guest('alice');
    expect((await honest.call('auth.login', { password: PASSWORD })).result).toBeDefined();
    const rand = mulberry32(7);
    let expectedLines = 0;
    let pendingLine = false;
    let honestOk = 0;
    for (let round = 0; round < 200; round++) {
      const len = 1 + Math.floor(rand() * 2000);
      const bytes = Buffer.alloc(len);
      for (let i = 0; i < len; i++) bytes[i] = rand() < 0.01 ? 0x0a : Math.floor(rand() * 256);
      for (const b of bytes) {
        if (b === 0x0a) {
          if (pendingLine) expectedLines++;
          pendingLine = false;
        } else pendingLine = true;
      }
      hostile.send(bytes);
      if (round % 20 === 0) {
        const r = await honest.call('vm.list', {}, round);
        expect(r.id).toBe(round);
        if (r.result?.length === 2) honestOk++;
      }
    }
    hostile.send('\n');
    if (pendingLine) expectedLines++;
    const replies: Reply[] = [];
    for (let i = 0; i < expectedLines; i++) replies.push(await hostile.next());
    for (const r of replies) expectErrorReply(r, [-32700, -32600]);
    await new Promise((r) => setTimeout(r, 100));
    expect(hostile.pendingLines()).toBe(0);
    expect(honestOk).toBe(10);
    // the hostile channel itself still works
    expect((await hostile.call('auth.login', { password: PASSWORD }, 'x')).result).toEqual({
      ok: true,
      as: 'mallory',
    });
  });

  it('rejects truncated requests at every cut point', async () => {
    const peer = await LinePeer.connect(sock);
    const full = JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'vm.stop',
      params: { name: 'alpha', force: true },
    });
    for (let cut = 1; cut < full.length; cut++) {
      peer.send(`${full.slice(0, cut)}\n`);
      expectErrorReply(await peer.next(), [-32700, -32600]);
    }
    expect((await peer.call('vm.stop', { name: 'alpha' })).result).toEqual({ stopped: 'alpha' });
    peer.close();
  });

  it('drops a huge line whole and keeps the connection', async () => {
    const peer = await LinePeer.connect(sock);
    const huge = Buffer.alloc(3 << 20, 0x61);
    peer.send(huge);
    peer.send(huge);
    peer.send('\n');
    const r = await peer.next();
    expect(r.error).toEqual({ code: -32600, message: `invalid request: line longer than ${1 << 20} bytes` });
    expect((await peer.call('vm.list', {}, 3)).id).toBe(3);
    // a huge line that is valid JSON inside a string is dropped the same way
    peer.send(`{"jsonrpc":"2.0","id":4,"method":"vm.list","params":{"x":"${'b'.repeat(2 << 20)}"}}\n`);
    expect((await peer.next()).error?.code).toBe(-32600);
    expect(peer.pendingLines()).toBe(0);
    peer.close();
  });

  it('refuses deep nesting before parsing it', async () => {
    const peer = await LinePeer.connect(sock);
    peer.send(`${'['.repeat(500_000)}\n`);
    expect((await peer.next()).error?.message).toMatch(/nested deeper than 32/);
    const deepParams = `{"jsonrpc":"2.0","id":1,"method":"vm.list","params":{"a":${'['.repeat(40)}${']'.repeat(40)}}}`;
    peer.send(`${deepParams}\n`);
    expect((await peer.next()).error?.code).toBe(-32600);
    const okDepth = `{"jsonrpc":"2.0","id":2,"method":"vm.stop","params":{"name":"a","force":${'['.repeat(20)}${']'.repeat(20)}}}`;
    peer.send(`${okDepth}\n`);
    expect((await peer.next()).error).toMatchObject({
      code: -32602,
      message: expect.stringMatching(/force/),
    });
    peer.close();
  });

  it('answers wrong types in every field with -32600 or -32602, naming the field', async () => {
    const peer = await LinePeer.connect(sock);
    const weird: unknown[] = [null, 0, -1, 1.5, 'x', '', [], {}, true, '\u0000', 'x'.repeat(300)];
    const base = { jsonrpc: '2.0', id: 1, method: 'vm.stop', params: { name: 'alpha', force: false } };
    let n = 0;
    for (const field of ['jsonrpc', 'id', 'method', 'params'] as const) {
      for (const v of weird) {
        const req = { ...base, [field]: v };
        peer.send(`${JSON.stringify(req)}\n`);
        const r = await peer.next();
        if (r.result !== undefined) continue; // e.g. id "x" is a valid id
        expectErrorReply(r, [-32600, -32601, -32602]);
        if (r.error!.code === -32600) expect(r.error!.message).toContain(field);
        n++;
      }
    }
    for (const field of ['name', 'force'] as const) {
      for (const v of weird) {
        const req = { ...base, id: 2, params: { ...base.params, [field]: v } };
        peer.send(`${JSON.stringify(req)}\n`);
        const r = await peer.next();
        if (r.result !== undefined) continue;
        expect(r.error?.code).toBe(-32602);
        expect(r.error?.message).toContain(field);
        n++;
      }
    }
    expect(n).toBeGreaterThan(50);
    peer.close();
  });

  it('refuses path traversal and odd names for uploads, creating nothing anywhere', async () => {
    const peer = await LinePeer.connect(sock);
    const names = [
      '../escape.img',
      '../../etc/x.qcow2',
      '/etc/passwd.img',
      'a/b.img',
      'a\\b.img',
      '.hidden.img',
      'x..img',
      '..',
      '.',
      '',
      'x.img/',
      'x.img\u0000.txt',
      'x.img\n',
      'x.txt',
      'x.img.sh',
      'x'.repeat(200) + '.img',
      'con .img',
      '-rf.img',
    ];
    for (const name of names) {
      const r = await peer.call('image.upload.begin', { name, size: 10, sha256: '0'.repeat(64) });
      expect(r.error?.code, name).toBe(-32602);
      expect(r.error?.message, name).toContain('name');
    }
    expect(readdirSync(join(t.dir, 'images'))).toEqual([]);
    expect(existsSync(join(t.dir, 'escape.img'))).toBe(false);
    peer.close();
  });

  it('never crashes a handler with random params for every method, and cleans up after', async () => {
    server.register(hostUpdateMethods({ bootDir: () => join(t.dir, 'boot') }));
    server.register(coreMethods({}));
    const rand = mulberry32(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const keys = [
      'name',
      'size',
      'sha256',
      'uploadId',
      'offset',
      'data',
      'replace',
      'version',
      'lines',
      'force',
      'x',
    ];
    const value = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.5) {
        return pick([
          null,
          true,
          false,
          0,
          -1,
          1,
          2 ** 53,
          1e300,
          -0.5,
          '',
          'a',
          '../x.img',
          'x.img',
          '0'.repeat(64),
          'f'.repeat(32),
          'QUJD',
          '====',
          '\u0000',
          'é',
        ]);
      }
      if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
      return Object.fromEntries(
        Array.from({ length: Math.floor(rand() * 5) }, () => [pick(keys), value(depth + 1)]),
      );
    };
    const methods = [...server.methods.keys(), 'auth.login', 'auth.logout', 'nope', ''];
    const peer = await LinePeer.connect(sock);
    const codes = new Map<number, number>();
    for (let i = 0; i < 1500; i++) {
      const method = pick(methods);
      const params = rand() < 0.9 ? value(0) : undefined;
      const req = { jsonrpc: '2.0', id: i, method, ...(params === undefined ? {} : { params }) };
      peer.send(`${JSON.stringify(req)}\n`);
      const r = await peer.next();
      expect(r.id === i || r.id === null).toBe(true);
      const code = r.error?.code ?? 0;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (code === -32603) expect(method, JSON.stringify(req)).toBe('test.boom');
    }
    expect(codes.get(-32602)).toBeGreaterThan(100);
    expect(codes.get(0)).toBeGreaterThan(20);
    peer.close();
    // uploads a random request may have opened die with the connection
    for (let i = 0; i < 100 && readdirSync(join(t.dir, 'images')).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(readdirSync(join(t.dir, 'images'))).toEqual([]);
    const slots = existsSync(join(t.dir, 'boot')) ? readdirSync(join(t.dir, 'boot')) : [];
    for (const d of slots)
      expect(readdirSync(join(t.dir, 'boot', d)).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('drops a peer that never reads its replies, and nobody else', async () => {
    await server.close();
    ({ server, sock } = await startServer(t.dir, { limits: { maxWriteBacklog: 64 << 10 } }));
    const lazy = await LinePeer.connect(sock);
    lazy.socket.pause();
    const line = `${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'vm.list' })}\n`;
    const other = await LinePeer.connect(sock);
    for (let i = 0; i < 20 && !lazy.closed; i++) {
      lazy.send(line.repeat(2000));
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 0; i < 100 && server.connections.size > 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.connections.size).toBe(1);
    expect((await other.call('vm.list', {}, 5)).id).toBe(5);
    other.close();
    lazy.close();
  });
});
