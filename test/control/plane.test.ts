import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/config.js';
import { passwdPath, writePasswordFile } from '../../src/control/auth/auth.js';
import { type ControlPlane, startControlPlane } from '../../src/control/plane.js';
import { connectSocket } from '../../src/control/rpc/client.js';
import { controlSocketOf } from '../../src/session/vm-paths.js';
import { fakeQemuChardev, PASSWORD, tempDir, testVmList } from './helpers.js';

const configText = (dir: string, policy: string) => `
runDir: ${dir}/run
stateDir: ${dir}/state
imageDirs: [${dir}/images]
vms:
  - { name: alpha, backend: command, command: [xterm], guestChannel: true }
  - { name: beta, backend: command, command: [xterm] }
policy:
${policy}
`;

describe('control plane from a config', () => {
  let t: ReturnType<typeof tempDir>;
  let plane: ControlPlane;
  const added: string[] = [];
  const closers: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    t = tempDir();
    added.length = 0;
    mkdirSync(join(t.dir, 'images'));
    mkdirSync(dirname(controlSocketOf(join(t.dir, 'run'), 'alpha')), { recursive: true });
    await writePasswordFile(passwdPath(join(t.dir, 'state')), PASSWORD, { N: 1024, r: 8, p: 1 });
    const cfg = parseConfigText(
      configText(
        t.dir,
        '  - { from: alpha, method: "image.upload.*", action: allow }\n  - { from: "*", method: vm.list, action: allow }',
      ),
    );
    plane = await startControlPlane(cfg, {
      methods: [testVmList],
      onImageAdded: (p) => void added.push(p),
      confirm: async () => true,
    });
  });
  afterEach(async () => {
    await plane.close();
    for (const c of closers.splice(0)) await c();
    t.cleanup();
  });

  async function alphaGuest() {
    const qemu = await fakeQemuChardev(controlSocketOf(join(t.dir, 'run'), 'alpha'));
    closers.push(() => qemu.close());
    return qemu.nextPeer();
  }

  it('serves the local socket with mode 0600 and lists every method', async () => {
    expect(statSync(plane.socketPath).mode & 0o777).toBe(0o600);
    const c = await connectSocket(plane.socketPath);
    expect(await c.call('service.methods', {})).toEqual([
      'audit.tail',
      'auth.login',
      'auth.logout',
      'host.update.abort',
      'host.update.begin',
      'host.update.chunk',
      'host.update.commit',
      'host.update.rollback',
      'host.update.status',
      'image.delete',
      'image.download.begin',
      'image.download.chunk',
      'image.download.end',
      'image.import',
      'image.list',
      'image.upload.abort',
      'image.upload.begin',
      'image.upload.chunk',
      'image.upload.commit',
      'service.methods',
      'service.ping',
      'vm.list',
    ]);
    c.close();
  });

  it('lets an allowed guest upload an image, announces it, and audits it', async () => {
    const guest = await alphaGuest();
    expect((await guest.call('auth.login', { password: PASSWORD })).result).toEqual({
      ok: true,
      as: 'alpha',
    });
    const data = Buffer.from('a tiny disk image');
    const sha256 = createHash('sha256').update(data).digest('hex');
    const begin = await guest.call('image.upload.begin', {
      name: 'from-alpha.raw',
      size: data.length,
      sha256,
    });
    const uploadId = begin.result.uploadId;
    await guest.call('image.upload.chunk', { uploadId, offset: 0, data: data.toString('base64') });
    const done = await guest.call('image.upload.commit', { uploadId });
    expect(done.result.path).toBe(join(t.dir, 'images', 'from-alpha.raw'));
    expect(readFileSync(done.result.path).equals(data)).toBe(true);
    expect(added).toEqual([done.result.path]);
    // the guest may not read the audit log; the local admin may
    expect((await guest.call('audit.tail', { lines: 5 })).error?.code).toBe(-32003);
    const c = await connectSocket(plane.socketPath);
    const tail = await c.call<{ from: string; method: string; params: Record<string, unknown> }[]>(
      'audit.tail',
      {
        lines: 3,
      },
    );
    expect(tail.map((e) => `${e.from} ${e.method}`)).toEqual([
      'alpha image.upload.chunk',
      'alpha image.upload.commit',
      'alpha audit.tail',
    ]);
    expect(tail[0]!.params['data']).toBe('[redacted 24 chars]');
    c.close();
  });

  it('applies a reloaded policy to the next call', async () => {
    const guest = await alphaGuest();
    await guest.call('auth.login', { password: PASSWORD });
    expect((await guest.call('vm.list', {})).result).toHaveLength(2);
    plane.setConfig(parseConfigText(configText(t.dir, '  - { from: alpha, method: vm.list, action: deny }')));
    expect((await guest.call('vm.list', {})).error?.code).toBe(-32003);
  });

  it('ends the session when the VM is reset, and stops on detach', async () => {
    const qemu = await fakeQemuChardev(controlSocketOf(join(t.dir, 'run'), 'alpha'));
    closers.push(() => qemu.close());
    const first = await qemu.nextPeer();
    await first.call('auth.login', { password: PASSWORD });
    plane.resetVm('alpha');
    const second = await qemu.nextPeer();
    expect((await second.call('vm.list', {})).error?.code).toBe(-32001);
    plane.detachVm('alpha');
    for (let i = 0; i < 50 && !second.closed; i++) await new Promise((r) => setTimeout(r, 20));
    expect(second.closed).toBe(true);
  });
});
