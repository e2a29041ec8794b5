import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { fileAuthenticator, writePasswordFile } from '../../src/control/auth/auth.js';
import { type PowerAction, powerMethods } from '../../src/control/power.js';
import { defineMethod } from '../../src/control/rpc/method.js';
import { type ControlServer, createControlServer } from '../../src/control/rpc/server.js';
import { hostUpdateView } from '../../src/control/transfer/host-update.js';
import { imageUploadMethods } from '../../src/control/transfer/upload.js';
import { RpcCode, RpcError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/temp.js';
import { TmuxSession } from './tmux-session.js';

/**
 * `kvmux admin --remote` in tmux against the REAL control server (framing, zod params, scrypt
 * password file, lockout, policy), its socket attached as a guest channel the way a VM's
 * virtio port is. Only the method table behind it is an adapter-level fake: vm.list / vm.stop /
 * display.list backed by an in-test record of VM states (`fakeVmMethods`).
 */
const root = resolve(import.meta.dirname, '../..');

function fakeVmMethods(
  vms: Array<{ name: string; backend: string; state: string; pid: number | null; memoryMiB: number }>,
) {
  const find = (name: string) => {
    const vm = vms.find((v) => v.name === name);
    if (!vm) throw new RpcError(RpcCode.notFound, `vm "${name}" not found`);
    return vm;
  };
  return [
    defineMethod({
      name: 'vm.list',
      params: z.strictObject({}),
      summary: 'fake',
      handler: () => vms.map((v) => ({ ...v })),
    }),
    defineMethod({
      name: 'vm.stop',
      params: z.strictObject({ name: z.string(), force: z.boolean().optional() }),
      summary: 'fake',
      handler: (p) => {
        const vm = find(p.name);
        vm.state = 'stopped';
        vm.pid = null;
        return { ok: true };
      },
    }),
    defineMethod({
      name: 'display.list',
      params: z.strictObject({}),
      summary: 'fake',
      handler: () => vms.map((v, i) => ({ name: v.name, display: `:${150 + i}`, vt: null, active: i === 0 })),
    }),
  ];
}

describe('kvmux admin --remote against the real control server', () => {
  let dir: string;
  let control: ControlServer;
  let channel: Server;
  let tmux: TmuxSession;
  const powered: PowerAction[] = [];
  const vms = [
    { name: 'alpha', backend: 'qemu', state: 'running', pid: 100, memoryMiB: 512 },
    { name: 'beta', backend: 'qemu', state: 'running', pid: 101, memoryMiB: 256 },
  ];

  beforeAll(async () => {
    dir = tempDir('kvmux-admin-ctl-');
    const passwd = join(dir, 'state', 'admin.passwd');
    mkdirSync(join(dir, 'images'));
    await writePasswordFile(passwd, 'correct horse', { N: 1 << 10, r: 8, p: 1 });
    control = createControlServer({
      methods: [
        ...fakeVmMethods(vms),
        ...imageUploadMethods({ imageDirs: () => [join(dir, 'images')] }),
        ...powerMethods({
          update: hostUpdateView({ bootDir: () => join(dir, 'boot') }),
          delayMs: 0,
          act: async (a) => {
            powered.push(a);
          },
        }),
      ],
      policy: [{ from: 'ops', method: '*', action: 'allow', target: '*' }],
      authenticator: fileAuthenticator(passwd),
      lockout: { threshold: 3, lockMs: 60_000, maxLockMs: 60_000 },
    });
    const sock = join(dir, 'ops-channel.sock');
    channel = createServer((s) => control.attach(s, { kind: 'guest', vm: 'ops' }));
    await new Promise<void>((ok) => channel.listen(sock, ok));
    tmux = await TmuxSession.start(
      `cd ${root} && node --import tsx src/cli/main.ts admin --remote ${sock} --idle-lock 600; sleep 60`,
    );
  });

  afterAll(async () => {
    await tmux?.stop();
    await control?.close();
    await new Promise<void>((ok) => (channel ? channel.close(() => ok()) : ok()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a wrong password with the server message', async () => {
    await tmux.waitFor(/Password:/);
    tmux.type('horse battery');
    tmux.keys('Enter');
    const s = await tmux.waitFor(/login refused \(1 failed\): wrong password \(-32001\)/);
    expect(s).not.toMatch(/Virtual machines/);
  });

  it('accepts the right password, stops a VM and shows the new state', async () => {
    tmux.type('correct horse');
    tmux.keys('Enter');
    await tmux.waitFor(/beta\s+qemu\s+running\s+101/);
    tmux.keys('Tab', 'Down', 't');
    await tmux.waitFor(/Shut down beta gracefully/);
    tmux.keys('Enter');
    await tmux.waitFor(/beta\s+qemu\s+stopped/);
    expect(vms[1]!.state).toBe('stopped');
    expect(vms[0]!.state).toBe('running');
  });

  it('uploads an image from a path on the admin side; the host has the exact bytes', async () => {
    const src = join(dir, 'delta.img');
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(src, bytes);
    tmux.keys('Tab', '2'); // back to the menu, "Upload image"
    await tmux.waitFor(/Uploads a disk image/);
    tmux.keys('u');
    await tmux.waitFor(/Path of the image file on this side/);
    tmux.type(src);
    tmux.keys('Enter');
    await tmux.waitFor(/Image name[\s\S]*> delta\.img_/);
    tmux.keys('Enter');
    await tmux.waitFor(/upload delta\.img: committed, sha256 verified by the host/);
    expect(readFileSync(join(dir, 'images', 'delta.img')).equals(bytes)).toBe(true);
  });

  it('reboots and powers off the host only after a yes on the admin screen', async () => {
    tmux.keys('3'); // the host update pane (the menu has the focus after the upload)
    await tmux.waitFor(/A\/B slots/);
    tmux.keys('R');
    await tmux.waitFor(/Reboot the host now\? Every VM is shut down first\./);
    tmux.keys('Escape');
    tmux.keys('P');
    await tmux.waitFor(/Power the host off now\?/);
    tmux.keys('Escape');
    await new Promise((r) => setTimeout(r, 500));
    expect(powered).toEqual([]);
    tmux.keys('R');
    await tmux.waitFor(/Reboot the host now\?/);
    tmux.keys('Enter');
    await tmux.waitFor(/rebooting/);
    await vi.waitFor(() => expect(powered).toEqual(['reboot']));
    tmux.keys('2'); // back where the next test starts: "Upload image", the menu focused
  });

  it('shows the real lockout after repeated failures', async () => {
    tmux.keys('Up', 'Up', 'Up', 'Enter'); // menu wraps: Upload → VMs → Quit → "Lock screen"
    await tmux.waitFor(/Locked\./);
    for (const n of [1, 2, 3]) {
      tmux.type('nope');
      tmux.keys('Enter');
      await tmux.waitFor(new RegExp(`login refused \\(${n} failed\\)`));
    }
    await tmux.waitFor(/now locked out/);
    tmux.type('correct horse');
    tmux.keys('Enter');
    await tmux.waitFor(/login refused \(4 failed\): too many failed logins from ops: locked,/);
  });
});
