import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSocket, type RpcClient } from '../../src/control/rpc/client.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { hostUpdateMethods } from '../../src/control/transfer/host-update.js';
import type { RpcError } from '../../src/util/errors.js';
import { startServer, tempDir } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A real root squashfs with a version file, built with mksquashfs. */
function squashfs(dir: string, version: string): Buffer {
  const src = join(dir, `src-${version}`);
  mkdirSync(join(src, 'etc'), { recursive: true });
  writeFileSync(join(src, 'etc', 'kvmux-version'), `${version}\n`);
  writeFileSync(join(src, 'payload'), randomBytes(200_000));
  const out = join(dir, `${version}.sqfs`);
  execFileSync('mksquashfs', [src, out, '-noappend', '-quiet', '-no-progress']);
  return readFileSync(out);
}

describe('host update into A/B slots', () => {
  let t: ReturnType<typeof tempDir>;
  let boot: string;
  let server: ControlServer;
  let c: RpcClient;
  let v1: Buffer;
  let v2: Buffer;

  const stage = async (image: Buffer, version: string, declared = sha(image)) => {
    const { uploadId } = await c.call<{ uploadId: string }>('host.update.begin', {
      size: image.length,
      sha256: declared,
      version,
    });
    for (let off = 0; off < image.length; off += 64 << 10) {
      const data = image.subarray(off, off + (64 << 10)).toString('base64');
      await c.call('host.update.chunk', { uploadId, offset: off, data });
    }
    return c.call<{ slot: string; next: string }>('host.update.commit', { uploadId });
  };
  const status = () =>
    c.call<{
      current: string;
      next: string;
      slots: { slot: string; valid: boolean; version: string | null }[];
      rollbacks: string[];
    }>('host.update.status', {});
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('expected a failure');
      },
      (err: RpcError) => err,
    );
  const next = () => readFileSync(join(boot, 'next'), 'utf8');
  const leftovers = () =>
    ['slot-a', 'slot-b']
      .filter((s) => existsSync(join(boot, s)))
      .flatMap((s) => readdirSync(join(boot, s)).filter((f) => f.startsWith('.')));

  beforeAll(async () => {
    t = tempDir();
    boot = join(t.dir, 'boot');
    mkdirSync(boot);
    writeFileSync(join(boot, 'current'), 'a\n');
    ({ server } = await startServer(t.dir));
    server.register(hostUpdateMethods({ bootDir: () => boot }));
    c = await connectSocket(join(t.dir, 'run', 'control.sock'));
    v1 = squashfs(t.dir, 'v1');
    v2 = squashfs(t.dir, 'v2');
  });
  afterAll(async () => {
    c.close();
    await server.close();
    t.cleanup();
  });

  it('starts with no valid slot', async () => {
    const s = await status();
    expect(s).toMatchObject({ current: 'a', next: 'a', rollbacks: [] });
    expect(s.slots.map((x) => x.valid)).toEqual([false, false]);
  });

  it("shows the initrd's rollbacks, newest last", async () => {
    const lines = Array.from({ length: 12 }, (_, i) => `2026-12-02T10:0${i % 10}:00Z fallback ${i}`);
    writeFileSync(join(boot, 'rollback.log'), `${lines.join('\n')}\n`);
    expect((await status()).rollbacks).toEqual(lines.slice(-10));
    rmSync(join(boot, 'rollback.log'));
  });

  it('stages into the inactive slot and flips the boot pointer', async () => {
    writeFileSync(join(boot, 'tries-b'), '3\n'); // the old image in b never got ready: the initrd would skip b
    expect(await stage(v1, 'v1')).toMatchObject({ slot: 'b', next: 'b', version: 'v1', sha256: sha(v1) });
    expect(next()).toBe('b\n');
    expect(readFileSync(join(boot, 'slot-b', 'root.squashfs')).equals(v1)).toBe(true);
    expect(existsSync(join(boot, 'tries-b'))).toBe(false); // a new image starts with a clean boot counter
    const s = await status();
    expect(s.slots[1]).toMatchObject({
      slot: 'b',
      valid: true,
      version: 'v1',
      sha256: sha(v1),
      size: v1.length,
    });
    expect(leftovers()).toEqual([]);
  });

  it('after booting b, stages the next version into a; rollback flips back and forth', async () => {
    writeFileSync(join(boot, 'current'), 'b\n'); // what the initrd records after booting slot b
    expect(await stage(v2, 'v2')).toMatchObject({ slot: 'a', next: 'a' });
    expect(await c.call('host.update.rollback', {})).toEqual({ next: 'b', previous: 'a' });
    expect(next()).toBe('b\n');
    expect(await c.call('host.update.rollback', {})).toEqual({ next: 'a', previous: 'b' });
    const s = await status();
    expect(s).toMatchObject({ current: 'b', next: 'a' });
    expect(s.slots.map((x) => [x.slot, x.valid, x.version])).toEqual([
      ['a', true, 'v2'],
      ['b', true, 'v1'],
    ]);
  });

  it('refuses an image that is not squashfs, keeping slot and pointer as they were', async () => {
    const junk = randomBytes(100_000);
    const err = await failure(stage(junk, 'junk'));
    expect(err.code).toBe(-32602);
    expect(err.message).toMatch(/host image refused: not a squashfs image.*boot pointer unchanged/);
    expect(next()).toBe('a\n');
    expect(readFileSync(join(boot, 'slot-a', 'root.squashfs')).equals(v2)).toBe(true);
    expect((await status()).slots[0]).toMatchObject({ valid: true, version: 'v2' });
    expect(leftovers()).toEqual([]);
  });

  it('refuses a truncated squashfs and a wrong sha256', async () => {
    const cut = v1.subarray(0, 3000);
    expect((await failure(stage(cut, 'cut'))).message).toMatch(/truncated squashfs/);
    expect((await failure(stage(v1, 'v1', sha(v2)))).message).toMatch(/sha256 mismatch/);
    expect(next()).toBe('a\n');
    expect(leftovers()).toEqual([]);
  });

  it('refuses to roll back onto an invalid slot', async () => {
    writeFileSync(join(boot, 'slot-b', 'root.squashfs'), 'corrupted by a bad disk');
    const err = await failure(c.call('host.update.rollback', {}));
    expect(err.code).toBe(-32009);
    expect(err.message).toMatch(/cannot roll back to slot b/);
    expect(next()).toBe('a\n');
  });

  it('allows one staging at a time', async () => {
    await c.call('host.update.begin', { size: 10, sha256: sha(Buffer.alloc(10)) });
    const other = await connectSocket(join(t.dir, 'run', 'control.sock'));
    expect(
      (await failure(other.call('host.update.begin', { size: 10, sha256: sha(Buffer.alloc(10)) }))).code,
    ).toBe(-32009);
    other.close();
  });
});
