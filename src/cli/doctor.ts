import { KvmuxError } from '../util/errors.js';

export default async function doctor(..._args: unknown[]): Promise<number> {
  throw new KvmuxError('"doctor" is not built yet');
}
