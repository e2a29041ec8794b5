import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * A VM process is an unref'd child (it outlives kvmux), so the SIGCHLD that resolves its `exited`
 * does not keep the event loop alive. goneWithin (every backend's stop) sees the process gone in
 * /proc, and may do so before that SIGCHLD is read. It must then hold the loop until the exit is
 * observed. Otherwise a process with nothing else alive ends in the middle of Supervisor.stop,
 * with code 0 and no word. The cgroup v2 guest's driver did exactly that in CI (2 runs of ~10).
 * On this 2-CPU host, 55 of 200 runs of a kill-and-await script did it with a spinner on the same
 * CPU; with the hold, 0 of 200.
 *
 * Each case runs in a node process of its own, where nothing else keeps the loop alive: the exit
 * here is observed by an unref'd timer (as an adopted VM's poll is), deterministically after /proc
 * shows the pid gone.
 */
const root = resolve(import.meta.dirname, '../..');

function run(body: string): { status: number | null; out: unknown } {
  const script = `
    import { spawnSync } from 'node:child_process';
    import { goneWithin } from '${root}/src/session/backends/spawn.ts';
    // a pid that is gone: a reaped child, with a start time no process has
    const pid = spawnSync('true').pid;
    const exit = { code: 0, signal: null, clean: true };
    ${body}`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (r.stderr.trim() && r.status !== 0) process.stderr.write(r.stderr);
  return { status: r.status, out: r.stdout ? JSON.parse(r.stdout) : null };
}

describe('goneWithin waits until the exit is observed', () => {
  it('returns only once `exited` has resolved, and the process lives on to use it', () => {
    const r = run(`
      let seen = false;
      const exited = new Promise((res) => setTimeout(() => res(exit), 300).unref());
      void exited.then(() => (seen = true));
      const gone = await goneWithin(pid, 1, exited, 5000);
      const seenAtReturn = seen;
      await exited;
      process.stdout.write(JSON.stringify({ gone, seenAtReturn }));`);
    // without the hold: exit code 13 (an unsettled top-level await) and nothing printed
    expect(r).toEqual({ status: 0, out: { gone: true, seenAtReturn: true } });
  });

  it('an exit never observed costs about a second, not a hang', () => {
    const r = run(`
      const t = performance.now();
      const gone = await goneWithin(pid, 1, new Promise(() => {}), 5000);
      process.stdout.write(JSON.stringify({ gone, ms: performance.now() - t }));`);
    expect(r.status).toBe(0);
    const out = r.out as { gone: boolean; ms: number };
    expect(out.gone).toBe(true);
    expect(out.ms).toBeGreaterThanOrEqual(900);
    expect(out.ms).toBeLessThan(4000);
  });

  it('a process still there at the deadline is reported so, without the hold', () => {
    const sleeper = spawnSync('sh', ['-c', 'sleep 30 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const pid = Number(sleeper.stdout.trim());
    try {
      const r = run(`
        const t = performance.now();
        const gone = await goneWithin(${pid}, undefined, new Promise(() => {}), 300);
        process.stdout.write(JSON.stringify({ gone, ms: performance.now() - t }));`);
      const out = r.out as { gone: boolean; ms: number };
      expect(out.gone).toBe(false);
      expect(out.ms).toBeLessThan(900);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });
});
