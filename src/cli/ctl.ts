import { join } from 'node:path';
import { loadConfigFile, resolveConfigPath } from '../config/config.js';
import { connectSocket } from '../control/rpc/client.js';
import { KvmuxError, RpcError } from '../util/errors.js';

interface CtlOptions {
  config?: string;
  socket?: string;
}

/** `kvmux ctl METHOD [JSON]`: one call; result as JSON on stdout, error message on stderr + exit 1. */
export default async function ctl(
  method: string,
  paramsText: string | undefined,
  opts: CtlOptions,
): Promise<number> {
  let params: unknown;
  if (paramsText !== undefined) {
    try {
      params = JSON.parse(paramsText);
    } catch {
      throw new KvmuxError(`params: not valid JSON: '${paramsText}'`);
    }
  }
  const socket = opts.socket ?? join(loadConfigFile(resolveConfigPath(opts.config)).runDir, 'control.sock');
  const client = await connectSocket(socket);
  try {
    const result = await client.call(method, params);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof RpcError) {
      process.stderr.write(`kvmux: ${method}: ${err.message} (${err.code})\n`);
      return 1;
    }
    throw err;
  } finally {
    client.close();
  }
}
