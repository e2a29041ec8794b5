import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicLater, writeFileAtomicSync } from '../../src/util/atomic-file.js';
import { tempDir } from '../helpers/temp.js';

describe('the one atomic state-file writer', () => {
  it.each([
    ['sync', (p: string, d: string) => Promise.resolve(writeFileAtomicSync(p, d))],
    ['async', (p: string, d: string) => writeFileAtomic(p, d)],
  ] as const)('%s: replaces the file whole, mode 0600, no temp file left', async (_kind, write) => {
    const dir = tempDir('kvmux-atomic-');
    const path = join(dir, 'state');
    writeFileSync(path, 'old and much longer content\n', { mode: 0o644 });
    await write(path, 'new\n');
    expect(readFileSync(path, 'utf8')).toBe('new\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['state']);
  });

  it('sync: creates the folder it writes into', () => {
    const path = join(tempDir('kvmux-atomic-'), 'a', 'b', 'state');
    writeFileAtomicSync(path, 'x');
    expect(readFileSync(path, 'utf8')).toBe('x');
  });

  it('later: many background writes to one path land in call order (the last one wins)', async () => {
    const dir = tempDir('kvmux-atomic-');
    const path = join(dir, 'active');
    const errors: unknown[] = [];
    for (let i = 0; i < 20; i++) writeFileAtomicLater(path, `${i}\n`, (e) => errors.push(e));
    const last = () => (existsSync(path) ? readFileSync(path, 'utf8') : '');
    for (let i = 0; i < 200 && last() !== '19\n'; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50)); // nothing older lands after it
    expect(readFileSync(path, 'utf8')).toBe('19\n');
    expect(readdirSync(dir)).toEqual(['active']);
    expect(errors).toEqual([]);
  });

  it('later: a failure goes to onError, not to an unhandled rejection', async () => {
    const errors: unknown[] = [];
    writeFileAtomicLater('/proc/kvmux-no-such/x', 'x', (e) => errors.push(e));
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(errors).toHaveLength(1);
  });
});
