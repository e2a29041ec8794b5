import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { errText } from '../../util/errors.js';
import type { QmpClient } from '../qmp.js';

/**
 * A live migration's stream authenticated with a key both owners give (TLS with a pre-shared key,
 * QEMU's `tls-creds-psk`): a receiver with a key takes only a stream from a sender with the same
 * key; a stranger who reaches the port first fails the handshake, and the receiver keeps listening
 * for the real one. Without a key the stream is QEMU's plain one, which trusts whoever connects.
 */
export const migrationKeySchema = z
  .string()
  .min(16, 'must be at least 16 characters (use a random one)')
  .max(128)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** The QOM id of the credentials object kvmux adds to a QEMU for its stream. */
export const STREAM_CREDS_ID = 'kvmux-stream-key';
/** The PSK identity a sender presents; the receiver's key file names only it. */
const PSK_IDENTITY = 'kvmux';

/** The one line of QEMU's `keys.psk`: identity, then the key's bytes in hex. */
export function pskLine(key: string): string {
  return `${PSK_IDENTITY}:${Buffer.from(key, 'utf8').toString('hex')}\n`;
}

/** Where a VM's stream key lives while its job runs: a private folder in its run dir (tmpfs). */
export const keyDirOf = (vmDir: string) => join(vmDir, 'stream-key');

/** Write the key for QEMU (folder 0700, file 0600), replacing any left from an earlier job. */
export function writeStreamKey(dir: string, key: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'keys.psk'), pskLine(key), { mode: 0o600, flag: 'wx' });
}

export function removeStreamKey(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Make this QEMU's next stream use the key in `dir` (written first): its credentials object, then
 * the migration parameter. `fresh` replaces an object of an earlier attempt (a sender reads its key
 * when the object is made); an adopted job keeps the one it finds.
 */
export async function useStreamKey(
  qmp: QmpClient,
  dir: string,
  endpoint: 'server' | 'client',
  opts: { fresh: boolean },
): Promise<void> {
  if (opts.fresh) await qmp.execute('object-del', { id: STREAM_CREDS_ID }).catch(() => {});
  const creds: Record<string, unknown> = { 'qom-type': 'tls-creds-psk', id: STREAM_CREDS_ID, dir, endpoint };
  if (endpoint === 'client') creds['username'] = PSK_IDENTITY;
  await qmp.execute('object-add', creds).catch((err: unknown) => {
    if (opts.fresh || !/duplicate|already/i.test(errText(err))) throw err;
  });
  await qmp.execute('migrate-set-parameters', { 'tls-creds': STREAM_CREDS_ID });
}

/** A stream without a key: no credentials left from an earlier keyed attempt of this QEMU. */
export async function useNoStreamKey(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-set-parameters', { 'tls-creds': '' });
}
