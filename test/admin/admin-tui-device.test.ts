import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fileAuthenticator, writePasswordFile } from '../../src/control/auth/auth.js';
import { defineMethod } from '../../src/control/rpc/method.js';
import { type ControlServer, createControlServer } from '../../src/control/rpc/server.js';
import { tempDir } from '../helpers/temp.js';
import { TmuxSession } from './tmux-session.js';

/**
 * `kvmux admin --remote DEVICE` where DEVICE is a character device (a pty made by socat, standing
 * in for a guest's serial port / virtio port), bridged to the real control server's guest channel.
 * Same TUI, same code path; only the transport differs. vm.list / net.list are adapter-level fake rows.
 */
const root = resolve(import.meta.dirname, '../..');

describe('kvmux admin --remote over a character device', () => {
  let dir: string;
  let control: ControlServer;
  let channel: Server;
  let socat: ChildProcess;
  let tmux: TmuxSession;

  beforeAll(async () => {
    dir = tempDir('kvmux-admin-dev-');
    const passwd = join(dir, 'admin.passwd');
    await writePasswordFile(passwd, 'sesame', { N: 1 << 10, r: 8, p: 1 });
    control = createControlServer({
      methods: [
        defineMethod({
          name: 'vm.list',
          params: z.strictObject({}),
          summary: 'fake',
          handler: () => [{ name: 'gamma', backend: 'qemu', state: 'running', pid: 7, memoryMiB: 128 }],
        }),
        defineMethod({ name: 'net.list', params: z.strictObject({}), summary: 'fake', handler: () => [] }),
      ],
      policy: [{ from: 'guest1', method: 'vm.list', action: 'allow' }],
      authenticator: fileAuthenticator(passwd),
    });
    const sock = join(dir, 'guest1.sock');
    channel = createServer((s) => control.attach(s, { kind: 'guest', vm: 'guest1' }));
    await new Promise<void>((ok) => channel.listen(sock, ok));
    const dev = join(dir, 'vport0p1');
    socat = spawn('socat', [`PTY,link=${dev},raw,echo=0`, `UNIX-CONNECT:${sock}`], { stdio: 'ignore' });
    const end = Date.now() + 10_000;
    while (!existsSync(dev) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    tmux = await TmuxSession.start(
      `cd ${root} && node --import tsx src/cli/main.ts admin --remote ${dev}; sleep 60`,
    );
  });

  afterAll(async () => {
    await tmux?.stop();
    if (socat && socat.exitCode === null) {
      const gone = new Promise((r) => socat.once('exit', r));
      socat.kill('SIGTERM');
      await gone;
    }
    await control?.close();
    await new Promise<void>((ok) => (channel ? channel.close(() => ok()) : ok()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs in through the device and lists the VMs the policy allows', async () => {
    const s = await tmux.waitFor(/Password:/);
    expect(s).toContain('vport0p1');
    tmux.type('wrong');
    tmux.keys('Enter');
    await tmux.waitFor(/login refused \(1 failed\): wrong password/);
    tmux.type('sesame');
    tmux.keys('Enter');
    await tmux.waitFor(/gamma\s+qemu\s+running\s+7\s+128 MiB/);
  });

  it('shows a policy denial from the host instead of failing', async () => {
    tmux.keys('4'); // Networks: net.list is not allowed for guest1
    await tmux.waitFor(/net\.list failed: .*\(-32003\)/);
  });
});
