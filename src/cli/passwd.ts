import { KvmuxError } from '../util/errors.js';

export default async function passwd(..._args: unknown[]): Promise<number> {
  throw new KvmuxError('"passwd" is not built yet');
}
