import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { attachGuestChannel, type GuestChannel } from '../../src/control/guest-channel.js';
import { type PowerAction, powerMethods } from '../../src/control/power.js';
import { connectSocket, type RpcClient } from '../../src/control/rpc/client.js';
import type { ControlServer } from '../../src/control/rpc/server.js';
import { hostUpdateView } from '../../src/control/transfer/host-update.js';
import type { RpcError } from '../../src/util/errors.js';
import { fakeQemuChardev, PASSWORD, startServer, tempDir } from './helpers.js';

/** A real slot: squashfs made with mksquashfs and the meta.json host.update writes. */
function installSlot(boot: string, slot: 'a' | 'b', tmp: string): void {
  const src = join(tmp, `src-${slot}`);
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'payload'), randomBytes(50_000));
  mkdirSync(join(boot, `slot-${slot}`), { recursive: true });
  const img = join(boot, `slot-${slot}`, 'root.squashfs');
  execFileSync('mksquashfs', [src, img, '-noappend', '-quiet', '-no-progress']);
  const data = execFileSync('cat', [img]);
  const meta = {
    version: slot,
    sha256: createHash('sha256').update(data).digest('hex'),
    size: data.length,
    installedAt: 'x',
  };
  writeFileSync(join(boot, `slot-${slot}`, 'meta.json'), JSON.stringify(meta));
}

describe('host power methods', () => {
  let t: ReturnType<typeof tempDir>;
  let boot: string;
  let server: ControlServer;
  let c: RpcClient;
  let acted: PowerAction[];
  let answer: boolean;
  const asked: string[] = [];
  const channels: GuestChannel[] = [];
  const chardevs: { close(): Promise<void> }[] = [];

  beforeEach(async () => {
    t = tempDir();
    boot = join(t.dir, 'boot');
    mkdirSync(boot);
    writeFileSync(join(boot, 'current'), 'a\n');
    acted = [];
    asked.length = 0;
    answer = true;
    ({ server } = await startServer(t.dir, {
      policy: [
        { from: 'alpha', method: 'host.reboot', action: 'ask' },
        { from: 'alpha', method: 'host.shutdown', action: 'allow' },
      ],
      confirm: async (vm, method) => {
        asked.push(`${vm} ${method}`);
        return answer;
      },
    }));
    server.register(
      powerMethods({
        update: hostUpdateView({ bootDir: () => boot }),
        delayMs: 0,
        act: async (a) => {
          acted.push(a);
        },
      }),
    );
    c = await connectSocket(join(t.dir, 'run', 'control.sock'));
  });
  afterEach(async () => {
    c.close();
    for (const ch of channels.splice(0)) ch.close();
    await Promise.all(chardevs.splice(0).map((q) => q.close()));
    await server.close();
    t.cleanup();
  });

  const settle = () => new Promise((r) => setTimeout(r, 50));
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('expected a failure');
      },
      (err: RpcError) => err,
    );

  it('reboots and shuts down after replying, one action at a time', async () => {
    expect(await c.call('host.reboot', {})).toEqual({ action: 'reboot', inSeconds: 0 });
    await settle();
    expect(acted).toEqual(['reboot']);
    const busy = await failure(c.call('host.shutdown', {}));
    expect(busy.message).toMatch(/a reboot is already under way/);
    expect(acted).toEqual(['reboot']);
  });

  it('shuts down with a delay when asked', async () => {
    expect(await c.call('host.shutdown', { delaySeconds: 0 })).toEqual({ action: 'poweroff', inSeconds: 0 });
    await settle();
    expect(acted).toEqual(['poweroff']);
    expect((await failure(c.call('host.shutdown', { delaySeconds: -1 }))).code).toBe(-32602);
  });

  it('applies an update only when a valid other slot is staged', async () => {
    writeFileSync(join(boot, 'next'), 'a\n');
    expect((await failure(c.call('host.update.apply', {}))).message).toMatch(/nothing staged/);
    writeFileSync(join(boot, 'next'), 'b\n');
    expect((await failure(c.call('host.update.apply', {}))).message).toMatch(/slot b is not valid: no image/);
    expect(acted).toEqual([]);
    installSlot(boot, 'b', t.dir);
    expect(await c.call('host.update.apply', {})).toEqual({ action: 'reboot', inSeconds: 0, slot: 'b' });
    await settle();
    expect(acted).toEqual(['reboot']);
  });

  it('a guest gets only what the policy gives: ask confirms on the console, no rule denies', async () => {
    const path = join(t.dir, 'vm', 'alpha.sock');
    mkdirSync(join(t.dir, 'vm'), { recursive: true });
    const qemu = await fakeQemuChardev(path);
    chardevs.push(qemu);
    channels.push(attachGuestChannel(server, { vm: 'alpha', path }));
    const peer = await qemu.nextPeer();
    expect((await peer.call('auth.login', { password: PASSWORD })).result).toMatchObject({ ok: true });
    answer = false;
    expect((await peer.call('host.reboot', {})).error?.code).toBe(-32003);
    expect(asked).toEqual(['alpha host.reboot']);
    expect((await peer.call('host.update.apply', {})).error?.code).toBe(-32003);
    await settle();
    expect(acted).toEqual([]);
    answer = true;
    expect((await peer.call('host.reboot', {})).result).toMatchObject({ action: 'reboot' });
    await settle();
    expect(acted).toEqual(['reboot']);
  });
});
