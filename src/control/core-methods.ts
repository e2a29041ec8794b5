import { z } from 'zod';
import { RpcCode, RpcError } from '../util/errors.js';
import type { AuditLog } from './auth/audit.js';
import { defineMethod, type RpcMethod } from './rpc/method.js';

/** Methods the control plane owns besides transfers: liveness and the audit trail. */
export function coreMethods(opts: { audit?: AuditLog; methods?: () => Iterable<string> }): RpcMethod[] {
  return [
    defineMethod({
      name: 'service.ping',
      params: z.strictObject({}),
      summary: 'liveness; tells the caller who the channel says it is',
      handler: (_p, ctx) => ({ pong: true, as: ctx.caller.kind === 'guest' ? ctx.caller.vm : 'local' }),
    }),
    defineMethod({
      name: 'service.methods',
      params: z.strictObject({}),
      summary: 'names of every method (auth.login and auth.logout included)',
      handler: () => ['auth.login', 'auth.logout', ...(opts.methods?.() ?? [])].sort(),
    }),
    defineMethod({
      name: 'audit.tail',
      params: z.strictObject({ lines: z.number().int().min(1).max(10_000).default(100) }),
      summary: 'the last N audit log entries, oldest first',
      async handler(p) {
        if (!opts.audit) throw new RpcError(RpcCode.notFound, 'no audit log configured');
        return opts.audit.tail(p.lines);
      },
    }),
  ];
}
