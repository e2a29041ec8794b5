import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import type { ServerCore } from '../rpc/core.js';
import { describeIssues } from '../rpc/envelope.js';
import { initialLockout, lockoutStep } from './lockout.js';

/** `auth.login`: lockout first (no password check while locked), then scrypt. */
const loginSchema = z.strictObject({ password: z.string().max(1024) });

export function parseLogin(params: unknown): string {
  const parsed = loginSchema.safeParse(params ?? {});
  if (!parsed.success)
    throw new RpcError(RpcCode.invalidParams, `invalid params: ${describeIssues(parsed.error)}`);
  return parsed.data.password;
}

/** Lockout key of the local socket's logins (the admin screen); not a valid VM name. */
export const LOCAL_LOCKOUT_KEY = '(local)';

/** Resolves when `password` is right; throws -32001 otherwise, counting the failure against `vm`. */
export async function checkPassword(core: ServerCore, vm: string, password: string): Promise<void> {
  const { lockout, lockouts } = core;
  const state = lockouts.get(vm) ?? initialLockout(lockout);
  const refused = lockoutStep(lockout, state, { type: 'attempt' }, core.now()).actions.find(
    (a) => a.type === 'refuse',
  );
  if (refused?.type === 'refuse') {
    const s = Math.ceil(refused.retryAfterMs / 1000);
    throw new RpcError(RpcCode.unauthorized, `too many failed logins from ${vm}: locked, retry in ${s} s`);
  }
  const ok = (await core.authenticator?.check(password)) ?? false;
  const step = lockoutStep(lockout, state, { type: ok ? 'success' : 'failure' }, core.now());
  lockouts.set(vm, step.state);
  if (ok) return;
  const locked = step.actions.some((a) => a.type === 'locked');
  throw new RpcError(RpcCode.unauthorized, locked ? 'wrong password; now locked out' : 'wrong password');
}
