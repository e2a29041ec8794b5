import type { z } from 'zod';

/** Who is calling: the local root socket, or a VM's guest channel (identity = the channel, never a claim). */
export type Caller = { kind: 'local' } | { kind: 'guest'; vm: string };

export interface CallContext {
  readonly caller: Caller;
  /** Aborted when the caller's channel closes (uploads clean up on it). */
  readonly signal: AbortSignal;
  /** Per-connection scratch space, e.g. uploads opened on this connection. */
  readonly connection: Map<string, unknown>;
}

/** One row of the method table: name → zod schema → handler. */
export interface RpcMethod<S extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly params: S;
  readonly summary: string;
  handler(params: z.infer<S>, ctx: CallContext): unknown | Promise<unknown>;
}

export function defineMethod<S extends z.ZodType>(m: RpcMethod<S>): RpcMethod {
  return m as unknown as RpcMethod;
}
