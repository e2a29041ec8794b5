import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.js';
import { type FakeControl, startFakeControl } from './fake-control-server.js';
import { TmuxSession } from './tmux-session.js';

/**
 * First-boot setup in a real terminal (tmux) against the adapter-level fake control service:
 * no password yet, so the TUI asks for one twice, keeps the phrase, makes the first VM, and the
 * main screen then says what was done (the person should not have to guess whether it took).
 */
const root = resolve(import.meta.dirname, '../..');

describe('kvmux admin first-boot setup in tmux', () => {
  let control: FakeControl;
  let tmux: TmuxSession;
  let passwordSet = false;

  beforeAll(async () => {
    const dir = tempDir('kvmux-admin-setup-');
    const sock = join(dir, 'control.sock');
    control = await startFakeControl(sock, 'unused', [], {
      'auth.status': () => ({ passwordSet }),
      'auth.passwd': () => {
        passwordSet = true;
        return { ok: true, first: true };
      },
      'menu.phrase': () => ({ phrase: 'amber falcon' }),
      'config.get': () => ({ found: [{ name: 'disk1', disk: '/srv/images/disk1.qcow2' }] }),
      'vm.create': (p) => {
        control.vms.push({
          name: String(p['name']),
          backend: 'qemu',
          state: 'stopped',
          pid: null,
          memoryMiB: 512,
        });
        return { ok: true };
      },
    });
    const cli = `node --import tsx ${join(root, 'src/cli/main.ts')}`;
    tmux = await TmuxSession.start(
      `cd ${root} && KVMUX_CONFIG=/nonexistent ${cli} admin --config ${join(root, 'test/admin/admin-test.yaml')} --socket ${sock}; sleep 60`,
    );
  });

  afterAll(async () => {
    await tmux?.stop();
    await control?.close();
  });

  it('sets the password, keeps the phrase, creates the first VM and says so on the main screen', async () => {
    let s = await tmux.waitFor(/New host password/);
    expect(s).toContain('/srv/images/disk1.qcow2');
    tmux.type('Secret12');
    tmux.keys('Enter');
    await tmux.waitFor(/Repeat the password/);
    tmux.type('Secret12');
    tmux.keys('Enter');
    await tmux.waitFor(/Host phrase/);
    tmux.keys('Enter'); // keep it
    await tmux.waitFor(/Image for the first VM/);
    tmux.type('1');
    tmux.keys('Enter');
    await tmux.waitFor(/Name of the VM/);
    tmux.keys('Enter'); // the suggested name
    await tmux.waitFor(/Start disk1 now/);
    tmux.type('n');
    s = await tmux.waitFor(/Password set\. VM disk1 created\./);
    expect(s).toMatch(/disk1\s+qemu\s+stopped/);
    expect(control.calls.filter((c) => c.method === 'auth.passwd')).toEqual([
      { method: 'auth.passwd', params: { new: 'Secret12' } },
    ]);
    expect(control.calls.some((c) => c.method === 'auth.login')).toBe(false); // straight in
  });
});
