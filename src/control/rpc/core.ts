import type { Logger } from '../../util/log.js';
import type { AuditLog } from '../auth/audit.js';
import type { Authenticator } from '../auth/auth.js';
import type { LockoutConfig, LockoutState } from '../auth/lockout.js';
import type { CompiledPolicy } from '../auth/policy.js';
import type { RpcMethod } from './method.js';
import type { RateConfig } from './rate.js';

/**
 * Asks the console. `params` are the parsed params with secrets redacted; `signal` aborts when the
 * caller's channel closes (drop the question). May reject with an RpcError (e.g. -32029: that VM
 * already has a question pending, or was just denied), which the caller gets as is.
 */
export type ConfirmFn = (
  vm: string,
  method: string,
  params: unknown,
  signal?: AbortSignal,
) => Promise<boolean>;

export interface ControlLimits {
  /** Longest request line; 4 MiB fits a 2 MiB chunk as base64 (2.67 MiB) plus envelope. */
  maxLineBytes: number;
  maxDepth: number;
  /** Per guest channel: lines (garbage included), counted before anything parses them. */
  rate: RateConfig;
  /** Per guest channel: bytes per second and burst; past it the channel is paused (backpressure). */
  bytes: RateConfig;
  /**
   * The same before the guest has logged in: a login line is small, so a guest without the
   * password cannot make the host read more than this (its flood costs the keyboard's event loop).
   */
  bytesBeforeLogin: RateConfig;
  /** A guest session logs out after this long without a request. */
  idleMs: number;
  /** An unanswered `ask` is a deny after this long: a backstop a little past the dialog's own timeout. */
  confirmTimeoutMs: number;
  /** A peer that stops reading is dropped once this much output is queued. */
  maxWriteBacklog: number;
}

export const defaultLimits: ControlLimits = {
  maxLineBytes: 4 << 20,
  maxDepth: 32,
  rate: { perSecond: 200, burst: 400 },
  bytes: { perSecond: 32 << 20, burst: 64 << 20 },
  bytesBeforeLogin: { perSecond: 64 << 10, burst: 256 << 10 },
  idleMs: 15 * 60_000,
  confirmTimeoutMs: 70_000,
  maxWriteBacklog: 16 << 20,
};

/** What every connection shares with its server. */
export interface ServerCore {
  readonly methods: ReadonlyMap<string, RpcMethod>;
  policy: CompiledPolicy;
  readonly authenticator: Authenticator | null;
  readonly confirm: ConfirmFn | null;
  readonly audit: AuditLog | null;
  readonly log: Logger;
  readonly limits: ControlLimits;
  readonly lockout: LockoutConfig;
  /** Per VM, so reconnecting (or rebooting the VM) does not reset a lockout. */
  readonly lockouts: Map<string, LockoutState>;
  /** A `bulk` method is being called (any connection, before its handler runs). */
  readonly onBulk: (() => void) | null;
  now(): number;
}
