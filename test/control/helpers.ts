import { readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { openAuditLog } from '../../src/control/auth/audit.js';
import { hashPassword, verifyPassword } from '../../src/control/auth/auth.js';
import { defineMethod, type RpcMethod } from '../../src/control/rpc/method.js';
import {
  type ControlServer,
  type ControlServerOptions,
  createControlServer,
} from '../../src/control/rpc/server.js';
import { RpcError } from '../../src/util/errors.js';
import { tempDir as trackedTempDir } from '../helpers/temp.js';

export const PASSWORD = 'correct horse battery staple';

export function tempDir(prefix = 'kvmux-ctl-'): { dir: string; cleanup(): void } {
  const dir = trackedTempDir(prefix);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A vm.list row set for tests; the lead registers the real one. */
export const testVmList: RpcMethod = defineMethod({
  name: 'vm.list',
  params: z.strictObject({}),
  summary: 'test VM list',
  handler: () => [
    { name: 'alpha', backend: 'qemu', state: 'running', pid: 1234, memoryMiB: 512 },
    { name: 'beta', backend: 'command', state: 'stopped', pid: null, memoryMiB: null },
  ],
});

export const testVmStop: RpcMethod = defineMethod({
  name: 'vm.stop',
  params: z.strictObject({ name: z.string(), force: z.boolean().optional() }),
  summary: 'test vm.stop',
  handler: (p) => ({ stopped: p.name }),
});

export const boom: RpcMethod = defineMethod({
  name: 'test.boom',
  params: z.strictObject({}),
  summary: 'throws a plain Error',
  handler: () => {
    throw new Error('secret internal detail at /root/x.ts:12');
  },
});

/** Cheap scrypt so tests do not spend 100 ms per login. */
export async function fastAuthenticator(password = PASSWORD) {
  const stored = await hashPassword(password, { N: 1024, r: 8, p: 1 });
  return { check: (pw: string) => verifyPassword(pw, stored) };
}

export async function startServer(
  dir: string,
  opts: ControlServerOptions = {},
): Promise<{ server: ControlServer; sock: string }> {
  const audit = await openAuditLog(join(dir, 'state'));
  const server = createControlServer({
    methods: [testVmList, testVmStop, boom],
    authenticator: await fastAuthenticator(),
    audit,
    ...opts,
  });
  const sock = join(dir, 'run', 'control.sock');
  await server.listen(sock);
  return { server, sock };
}

/** A line-oriented raw peer for protocol tests: send text, read reply lines. */
/** A reply line as the tests inspect it. */
export interface Reply {
  jsonrpc: '2.0';
  id: number | string | null;
  // biome-ignore lint/suspicious/noExplicitAny: tests poke into results freely
  result?: any;
  error?: { code: number; message: string; data?: unknown };
}

export class LinePeer {
  private buf = '';
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<LinePeer> {
    return new Promise((resolve, reject) => {
      const s = connect(path, () => resolve(new LinePeer(s)));
      s.once('error', reject);
    });
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  async next(timeoutMs = 10_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.closed) throw new Error('peer closed');
      if (Date.now() > deadline) throw new Error('no reply line');
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 50);
      });
    }
    return JSON.parse(this.lines.shift()!);
  }

  /** Send a request object and return its reply. */
  async call(method: string, params?: unknown, id: number | string = 1): Promise<Reply> {
    this.send(
      `${JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })}\n`,
    );
    return this.next();
  }

  pendingLines(): number {
    return this.lines.length;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Plays QEMU's side of a guest channel: listens on `path` like `-chardev socket,server=on`, and
 * hands the test the accepted socket, which is what the guest would write into.
 */
export async function fakeQemuChardev(
  path: string,
): Promise<{ server: Server; nextPeer(): Promise<LinePeer>; close(): Promise<void> }> {
  const peers: LinePeer[] = [];
  let wake: (() => void) | null = null;
  const server = createServer((s) => {
    peers.push(new LinePeer(s));
    wake?.();
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    server,
    async nextPeer() {
      while (peers.length === 0) await new Promise<void>((r) => (wake = r));
      return peers.shift()!;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The code and message of the RpcError `p` rejects with (anything else fails the test). */
export async function codeOf(p: Promise<unknown>): Promise<[number, string]> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcError) return [err.code, err.message];
    throw err;
  }
  throw new Error('expected an RpcError');
}

/** Poll `cond` every 20 ms until it holds (or fail after `ms`). */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition not met in time');
}

/** CPU seconds the main thread (tid = pid: vitest runs files in forks) has used, from /proc. */
export function mainThreadCpu(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (USER_HZ 100)
}

/** A method (no params) whose calls wait until the test calls `release`: it holds its connection's pump. */
export function heldMethod(name: string): { method: RpcMethod; release: () => void } {
  let release = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  const method = defineMethod({
    name,
    params: z.strictObject({}),
    summary: 'holds the connection until the test lets go',
    handler: async () => {
      await held;
      return 'ok';
    },
  });
  return { method, release: () => release() };
}
