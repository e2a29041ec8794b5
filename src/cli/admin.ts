import { KvmuxError } from '../util/errors.js';

export default async function admin(..._args: unknown[]): Promise<number> {
  throw new KvmuxError('"admin" is not built yet');
}
