import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.js';
import { type FakeControl, startFakeControl } from './fake-control-server.js';
import { TmuxSession } from './tmux-session.js';

/**
 * First-boot setup cancelled with Esc in a real terminal (tmux) against the fake control service:
 * with no password set, a lock screen could never open, so the setup comes back and says why.
 */
const root = resolve(import.meta.dirname, '../..');

describe('kvmux admin first-boot setup cancelled', () => {
  let control: FakeControl;
  let tmux: TmuxSession;
  let passwordSet = false;

  beforeAll(async () => {
    const dir = tempDir('kvmux-admin-cancel-');
    const sock = join(dir, 'control.sock');
    control = await startFakeControl(sock, 'unused', [], {
      'auth.status': () => ({ passwordSet }),
      'auth.passwd': () => {
        passwordSet = true;
        return { ok: true, first: true };
      },
      'menu.phrase': () => ({ phrase: 'amber falcon' }),
      'config.get': () => ({ found: [] }),
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

  it('Esc at the password goes back to setup, never to a lock screen; then the password can be set', async () => {
    await tmux.waitFor(/New host password/);
    tmux.keys('Escape');
    const s = await tmux.waitFor(/Setup cancelled: no password is set yet/);
    expect(s).toContain('New host password');
    expect(s).not.toContain('host administration');
    tmux.type('Secret12');
    tmux.keys('Enter');
    await tmux.waitFor(/Repeat the password/);
    tmux.type('Secret12');
    tmux.keys('Enter');
    await tmux.waitFor(/Host phrase/);
    tmux.keys('Enter');
    await tmux.waitFor(/Password set\./);
    expect(control.calls.filter((c) => c.method === 'auth.passwd')).toHaveLength(1);
  }, 60_000);
});
