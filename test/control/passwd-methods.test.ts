import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writePasswordFile } from '../../src/control/auth/auth.js';
import { passwdMethods } from '../../src/control/auth/passwd-methods.js';
import type { CallContext, Caller } from '../../src/control/rpc/method.js';
import { RpcCode } from '../../src/util/errors.js';
import { tempDir } from '../helpers/temp.js';

const ctx = (caller: Caller): CallContext => ({
  caller,
  signal: new AbortController().signal,
  connection: new Map(),
  onSessionEnd: () => {},
});

function setup() {
  const path = join(tempDir('kvmux-passwd-'), 'admin.passwd');
  let t = 1_000_000;
  const [, passwd] = passwdMethods({
    path,
    lockout: { threshold: 3, lockMs: 60_000, maxLockMs: 600_000 },
    now: () => t,
  });
  const call = (caller: Caller, old: string, next: string) =>
    Promise.resolve(passwd!.handler({ old, new: next }, ctx(caller)));
  return { path, call, advance: (ms: number) => (t += ms) };
}

describe('auth.passwd', () => {
  it('locks a guest out after wrong old passwords, even when it then guesses right', async () => {
    const { path, call, advance } = setup();
    await writePasswordFile(path, 'right');
    const before = readFileSync(path, 'utf8');
    const guest: Caller = { kind: 'guest', vm: 'mallory' };
    for (let i = 0; i < 3; i++)
      await expect(call(guest, `guess${i}`, 'mine')).rejects.toMatchObject({
        code: RpcCode.unauthorized,
      });
    // the right old password does not help while locked: guessing costs wall-clock time
    await expect(call(guest, 'right', 'mine')).rejects.toThrow(/locked, retry in 60 s/);
    expect(readFileSync(path, 'utf8')).toBe(before);
    // another caller has its own count
    await expect(call({ kind: 'local' }, 'right', 'console')).resolves.toMatchObject({ ok: true });
    advance(60_001);
    await expect(call(guest, 'console', 'mine')).resolves.toMatchObject({ ok: true });
  });
});
