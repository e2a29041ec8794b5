import type { z } from 'zod';

/** Who is calling: the local root socket, or a VM's guest channel (identity = the channel, never a claim). */
export type Caller = { kind: 'local' } | { kind: 'guest'; vm: string };

export interface CallContext {
  readonly caller: Caller;
  /** Aborted when the caller's channel closes (uploads clean up on it). */
  readonly signal: AbortSignal;
  /** Per-connection scratch space, e.g. uploads opened on this connection. */
  readonly connection: Map<string, unknown>;
  /** Raw bytes sent with this request (`#bin N` framing), if any. */
  readonly binary?: Buffer;
  /**
   * The handler keeps `binary` past the call and gives it back to the attachment pool itself (an
   * upload chunk on its way to disk). Unclaimed, the connection gives it back once the call ends.
   */
  claimBinary?(): void;
  /**
   * Run `fn` once when the caller's session ends: logout, idle expiry or channel close (a guest),
   * channel close (the local socket). Transfers hold space only while their session lives.
   */
  onSessionEnd(fn: () => void): void;
}

/** A result that travels with raw bytes (`#bin N` + bytes before the reply line). */
export class BinaryReply {
  constructor(
    readonly result: Record<string, unknown>,
    readonly data: Buffer,
  ) {}
}

/** One row of the method table: name → zod schema → handler. */
export interface RpcMethod<S extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly params: S;
  readonly summary: string;
  /**
   * A long job (save, restore, migrate): the connection answers the calls that come after it while
   * it runs (its own answer comes later, matched by id), so a screen on one connection, such as
   * the admin's guest channel, can go on polling vm.list for the job's progress.
   */
  readonly background?: boolean;
  /**
   * Moves bulk data (an upload's or download's chunk): the server tells its `onBulk` hook, so the
   * input thread's CPU pin can make room before the load shows in the next check.
   */
  readonly bulk?: boolean;
  handler(params: z.infer<S>, ctx: CallContext): unknown | Promise<unknown>;
}

export function defineMethod<S extends z.ZodType>(m: RpcMethod<S>): RpcMethod {
  return m as unknown as RpcMethod;
}
