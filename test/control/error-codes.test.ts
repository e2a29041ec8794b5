import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineMethod } from '../../src/control/rpc/method.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { SyscallError } from '../../src/input/libc.js';
import {
  BackendError,
  ConfigError,
  DisplayError,
  KvmuxError,
  NotFoundError,
  XError,
} from '../../src/util/errors.js';
import { boom, LinePeer, startServer, tempDir, testVmList } from './helpers.js';

/** Each kind of error a handler throws reaches the RPC caller with the contract's code and its message. */
const cases: Array<[string, () => Error, number, RegExp]> = [
  ['display not found', () => new NotFoundError('display', 'nope'), -32004, /^no display named "nope"$/],
  [
    'display not up',
    () => new DisplayError('beta', 'is not up yet'),
    -32009,
    /^display "beta": is not up yet$/,
  ],
  ['VM would not start', () => new BackendError('alpha', 'did not start'), -32009, /^alpha: did not start$/],
  ['bad VM settings', () => new ConfigError('vms[0].name: bad'), -32602, /vms\[0\]\.name: bad/],
  ['X failure', () => new XError(':3', 'gone'), -32603, /^:3: gone$/],
  ['syscall', () => new SyscallError('ioctl 0x4004', 'EBUSY'), -32603, /EBUSY/],
];

const methods = cases.map(([what, make], i) =>
  defineMethod({
    name: `test.throw${i}`,
    params: z.strictObject({}),
    summary: what,
    handler: () => {
      throw make();
    },
  }),
);

describe('errors reaching an RPC caller', () => {
  let t: ReturnType<typeof tempDir>;
  let server: ControlServer;
  let sock: string;
  beforeEach(async () => {
    t = tempDir();
    ({ server, sock } = await startServer(t.dir, { methods: [testVmList, boom, ...methods] }));
  });
  afterEach(async () => {
    await server.close();
    t.cleanup();
  });

  it('every kvmux error kind is a KvmuxError (SyscallError included)', () => {
    for (const [what, make] of cases) expect(make(), what).toBeInstanceOf(KvmuxError);
  });

  it.each(cases.map(([what, , code, message], i) => [what, i, code, message] as const))(
    '%s: the contract code and the message naming the object',
    async (_what, i, code, message) => {
      const peer = await LinePeer.connect(sock);
      const r = await peer.call(`test.throw${i}`, {}, 1);
      expect(r.error?.code).toBe(code);
      expect(r.error?.message).toMatch(message);
      peer.close();
    },
  );

  it('a plain Error stays opaque (-32603, no internals leaked)', async () => {
    const peer = await LinePeer.connect(sock);
    const r = await peer.call('test.boom', {}, 1);
    expect(r.error?.code).toBe(-32603);
    expect(r.error?.message).not.toContain('/root');
    peer.close();
  });
});
