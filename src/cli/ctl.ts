import { KvmuxError } from '../util/errors.js';

export default async function ctl(..._args: unknown[]): Promise<number> {
  throw new KvmuxError('"ctl" is not built yet');
}
