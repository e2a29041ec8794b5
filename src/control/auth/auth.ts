import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { errnoName, KvmuxError } from '../../util/errors.js';

/**
 * The host admin password, kept only as an scrypt hash in `<stateDir>/admin.passwd` (mode 0600).
 * The file is one JSON object that records its own parameters, so they can be raised later.
 */
export const PASSWD_FILE = 'admin.passwd';

const hashSchema = z.strictObject({
  alg: z.literal('scrypt'),
  N: z.number().int().positive(),
  r: z.number().int().positive(),
  p: z.number().int().positive(),
  salt: z.string().min(1),
  hash: z.string().min(1),
});
export type PasswordHash = z.infer<typeof hashSchema>;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/**
 * 2^17 × 8 × 128 B = 128 MiB and a few hundred ms per guess: slow for a guesser, fine for one
 * login. Hashes made with smaller parameters still verify and are re-hashed at the next login.
 */
export const defaultScrypt: ScryptParams = { N: 1 << 17, r: 8, p: 1 };
const KEYLEN = 32;

export const MAX_PASSWORD_BYTES = 1024;

function derive(password: string, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  // Node's default maxmem (32 MiB) refuses N=2^17; scrypt needs 128·N·r bytes, twice that is room
  const maxmem = 256 * p.N * p.r + (1 << 20);
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEYLEN, { N: p.N, r: p.r, p: p.p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashPassword(
  password: string,
  params: ScryptParams = defaultScrypt,
): Promise<PasswordHash> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, params);
  return { alg: 'scrypt', ...params, salt: salt.toString('base64'), hash: key.toString('base64') };
}

export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const want = Buffer.from(stored.hash, 'base64');
  const got = await derive(password, Buffer.from(stored.salt, 'base64'), stored);
  return got.length === want.length && timingSafeEqual(got, want);
}

export function passwdPath(stateDir: string): string {
  return join(stateDir, PASSWD_FILE);
}

export async function writePasswordFile(
  path: string,
  password: string,
  params?: ScryptParams,
): Promise<void> {
  if (password.length === 0) throw new KvmuxError('password must not be empty');
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
    throw new KvmuxError(`password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const record = await hashPassword(password, params);
  await writeFileAtomic(path, `${JSON.stringify(record)}\n`, 0o600);
}

/** null when no password was ever set: guest logins are then impossible. */
export async function readPasswordFile(path: string): Promise<PasswordHash | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoName(err) === 'ENOENT') return null;
    throw new KvmuxError(`${path}: cannot read password file: ${errnoName(err)}`, { cause: err });
  }
  const parsed = hashSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new KvmuxError(`${path}: not a kvmux password file`);
  return parsed.data;
}

/** What the server needs: checks a password against the file, read on each call so `kvmux passwd` applies at once. */
export interface Authenticator {
  check(password: string): Promise<boolean>;
}

/** True when `stored` was made with weaker parameters than `target`. */
export function needsRehash(stored: ScryptParams, target: ScryptParams = defaultScrypt): boolean {
  return stored.N < target.N || stored.r < target.r || stored.p < target.p;
}

export function fileAuthenticator(path: string, target: ScryptParams = defaultScrypt): Authenticator {
  return {
    async check(password) {
      const stored = await readPasswordFile(path);
      if (!stored) return false;
      const ok = await verifyPassword(password, stored);
      // the one moment kvmux holds the plain password: upgrade an old hash (atomic rewrite)
      if (ok && needsRehash(stored, target)) await writePasswordFile(path, password, target);
      return ok;
    },
  };
}
