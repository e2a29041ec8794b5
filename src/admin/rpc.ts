import { openChannel } from '../control/rpc/client.js';
import { errnoName, errText, KvmuxError, RpcCode, RpcError } from '../util/errors.js';

/** What the admin screen needs from a control connection; the transport (socket or device) is hidden. */
export interface AdminRpc {
  call(method: string, params?: unknown): Promise<unknown>;
  close(): void;
}

/** The local socket or, with `--remote`, a guest channel device: one code path, only this differs. */
export async function openAdminRpc(target: { socket?: string; remote?: string }): Promise<AdminRpc> {
  const path = target.remote ?? target.socket;
  if (!path) throw new RpcError(RpcCode.invalidParams, 'admin: no control socket or --remote device given');
  const client = await openChannel(path, { timeoutMs: 120_000 }).catch((err: unknown) => {
    if (err instanceof KvmuxError) throw err;
    throw new KvmuxError(`${path}: cannot open the control channel: ${errnoName(err)}`, { cause: err });
  });
  return { call: (m, p) => client.call(m, p), close: () => client.close() };
}

export const isMissingMethod = (err: unknown): boolean =>
  err instanceof RpcError && err.code === RpcCode.methodNotFound;

/** Call a method the service may not provide: `undefined` on -32601, other errors thrown. */
export async function callOptional(rpc: AdminRpc, method: string, params?: unknown): Promise<unknown> {
  try {
    return await rpc.call(method, params);
  } catch (err) {
    if (isMissingMethod(err)) return undefined;
    throw err;
  }
}

/** One line for the status bar: `-32003 forbidden: ...` reads better as just the server's message. */
export function errorText(err: unknown): string {
  if (err instanceof RpcError) return `${err.message} (${err.code})`;
  return errText(err);
}
