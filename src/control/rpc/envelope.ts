import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';

/** JSON-RPC 2.0 envelope, checked before anything else looks at a request. */
export const idSchema = z.union([z.string().max(256), z.number().finite(), z.null()]);
export type RpcId = z.infer<typeof idSchema>;

export const requestSchema = z.strictObject({
  jsonrpc: z.literal('2.0'),
  id: idSchema.optional(),
  method: z.string().min(1).max(128),
  params: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
});
export type RpcRequest = z.infer<typeof requestSchema>;

export interface RpcErrorBody {
  code: number;
  message: string;
  data?: unknown;
}

export type RpcResponse =
  | { jsonrpc: '2.0'; id: RpcId; result: unknown }
  | { jsonrpc: '2.0'; id: RpcId; error: RpcErrorBody };

export function okResponse(id: RpcId, result: unknown): RpcResponse {
  return { jsonrpc: '2.0', id, result: result === undefined ? null : result };
}

export function errorResponse(id: RpcId, err: RpcError): RpcResponse {
  const error: RpcErrorBody = { code: err.code, message: err.message };
  if (err.data !== undefined) error.data = err.data;
  return { jsonrpc: '2.0', id, error };
}

/** The id to echo for a request that failed validation: only when it is itself well-formed. */
export function salvageId(raw: unknown): RpcId {
  if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'id' in raw) {
    const id = idSchema.safeParse(raw.id);
    if (id.success) return id.data;
  }
  return null;
}

/** "field.path: message; …" naming every bad field, for -32600/-32602 messages. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const path = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
      const msg =
        i.code === 'unrecognized_keys'
          ? `unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`
          : i.message;
      return path ? `${path}: ${msg}` : msg;
    })
    .join('; ');
}

export function invalidRequest(message: string): RpcError {
  return new RpcError(RpcCode.invalidRequest, `invalid request: ${message}`);
}
