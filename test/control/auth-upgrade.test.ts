import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  defaultScrypt,
  fileAuthenticator,
  hashPassword,
  needsRehash,
  readPasswordFile,
  writePasswordFile,
} from '../../src/control/auth/auth.js';
import { tempDir } from '../helpers/temp.js';

describe('password hash strength', () => {
  it('makes new hashes with scrypt N=2^17', async () => {
    expect(defaultScrypt).toEqual({ N: 1 << 17, r: 8, p: 1 });
    expect((await hashPassword('pw')).N).toBe(1 << 17);
  });

  it('still verifies an N=2^14 hash and re-hashes it at the next successful login only', async () => {
    const dir = tempDir('kvmux-auth-');
    try {
      const path = join(dir, 'admin.passwd');
      await writePasswordFile(path, 'old secret', { N: 1 << 14, r: 8, p: 1 });
      const before = readFileSync(path, 'utf8');
      const auth = fileAuthenticator(path);
      expect(await auth.check('wrong')).toBe(false);
      expect(readFileSync(path, 'utf8')).toBe(before);
      expect(await auth.check('old secret')).toBe(true);
      const after = await readPasswordFile(path);
      expect(after).toMatchObject({ N: 1 << 17, r: 8, p: 1 });
      expect(needsRehash(after!)).toBe(false);
      expect(await auth.check('old secret')).toBe(true);
      expect(await auth.check('wrong')).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
