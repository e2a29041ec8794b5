import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { connectSocket, openChannel, openDevice } from '../../src/control/rpc/client.js';
import { defineMethod } from '../../src/control/rpc/method.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { KvmuxError, type RpcError } from '../../src/util/errors.js';
import { startServer, tempDir } from './helpers.js';

describe('RpcClient', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;

  beforeAll(async () => {
    t = tempDir();
    ({ server, sock } = await startServer(t.dir));
    server.register(
      defineMethod({
        name: 'test.hang',
        params: z.strictObject({}),
        summary: '',
        handler: () => new Promise(() => {}),
      }),
    );
  });
  afterAll(async () => {
    await server.close();
    t.cleanup();
  });

  it('maps error replies to RpcError(code, message) and times out silent calls', async () => {
    const c = await connectSocket(sock);
    await expect(c.call('vm.nope')).rejects.toMatchObject({ name: 'RpcError', code: -32601 });
    const err = await c.call('test.hang', {}, 200).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvmuxError);
    expect((err as Error).message).toBe('test.hang: no reply within 200 ms');
    c.close();
    await expect(c.call('vm.list')).rejects.toThrow(/closed/);
  });

  it('matches concurrent replies to their calls by id', async () => {
    const c = await connectSocket(sock);
    const results = await Promise.all([
      c.call('vm.stop', { name: 'a' }),
      c.call('vm.list').then((r) => (r as unknown[]).length),
      c.call('vm.stop', { name: 'b' }),
      c.call('vm.stop', {}).catch((e: RpcError) => e.code),
    ]);
    expect(results).toEqual([{ stopped: 'a' }, 2, { stopped: 'b' }, -32602]);
    c.close();
  });

  describe('over a serial tty, as inside a VirtualBox guest', () => {
    let socat: ChildProcess;
    const tty = () => join(t.dir, 'ttyS-guest');

    beforeAll(async () => {
      // a pty whose other end is wired to the control socket plays the guest's UART
      socat = spawn('socat', [`PTY,link=${tty()},raw,echo=0`, `UNIX-CONNECT:${sock}`], { stdio: 'ignore' });
      for (let i = 0; i < 100 && !existsSync(tty()); i++) await new Promise((r) => setTimeout(r, 20));
    });
    afterAll(async () => {
      const gone = new Promise((r) => socat.once('exit', r));
      socat.kill('SIGTERM');
      await gone;
    });

    it('calls through the tty device in raw mode', async () => {
      const c = openDevice(tty());
      const rows = await c.call<{ name: string }[]>('vm.list', {}, 5000);
      expect(rows.map((r) => r.name)).toEqual(['alpha', 'beta']);
      const big = 'x'.repeat(5000);
      await expect(c.call('vm.stop', { name: big }, 5000)).resolves.toEqual({ stopped: big });
      c.close();
    });

    it('openChannel picks the socket transport for a socket path', async () => {
      const c = await openChannel(sock);
      expect(await c.call('vm.stop', { name: 'z' })).toEqual({ stopped: 'z' });
      c.close();
    });
  });
});
