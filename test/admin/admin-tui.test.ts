import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.js';
import { type FakeControl, startFakeControl } from './fake-control-server.js';
import { TmuxSession } from './tmux-session.js';

/**
 * The admin TUI in a real terminal (tmux 120x40), talking JSON-RPC over a real unix socket to
 * an adapter-level fake control service (in-test VM records). Waits poll the pane; no timing
 * thresholds are asserted.
 */
const root = resolve(import.meta.dirname, '../..');
const IDLE_S = 4;

describe('kvmux admin in tmux', () => {
  let dir: string;
  let control: FakeControl;
  let tmux: TmuxSession;

  beforeAll(async () => {
    dir = tempDir('kvmux-admin-');
    const sock = join(dir, 'control.sock');
    control = await startFakeControl(sock, 'hunter2', [
      { name: 'alpha', backend: 'qemu', state: 'running', pid: 100, memoryMiB: 512 },
      { name: 'beta', backend: 'qemu', state: 'running', pid: 101, memoryMiB: 256 },
    ]);
    const cli = `node --import tsx ${join(root, 'src/cli/main.ts')}`;
    tmux = await TmuxSession.start(
      `cd ${root} && KVMUX_CONFIG=/nonexistent ${cli} admin --config ${join(root, 'test/admin/admin-test.yaml')} --socket ${sock} --idle-lock ${IDLE_S}; sleep 60`,
    );
  });

  afterAll(async () => {
    await tmux?.stop();
    await control?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks for the host password before anything else', async () => {
    const s = await tmux.waitFor(/Password:/);
    expect(s).toContain('kvmux - host administration');
    expect(s).not.toMatch(/Virtual machines/);
    // only "is a password set?" (first-boot setup) is asked before the login
    expect(control.calls.map((c) => c.method)).toEqual(['auth.status']);
  });

  it('refuses a wrong password and shows the server message, without echoing it', async () => {
    tmux.type('letmein');
    await tmux.waitFor(/Password: \*{7}_/);
    tmux.keys('Enter');
    const s = await tmux.waitFor(/login refused \(1 failed\): wrong password/);
    expect(s).not.toContain('letmein');
    expect(s).not.toMatch(/Virtual machines/);
    expect(control.calls.at(-1)).toEqual({ method: 'auth.login', params: { password: 'letmein' } });
  });

  it('accepts the right password and lists the VMs with live state', async () => {
    tmux.type('hunter2');
    tmux.keys('Enter');
    const s = await tmux.waitFor(/beta\s+qemu\s+running\s+101\s+256 MiB/);
    expect(s).toMatch(/alpha\s+qemu\s+running\s+100\s+512 MiB/);
    expect(s).toMatch(/1 Virtual machines/);
    expect(s).toMatch(/Networks/);
    // every key of the VMs pane is on screen at 120 columns: the hint line takes more rows
    // (below the panes' bottom border: the message line, then the hints)
    const hints = s.slice(s.lastIndexOf('qj\n'));
    for (const key of ['m memory', 'g migrate', 'i receive', 'w switch', 'Ctrl-C quit'])
      expect(hints).toContain(key);
  });

  it('wraps the key hints again when the terminal changes size', async () => {
    // the host update pane: long hints, and no polling that would repaint anyway
    tmux.keys('3');
    // loaded (the load's own repaint would re-wrap the hints too)
    await tmux.waitFor(/host updates are not provided by this service/);
    const hintsOf = (screen: string) => screen.slice(screen.lastIndexOf('qj\n'));
    try {
      tmux.tmux('resize-window', '-t', 'main', '-x', '80', '-y', '40');
      // wrapped again at 80 columns, every key whole (well within the 4 s idle lock)
      const s = await tmux.waitFor(/a apply \(reboot into it\)[\s\S]*Ctrl-C quit\s*$/, 2500);
      for (const key of ['u upload new host image', 'b roll back', 'R reboot', 'P power off'])
        expect(hintsOf(s)).toContain(key);
      for (const line of s.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    } finally {
      tmux.tmux('resize-window', '-t', 'main', '-x', '120', '-y', '40');
    }
    tmux.keys('1'); // back to the VMs pane, as the next tests expect
    await tmux.waitFor(/m memory/);
  });

  it('stops a VM after confirmation and shows its new state', async () => {
    tmux.keys('Tab', 'Down', 't');
    await tmux.waitFor(/Shut down beta gracefully/);
    expect(control.vms[1]!.state).toBe('running'); // nothing happens before the confirmation
    tmux.keys('Enter');
    const s = await tmux.waitFor(/beta\s+qemu\s+stopped/);
    expect(s).toMatch(/alpha\s+qemu\s+running/);
    expect(s).toContain('beta: stop: done');
    expect(control.calls).toContainEqual({ method: 'vm.stop', params: { name: 'beta' } });
    expect(control.vms[1]!.state).toBe('stopped');
  });

  it('says whether a memory change applied live or on the next start', async () => {
    tmux.keys('m');
    await tmux.waitFor(/Memory of beta/);
    tmux.keys('C-u');
    tmux.type('1024');
    tmux.keys('Enter');
    await tmux.waitFor(/beta: memory set to 1024 MiB, applies at next start/);
    expect(control.vms[1]!.memoryMiB).toBe(1024);
  });

  it('sets limits from the VMs pane and shows them on the row', async () => {
    tmux.keys('l');
    await tmux.waitFor(/Limits of beta/);
    tmux.type('cpu=0.3 mem=64');
    tmux.keys('Enter');
    const s = await tmux.waitFor(/beta: limits set \(from the next start\)/);
    expect(control.calls).toContainEqual({
      method: 'vm.setResources',
      params: { name: 'beta', cpuQuota: 0.3, memoryMaxMiB: 64 },
    });
    expect(await tmux.waitFor(/beta\s+qemu\s+stopped.*\[cpu 0\.3 mem 64M\]/)).toBeTruthy();
    expect(s).toBeTruthy();
  });

  it('hibernates a running VM: the row reads frozen', async () => {
    tmux.keys('Up', 'h');
    await tmux.waitFor(/alpha\s+qemu\s+frozen/);
    expect(control.calls).toContainEqual({ method: 'vm.hibernate', params: { name: 'alpha' } });
  });

  it('tolerates methods the service does not provide', async () => {
    tmux.keys('Tab', '5');
    await tmux.waitFor(/audit\.tail is not provided by this service/);
  });

  it('locks after the idle time and needs the password again', async () => {
    const s = await tmux.waitFor(/Locked\. Enter the host password/, IDLE_S * 1000 + 10_000);
    expect(s).not.toMatch(/Virtual machines/);
    tmux.type('hunter2');
    tmux.keys('Enter');
    await tmux.waitFor(/beta\s+qemu\s+stopped/);
  });

  it('shows the server lockout after repeated failures', async () => {
    tmux.keys('Up', 'Up', 'Enter'); // "Lock screen"
    await tmux.waitFor(/Locked\./);
    for (const n of [1, 2, 3]) {
      tmux.type('nope');
      tmux.keys('Enter');
      await tmux.waitFor(new RegExp(`login refused \\(${n} failed\\)`));
    }
    await tmux.waitFor(/wrong password; now locked out/);
    tmux.type('hunter2');
    tmux.keys('Enter');
    const s = await tmux.waitFor(/locked, retry in/);
    expect(s).not.toMatch(/Virtual machines/);
  });
});
