import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import { defineMethod, type RpcMethod } from '../rpc/method.js';
import {
  MAX_PASSWORD_BYTES,
  type PasswordHash,
  readPasswordFile,
  verifyPassword,
  writePasswordFile,
} from './auth.js';
import { defaultLockout, type LockoutConfig, type LockoutState } from './lockout.js';
import { LOCAL_LOCKOUT_KEY, lockedCheck } from './login.js';

const password = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s) <= MAX_PASSWORD_BYTES, `at most ${MAX_PASSWORD_BYTES} bytes`);

/**
 * `auth.passwd {old?, new}`: change the host password (scrypt hash, written atomically). `old` is
 * required once a password exists; only the console (the local socket) may set the first one, so
 * a guest can never claim an appliance that has no password yet. `auth.status` tells the admin
 * screen whether to show first-boot setup. Wrong `old` passwords count against the caller like failed
 * logins (their own counter): a logged-in guest cannot use `auth.passwd` to guess the password.
 */
export function passwdMethods(opts: {
  path: string;
  lockout?: LockoutConfig;
  now?: () => number;
}): RpcMethod[] {
  const cfg = opts.lockout ?? defaultLockout;
  const now = opts.now ?? Date.now;
  const states = new Map<string, LockoutState>();
  const checkOld = async (who: string, old: string, stored: PasswordHash) => {
    const { ok } = await lockedCheck(cfg, states, who, now, 'too many wrong passwords', () =>
      verifyPassword(old, stored),
    );
    if (!ok) throw new RpcError(RpcCode.unauthorized, 'old password is wrong');
  };
  return [
    defineMethod({
      name: 'auth.status',
      params: z.strictObject({}),
      summary: 'whether a host password is set (false: first-boot setup)',
      handler: async () => ({ passwordSet: (await readPasswordFile(opts.path)) !== null }),
    }),
    defineMethod({
      name: 'auth.passwd',
      params: z.strictObject({ old: password.optional(), new: password }),
      summary: 'change the host password (old required once one is set; the first only from the console)',
      async handler(p, ctx) {
        const stored = await readPasswordFile(opts.path);
        if (!stored) {
          if (ctx.caller.kind !== 'local')
            throw new RpcError(RpcCode.forbidden, 'the first password can only be set at the console');
        } else {
          if (p.old === undefined)
            throw new RpcError(RpcCode.invalidParams, 'old: required (a password is set)');
          await checkOld(ctx.caller.kind === 'guest' ? ctx.caller.vm : LOCAL_LOCKOUT_KEY, p.old, stored);
        }
        await writePasswordFile(opts.path, p.new);
        return { ok: true, first: stored === null };
      },
    }),
  ];
}
