import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineMethod } from '../../src/control/rpc/method.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { createControlServer } from '../../src/control/rpc/server.js';
import { LinePeer, PASSWORD, startServer, tempDir } from './helpers.js';

describe('control server on the local socket', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;

  beforeEach(async () => {
    t = tempDir();
    ({ server, sock } = await startServer(t.dir));
  });
  afterEach(async () => {
    await server.close();
    t.cleanup();
  });

  it('creates the socket with mode 0600 and answers a call', async () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const peer = await LinePeer.connect(sock);
    const r = await peer.call('vm.list', {}, 7);
    expect(r).toMatchObject({ jsonrpc: '2.0', id: 7 });
    expect(r.result.map((v: { name: string }) => v.name)).toEqual(['alpha', 'beta']);
    peer.close();
  });

  it('checks the password of a local auth.login (the admin screen relies on it) and locks out', async () => {
    const peer = await LinePeer.connect(sock);
    const wrong = await peer.call('auth.login', { password: 'not it' }, 1);
    expect(wrong.error).toMatchObject({ code: -32001, message: 'wrong password' });
    const right = await peer.call('auth.login', { password: PASSWORD }, 2);
    expect(right.result).toEqual({ ok: true, as: 'local' });
    for (let i = 0; i < 5; i++) await peer.call('auth.login', { password: `bad ${i}` }, 10 + i);
    const locked = await peer.call('auth.login', { password: PASSWORD }, 20);
    expect(locked.error?.code).toBe(-32001);
    expect(locked.error?.message).toMatch(/locked/);
    // calls on the root socket still need no login
    expect((await peer.call('vm.list', {}, 21)).result).toHaveLength(2);
    peer.close();
  });

  it('keeps everyone but root out of the socket', async () => {
    // open the directories so only the socket's own mode stands in the way
    for (const d of [t.dir, dirname(sock)]) chmodSync(d, 0o755);
    const asNobody = () =>
      new Promise<{ stdout: string; stderr: string }>((resolve) => {
        const args = [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          'socat',
          '-t',
          '1',
          '-',
          `UNIX-CONNECT:${sock}`,
        ];
        const child = spawn('setpriv', args);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', () => resolve({ stdout, stderr }));
        child.stdin.end('{"jsonrpc":"2.0","id":1,"method":"vm.list"}\n');
      });
    const denied = await asNobody();
    expect(denied.stderr).toMatch(/Permission denied/);
    expect(denied.stdout).toBe('');
    // control: the same command gets through once the mode allows it
    chmodSync(sock, 0o666);
    expect(JSON.parse((await asNobody()).stdout)).toMatchObject({ id: 1 });
  });

  it('trusts the local socket without login or policy', async () => {
    const peer = await LinePeer.connect(sock);
    expect((await peer.call('vm.stop', { name: 'alpha' })).result).toEqual({ stopped: 'alpha' });
    peer.close();
  });

  const cases: [string, string, number, RegExp][] = [
    ['not JSON', '{"jsonrpc":"2.0",', -32700, /parse error/],
    ['a bare number', '42', -32600, /invalid request/],
    ['a wrong jsonrpc version', '{"jsonrpc":"1.0","id":1,"method":"vm.list"}', -32600, /jsonrpc/],
    ['a method that is a number', '{"jsonrpc":"2.0","id":1,"method":5}', -32600, /method/],
    ['an unknown envelope key', '{"jsonrpc":"2.0","id":1,"method":"vm.list","x":1}', -32600, /"x"/],
    ['a batch array', '[{"jsonrpc":"2.0","id":1,"method":"vm.list"}]', -32600, /batch/],
    ['an unknown method', '{"jsonrpc":"2.0","id":1,"method":"vm.nope"}', -32601, /vm\.nope/],
    ['positional params', '{"jsonrpc":"2.0","id":1,"method":"vm.stop","params":["alpha"]}', -32602, /object/],
    ['a missing field', '{"jsonrpc":"2.0","id":1,"method":"vm.stop","params":{}}', -32602, /name/],
    [
      'a wrong field type',
      '{"jsonrpc":"2.0","id":1,"method":"vm.stop","params":{"name":"a","force":"yes"}}',
      -32602,
      /force/,
    ],
    [
      'an unexpected field',
      '{"jsonrpc":"2.0","id":1,"method":"vm.list","params":{"all":true}}',
      -32602,
      /all/,
    ],
  ];
  it.each(cases)('answers %s with the right code', async (_what, line, code, message) => {
    const peer = await LinePeer.connect(sock);
    peer.send(`${line}\n`);
    const r = await peer.next();
    expect(r.error?.code).toBe(code);
    expect(r.error?.message).toMatch(message);
    // and the connection still works afterwards
    expect((await peer.call('vm.list', {}, 2)).id).toBe(2);
    peer.close();
  });

  it('hides handler exceptions behind -32603 without internals', async () => {
    const peer = await LinePeer.connect(sock);
    const r = await peer.call('test.boom', {});
    expect(r.error?.code).toBe(-32603);
    expect(r.error?.message).not.toMatch(/secret|\/root|at /);
    peer.close();
  });

  it('sends nothing back for a notification', async () => {
    const peer = await LinePeer.connect(sock);
    peer.send('{"jsonrpc":"2.0","method":"vm.list"}\n{"jsonrpc":"2.0","method":"vm.nope"}\n');
    const r = await peer.call('vm.list', {}, 'after');
    expect(r.id).toBe('after');
    expect(peer.pendingLines()).toBe(0);
    peer.close();
  });

  it('keeps request order on one connection', async () => {
    const peer = await LinePeer.connect(sock);
    peer.send(
      Array.from({ length: 20 }, (_, i) => JSON.stringify({ jsonrpc: '2.0', id: i, method: 'vm.list' })).join(
        '\n',
      ) + '\n',
    );
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push((await peer.next()).id);
    expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => i));
    peer.close();
  });

  it('answers the calls after a background job while it runs; the others keep their order', async () => {
    let finish = () => {};
    server.register(
      defineMethod({
        name: 'test.job',
        params: z.strictObject({}),
        summary: 'a long job',
        background: true,
        handler: () => new Promise((ok) => (finish = () => ok({ done: true }))),
      }),
    );
    const peer = await LinePeer.connect(sock);
    const line = (id: number, method: string) => JSON.stringify({ jsonrpc: '2.0', id, method });
    peer.send(`${[line(1, 'test.job'), line(2, 'vm.list'), line(3, 'vm.list')].join('\n')}\n`);
    // the job still runs: vm.list is answered anyway, in order
    expect((await peer.next()).id).toBe(2);
    expect((await peer.next()).id).toBe(3);
    finish();
    expect(await peer.next()).toMatchObject({ id: 1, result: { done: true } });
    peer.close();
  });

  it('refuses to start over a live socket, and replaces a stale one', async () => {
    const other = createControlServer();
    await expect(other.listen(sock)).rejects.toThrow(/already listening/);
    const stale = join(t.dir, 'stale.sock');
    // a server killed with SIGKILL leaves its socket file behind
    const script = `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    expect(statSync(stale).isSocket()).toBe(true);
    await other.listen(stale);
    const peer = await LinePeer.connect(stale);
    expect((await peer.call('service.ping', {})).error?.code).toBe(-32601);
    peer.close();
    await other.close();
  });

  it('refuses to replace a regular file at the socket path', async () => {
    const path = join(t.dir, 'not-a-socket');
    writeFileSync(path, 'x');
    await expect(createControlServer().listen(path)).rejects.toThrow(/not a socket/);
  });
});
