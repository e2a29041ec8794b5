import { KvmuxError } from '../util/errors.js';

export default async function monitor(..._args: unknown[]): Promise<number> {
  throw new KvmuxError('"monitor" is not built yet');
}
