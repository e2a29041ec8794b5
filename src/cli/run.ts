import { KvmuxError } from '../util/errors.js';

export default async function run(..._args: unknown[]): Promise<number> {
  throw new KvmuxError('"run" is not built yet');
}
