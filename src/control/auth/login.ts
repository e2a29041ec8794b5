import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';
import type { ServerCore } from '../rpc/core.js';
import { describeIssues } from '../rpc/envelope.js';
import { initialLockout, type LockoutConfig, type LockoutState, lockoutStep } from './lockout.js';

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

/**
 * One password check under a lockout: refused without checking while `key` is locked (the
 * message starts with `lockedPrefix`), else `check` runs and its outcome is counted against `key`.
 * Returns whether it was right and whether this failure has just locked `key` out.
 */
export async function lockedCheck(
  cfg: LockoutConfig,
  states: Map<string, LockoutState>,
  key: string,
  now: () => number,
  lockedPrefix: string,
  check: () => Promise<boolean>,
): Promise<{ ok: boolean; nowLocked: boolean }> {
  const state = states.get(key) ?? initialLockout(cfg);
  const refused = lockoutStep(cfg, state, { type: 'attempt' }, now()).actions.find(
    (a) => a.type === 'refuse',
  );
  if (refused?.type === 'refuse') {
    const s = Math.ceil(refused.retryAfterMs / 1000);
    throw new RpcError(RpcCode.unauthorized, `${lockedPrefix}: locked, retry in ${s} s`);
  }
  const ok = await check();
  const step = lockoutStep(cfg, state, { type: ok ? 'success' : 'failure' }, now());
  states.set(key, step.state);
  return { ok, nowLocked: step.actions.some((a) => a.type === 'locked') };
}

/** Resolves when `password` is right; throws -32001 otherwise, counting the failure against `vm`. */
export async function checkPassword(core: ServerCore, vm: string, password: string): Promise<void> {
  const { ok, nowLocked } = await lockedCheck(
    core.lockout,
    core.lockouts,
    vm,
    () => core.now(),
    `too many failed logins from ${vm}`,
    async () => (await core.authenticator?.check(password)) ?? false,
  );
  if (ok) return;
  throw new RpcError(RpcCode.unauthorized, nowLocked ? 'wrong password; now locked out' : 'wrong password');
}
