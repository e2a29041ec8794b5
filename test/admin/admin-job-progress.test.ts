import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceGroup } from '../../src/resources/cgroup.js';
import { buildInitramfs, counterInit, findKernel, linuxGuestQemu } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';
import { untilValue } from '../helpers/until.js';
import { type Kvmux, startKvmux } from '../service/kvmux-harness.js';
import { TmuxSession } from './tmux-session.js';

/**
 * Issue 14, end to end: the real admin TUI (`kvmux admin --remote` in tmux, on the control
 * socket of a real `kvmux run`) shows a running save's progress in the VMs pane and then its end.
 * The save is started with the pane's own key (`v`, confirmed), on a QEMU Linux guest under TCG
 * slowed by a 4 MiB/s migration cap and a small CPU quota, so it lasts several poll periods.
 * Then a migration to a socket nobody listens on: the pane shows `migrate FAILED`.
 */
const root = resolve(import.meta.dirname, '../..');
const VM = 'ptux';
/** The quota's cgroups, v2 or one per v1 controller (under this kvmux's own parent group); kvmux removes them when the VM stops. */
const cgroups = (stateDir: string) => {
  const top = process.env['KVMUX_CGROUP_ROOT'] ?? '/sys/fs/cgroup';
  const group = instanceGroup(stateDir);
  const ctrls = existsSync(top) ? readdirSync(top).map((c) => join(top, c, group, VM)) : [];
  return [join(top, group, VM), ...ctrls].filter((d) => existsSync(d));
};
const missing = ['tmux', 'qemu-system-x86_64', 'Xvfb'].filter((t) => {
  try {
    execFileSync('which', [t], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});
try {
  findKernel();
} catch (err) {
  missing.push(String((err as Error).message));
}
if (missing.length) process.stderr.write(`[admin-job-progress] SKIPPED: missing ${missing.join(', ')}\n`);

const dir = tempDir('kvmux-admin-job-');
let k: Kvmux | undefined;
let tmux: TmuxSession | undefined;

const serial = () => {
  try {
    return readFileSync(join(k!.dir, 'run', 'vm', VM, 'serial.log'), 'utf8');
  } catch {
    return '';
  }
};
/** The VM's row in the VMs pane, from its name on (the pane's border glyphs come before it). */
const tuxLine = (screen: string) => {
  const line = screen.split('\n').find((l) => /ptux\s+qemu\s/.test(l)) ?? '';
  return line.slice(line.indexOf(VM)).trimEnd().replace(/\s*x$/, '');
};

describe.skipIf(missing.length > 0)('admin screen: a running job’s progress, against a real kvmux', () => {
  beforeAll(async () => {
    const initrd = await buildInitramfs({
      init: counterInit(),
      outDir: join(dir, 'initrd'),
    });
    k = await startKvmux({
      firstDisplay: 270,
      readyTimeoutMs: 90_000,
      password: 'correct horse',
      vms: [
        {
          name: VM,
          backend: 'qemu',
          qemu: linuxGuestQemu(initrd, { migrationBandwidthMiB: 4 }),
        },
      ],
    });
    const sock = join(k.dir, 'run', 'control.sock');
    tmux = await TmuxSession.start(
      `cd ${root} && node --import tsx src/cli/main.ts admin --remote ${sock} --idle-lock 600; sleep 60`,
    );
  }, 150_000);

  afterAll(async () => {
    await tmux?.stop();
    // the quota's cgroup goes with the VM; kvmux's stop removes its folder
    await k?.stop();
    // an empty cgroup left behind would only be a folder; rmdir refuses one with processes in it
    for (const cg of k ? cgroups(join(k.dir, 'state')) : []) {
      process.stderr.write(`[admin-job-progress] ${cg} was left behind; removing it\n`);
      rmdirSync(cg);
    }
  });

  it('shows <save N%> while the save streams, then the VM saved with <save done>', async () => {
    await untilValue('the guest counts', async () => (/count 5/.test(serial()) ? true : undefined), 90_000);
    await k!.call('vm.setResources', { name: VM, cpuQuota: 0.1 });
    try {
      await saveOnScreen();
    } finally {
      await k!.call('vm.setResources', { name: VM });
    }
  }, 180_000);

  const saveOnScreen = async () => {
    await tmux!.waitFor(/Password:/);
    tmux!.type('correct horse');
    tmux!.keys('Enter');
    await tmux!.waitFor(/ptux\s+qemu\s+running/);
    tmux!.keys('Tab'); // into the VMs pane; ptux is the selected (only) row
    tmux!.keys('v');
    await tmux!.waitFor(/Save ptux to disk and stop it\?/);
    const started = Date.now();
    tmux!.keys('Enter');
    const percents: string[] = [];
    let last = '';
    await untilValue(
      'the pane shows the save done',
      async () => {
        last = tmux!.screen();
        const line = tuxLine(last);
        const m = /<save (\d+)%/.exec(line);
        if (m && percents.at(-1) !== line) percents.push(line);
        // the job can read done a poll before the VM reads saved
        return /\ssaved\s.*<save done>/.test(line) ? line : undefined;
      },
      120_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; screen was:\n${last}`);
    });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(
      `[admin-job-progress] save took ${secs} s; rows in progress:\n${percents.join('\n')}\nend:\n${tuxLine(last)}\n`,
    );
    expect(percents.length).toBeGreaterThan(0);
    expect(tuxLine(last)).toMatch(/ptux\s+qemu\s+saved\s+.*<save done>/);
  };

  it('shows <migrate FAILED: ...> for a migration to a socket nobody listens on', async () => {
    tmux!.keys('o'); // restore first: migrate needs a running VM
    await tmux!.waitFor(/ptux\s+qemu\s+running.*<restore done>/, 120_000);
    tmux!.keys('g');
    await tmux!.waitFor(/Migrate ptux to/);
    tmux!.type(`unix:${join(dir, 'nobody.sock')}`);
    tmux!.keys('Enter');
    await tmux!.waitFor(/Stream key/);
    tmux!.type('correct-horse-battery-staple');
    // typed like a password: one star a character, the key itself never on screen
    await tmux!.waitFor(/> \*{28}_/);
    expect(tmux!.screen()).not.toContain('correct-horse');
    tmux!.keys('Enter');
    const s = await tmux!.waitFor(/<migrate \(keyed\) FAILED/, 60_000);
    process.stderr.write(`[admin-job-progress] after the failed migration:\n${tuxLine(s)}\n`);
    expect(tuxLine(s)).toMatch(/ptux\s+qemu\s+running\s+.*<migrate \(keyed\) FAILED/);
    expect(k!.log()).not.toContain('correct-horse-battery-staple');
  }, 180_000);

  it('i starts a stopped VM waiting for its stream, with the key: the row shows the keyed receive', async () => {
    tmux!.keys('f'); // force stop: the VM must be stopped to receive
    await tmux!.waitFor(/FORCE stop ptux/);
    tmux!.keys('Enter');
    await tmux!.waitFor(/ptux\s+qemu\s+stopped/, 60_000);
    tmux!.keys('i');
    await tmux!.waitFor(/Receive ptux on/);
    tmux!.type(`unix:${join(dir, 'incoming.sock')}`);
    tmux!.keys('Enter');
    await tmux!.waitFor(/Stream key/);
    tmux!.type('correct-horse-battery-staple');
    tmux!.keys('Enter');
    const s = await tmux!.waitFor(/<receive \(keyed\) listening>/, 60_000);
    expect(tuxLine(s)).toMatch(/ptux\s+qemu\s+running\s+.*<receive \(keyed\) listening>/);
    const row = (await k!.call<Array<{ name: string; job: { keyed: boolean } | null }>>('vm.list')).find(
      (r) => r.name === VM,
    );
    expect(row?.job).toMatchObject({ kind: 'receive', status: 'active', keyed: true });
  }, 120_000);
});
