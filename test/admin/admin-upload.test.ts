import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminRpc, openAdminRpc } from '../../src/admin/rpc.js';
import { transferFile } from '../../src/admin/upload.js';
import { type ControlServer, createControlServer } from '../../src/control/rpc/server.js';
import { imageUploadMethods } from '../../src/control/transfer/upload.js';
import { tempDir } from '../helpers/temp.js';

/** The admin screen's upload path against the real control server's image.upload methods. */
describe('admin upload over the control socket', () => {
  let dir: string;
  let server: ControlServer;
  let rpc: AdminRpc;

  beforeAll(async () => {
    dir = tempDir('kvmux-admin-up-');
    mkdirSync(join(dir, 'images'));
    server = createControlServer({ methods: imageUploadMethods({ imageDirs: () => [join(dir, 'images')] }) });
    await server.listen(join(dir, 'control.sock'));
    rpc = await openAdminRpc({ socket: join(dir, 'control.sock') });
  });

  afterAll(async () => {
    rpc?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hashes first, then sends in order, and the host has the exact bytes', async () => {
    const bytes = randomBytes(5 * 1024 * 1024 + 3);
    writeFileSync(join(dir, 'eps.img'), bytes);
    const seen: string[] = [];
    await transferFile(
      rpc,
      { prefix: 'image.upload', path: join(dir, 'eps.img'), begin: { name: 'eps.img' } },
      (phase, done, total) => seen.push(`${phase} ${done}/${total}`),
    );
    expect(readFileSync(join(dir, 'images', 'eps.img')).equals(bytes)).toBe(true);
    const firstSend = seen.findIndex((s) => s.startsWith('sending'));
    expect(seen.slice(0, firstSend).every((s) => s.startsWith('hashing'))).toBe(true);
    expect(seen.at(-1)).toBe(`sending ${bytes.length}/${bytes.length}`);
    const sent = seen.slice(firstSend).map((s) => Number(s.split(' ')[1]!.split('/')[0]));
    expect(sent).toEqual([...sent].sort((a, b) => a - b));
  });

  it('a refused upload (name taken) throws the server error and leaves nothing behind', async () => {
    const before = readdirSync(join(dir, 'images'));
    await expect(
      transferFile(rpc, { prefix: 'image.upload', path: join(dir, 'eps.img'), begin: { name: 'eps.img' } }),
    ).rejects.toThrow(/eps\.img/);
    expect(readdirSync(join(dir, 'images'))).toEqual(before);
    expect(existsSync(join(dir, 'images', 'eps.img'))).toBe(true);
  });
});
