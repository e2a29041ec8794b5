import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import { defineMethod, type RpcMethod } from '../rpc/method.js';
import { MAX_PASSWORD_BYTES, readPasswordFile, verifyPassword, writePasswordFile } from './auth.js';

const password = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s) <= MAX_PASSWORD_BYTES, `at most ${MAX_PASSWORD_BYTES} bytes`);

/**
 * `auth.passwd {old?, new}`: change the host password (scrypt hash, written atomically). `old` is
 * required once a password exists; only the console (the local socket) may set the first one, so
 * a guest can never claim an appliance that has no password yet. `auth.status` tells the admin
 * screen whether to show first-boot setup.
 */
export function passwdMethods(opts: { path: string }): RpcMethod[] {
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
          if (!(await verifyPassword(p.old, stored)))
            throw new RpcError(RpcCode.unauthorized, 'old password is wrong');
        }
        await writePasswordFile(opts.path, p.new);
        return { ok: true, first: stored === null };
      },
    }),
  ];
}
