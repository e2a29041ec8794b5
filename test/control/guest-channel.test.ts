import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { coreMethods } from '../../src/control/core-methods.js';
import { attachGuestChannel, type GuestChannel } from '../../src/control/guest-channel.js';
import { attachmentPool, guestShare } from '../../src/control/rpc/buffer-pool.js';
import { binaryHeader } from '../../src/control/rpc/framing.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { fakeQemuChardev, heldMethod, type LinePeer, PASSWORD, startServer, tempDir } from './helpers.js';

const policy = [
  { from: 'alpha', method: 'vm.*', action: 'allow' as const, target: '*' },
  { from: 'alpha', method: 'test.ask', action: 'ask' as const },
  { from: '*', method: 'vm.list', action: 'allow' as const },
  { from: '*', method: 'service.ping', action: 'allow' as const },
  { from: '*', method: 'audit.tail', action: 'allow' as const },
];

describe('guest channel', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let clock = 1_000_000;
  const channels: GuestChannel[] = [];
  const chardevs: { close(): Promise<void> }[] = [];
  const asked: unknown[][] = [];
  let answer = true;

  /** Start a channel for `vm` against a socket that plays QEMU's side; returns the guest's end. */
  async function guest(vm: string) {
    const path = join(t.dir, 'vm', `${vm}.sock`);
    mkdirSync(join(t.dir, 'vm'), { recursive: true });
    const qemu = await fakeQemuChardev(path);
    chardevs.push(qemu);
    const ch = attachGuestChannel(server, { vm, path, minBackoffMs: 20, maxBackoffMs: 100 });
    channels.push(ch);
    const peer = await qemu.nextPeer();
    return { qemu, ch, peer };
  }

  beforeEach(async () => {
    t = tempDir();
    clock = 1_000_000;
    asked.length = 0;
    answer = true;
    ({ server } = await startServer(t.dir, {
      policy,
      now: () => clock,
      confirm: async (...args) => {
        asked.push(args.slice(0, 3));
        return answer;
      },
      limits: { idleMs: 60_000, rate: { perSecond: 1, burst: 30 } },
      lockout: { threshold: 3, lockMs: 10_000, maxLockMs: 60_000 },
    }));
  });
  afterEach(async () => {
    for (const c of channels.splice(0)) c.close();
    await Promise.all(chardevs.splice(0).map((q) => q.close()));
    await server.close();
    t.cleanup();
  });

  const login = (p: LinePeer, password = PASSWORD) => p.call('auth.login', { password });

  it('demands auth.login before anything else, then applies the policy', async () => {
    const { peer } = await guest('alpha');
    expect((await peer.call('vm.list', {})).error?.code).toBe(-32001);
    expect((await peer.call('no.such.method', {})).error?.code).toBe(-32001);
    const wrong = await login(peer, 'guess');
    expect(wrong.error).toMatchObject({ code: -32001, message: 'wrong password' });
    expect((await login(peer)).result).toEqual({ ok: true, as: 'alpha' });
    expect((await peer.call('vm.list', {})).result).toHaveLength(2);
    expect((await peer.call('vm.stop', { name: 'beta' })).result).toEqual({ stopped: 'beta' });
    const denied = await peer.call('test.boom', {});
    expect(denied.error).toMatchObject({ code: -32003, message: 'policy forbids alpha to call "test.boom"' });
  });

  it('takes the identity from the channel, never from the guest', async () => {
    server.register(coreMethods({}));
    const { peer } = await guest('beta');
    await login(peer);
    expect((await peer.call('service.ping', { as: 'alpha' })).error?.code).toBe(-32602);
    expect((await peer.call('service.ping', {})).result).toEqual({ pong: true, as: 'beta' });
    // the alpha-only rule does not apply to beta
    expect((await peer.call('vm.stop', { name: 'alpha' })).error?.code).toBe(-32003);
  });

  it('locks a VM out after repeated failures, even with the right password, across reconnects', async () => {
    const { peer, qemu } = await guest('alpha');
    for (let i = 0; i < 3; i++) expect((await login(peer, `nope${i}`)).error?.code).toBe(-32001);
    const locked = await login(peer);
    expect(locked.error?.message).toMatch(/locked, retry in 10 s/);
    // a VM restart (new chardev connection) does not reset the lockout
    peer.close();
    const again = await qemu.nextPeer();
    expect((await login(again)).error?.message).toMatch(/locked/);
    clock += 10_001;
    expect((await login(again)).result).toEqual({ ok: true, as: 'alpha' });
  });

  it('asks the person at the keyboard for `ask` rules, and denies on no', async () => {
    const { defineMethod } = await import('../../src/control/rpc/method.js');
    const { z } = await import('zod');
    server.register(
      defineMethod({
        name: 'test.ask',
        params: z.strictObject({ password: z.string() }),
        summary: '',
        handler: () => 'done',
      }),
    );
    const { peer } = await guest('alpha');
    await login(peer);
    expect((await peer.call('test.ask', { password: 'hunter2' })).result).toBe('done');
    expect(asked).toEqual([['alpha', 'test.ask', { password: '[redacted]' }]]);
    answer = false;
    expect((await peer.call('test.ask', { password: 'x' })).error?.code).toBe(-32003);
  });

  it('logs out after the idle timeout and on reconnect', async () => {
    const { peer, qemu } = await guest('alpha');
    await login(peer);
    clock += 30_000;
    expect((await peer.call('vm.list', {})).result).toBeDefined();
    clock += 60_001;
    expect((await peer.call('vm.list', {})).error?.message).toMatch(/expired/);
    expect((await peer.call('vm.list', {})).error?.code).toBe(-32001);
    await login(peer);
    peer.close();
    const after = await qemu.nextPeer();
    expect((await after.call('vm.list', {})).error?.code).toBe(-32001);
  });

  it('connects once the socket appears later, and again after the VM restarts', async () => {
    const path = join(t.dir, 'late.sock');
    const ch = attachGuestChannel(server, { vm: 'late', path, minBackoffMs: 20, maxBackoffMs: 50 });
    channels.push(ch);
    await new Promise((r) => setTimeout(r, 150));
    expect(ch.connected).toBe(false);
    const qemu = await fakeQemuChardev(path);
    const first = await qemu.nextPeer();
    await ch.whenConnected();
    expect((await first.call('vm.list', {})).error?.code).toBe(-32001);
    // VM restart: QEMU goes away and a new one listens on the same path
    first.close();
    await qemu.close();
    const qemu2 = await fakeQemuChardev(path);
    const second = await qemu2.nextPeer();
    expect((await second.call('auth.login', { password: PASSWORD })).result).toEqual({
      ok: true,
      as: 'late',
    });
    ch.close();
    await qemu2.close();
  });

  it('dials at once on reset instead of waiting out a long backoff', async () => {
    const path = join(t.dir, 'slow.sock');
    const ch = attachGuestChannel(server, { vm: 'slow', path, minBackoffMs: 60_000, maxBackoffMs: 60_000 });
    channels.push(ch);
    await new Promise((r) => setTimeout(r, 100)); // the first dial failed: no socket yet
    const qemu = await fakeQemuChardev(path);
    chardevs.push(qemu);
    ch.reset();
    await ch.whenConnected();
    expect(ch.connected).toBe(true);
  });

  it('rate-limits a flooding guest without touching another guest', async () => {
    const a = await guest('alpha');
    const b = await guest('beta');
    await login(a.peer);
    await login(b.peer);
    const codes: (number | undefined)[] = [];
    for (let i = 0; i < 40; i++) codes.push((await a.peer.call('vm.list', {}, i)).error?.code);
    expect(codes.filter((c) => c === -32029).length).toBeGreaterThan(0);
    expect((await b.peer.call('vm.list', {})).result).toHaveLength(2);
  });

  it('answers garbage beyond the rate limit with silence', async () => {
    const { peer } = await guest('alpha');
    peer.send('not json\n'.repeat(50));
    await new Promise((r) => setTimeout(r, 200));
    const replies = [];
    while (peer.pendingLines() > 0) replies.push(await peer.next());
    expect(replies).toHaveLength(30);
    expect(replies.every((r) => r.error?.code === -32700)).toBe(true);
    expect((await peer.call('vm.list', {}, 'late')).error).toMatchObject({ code: -32029 });
  });

  it('gives back the attachments of lines beyond the rate limit (they are never read)', async () => {
    const { peer } = await guest('alpha');
    await login(peer); // the byte budget of a session: every line below is read
    // the burst used up, then a request over the rate to wait for: its -32029 comes after every
    // reply to the lines before it
    peer.send('not json\n'.repeat(31));
    peer.send(`${JSON.stringify({ jsonrpc: '2.0', id: 'sync', method: 'vm.list' })}\n`);
    while ((await peer.next()).id !== 'sync');
    attachmentPool.clear();
    const shared0 = attachmentPool.bytesShared;
    for (let i = 0; i < 20; i++) {
      const line = `${JSON.stringify({ jsonrpc: '2.0', id: i, method: 'vm.list' })}\n`;
      peer.send(
        Buffer.concat([Buffer.from(binaryHeader(100 << 10)), Buffer.alloc(100 << 10, i), Buffer.from(line)]),
      );
      // over the rate: refused unparsed (its id read from its first bytes), its attachment unread
      expect(await peer.next()).toMatchObject({ id: i, error: { code: -32029 } });
    }
    // one slab, taken and given back 20 times
    expect(attachmentPool.bytesShared - shared0).toBe(attachmentPool.slabBytes);
    expect(attachmentPool.bytesFree).toBe(attachmentPool.slabBytes);
  });

  it("counts a guest's attachments within the guests' common share of the pool", async () => {
    const { method, release } = heldMethod('vm.hold');
    server.register(method);
    const { peer } = await guest('alpha');
    await login(peer);
    expect(guestShare.lent).toBe(0);
    // a held call keeps the guest's pump: the lines behind it wait, each with its attachment
    peer.send(`${JSON.stringify({ jsonrpc: '2.0', id: 'hold', method: 'vm.hold', params: {} })}\n`);
    for (let i = 0; i < 3; i++) {
      const line = `${JSON.stringify({ jsonrpc: '2.0', id: i, method: 'vm.list' })}\n`;
      peer.send(
        Buffer.concat([Buffer.from(binaryHeader(100 << 10)), Buffer.alloc(100 << 10, i), Buffer.from(line)]),
      );
    }
    const deadline = Date.now() + 2000;
    while (guestShare.lent < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(guestShare.lent).toBe(3);
    release();
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await peer.next()).id);
    expect(ids).toEqual(['hold', 0, 1, 2]);
    expect(guestShare.lent).toBe(0);
  });

  it('ends the session on auth.logout', async () => {
    const { peer } = await guest('alpha');
    await login(peer);
    expect((await peer.call('auth.logout', {})).result).toEqual({ ok: true });
    expect((await peer.call('vm.list', {})).error?.code).toBe(-32001);
  });

  it('writes every guest call to the audit log without secrets', async () => {
    const { peer } = await guest('alpha');
    await login(peer, 'not-the-password');
    await login(peer);
    await peer.call('vm.stop', { name: 'beta' });
    await peer.call('test.boom', {});
    await new Promise((r) => setTimeout(r, 50));
    const text = readFileSync(join(t.dir, 'state', 'audit.log'), 'utf8');
    expect(text).not.toContain('not-the-password');
    expect(text).not.toContain(PASSWORD);
    const entries = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(entries.map((e) => [e.from, e.method, e.outcome, e.code ?? 0])).toEqual([
      ['alpha', 'auth.login', 'error', -32001],
      ['alpha', 'auth.login', 'ok', 0],
      ['alpha', 'vm.stop', 'ok', 0],
      ['alpha', 'test.boom', 'error', -32003],
    ]);
    expect(entries[2].params).toEqual({ name: 'beta' });
  });
});
