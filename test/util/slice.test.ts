import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { getPriority, release, setPriority } from 'node:os';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_SLICE_NS, setSlice, sliceOf } from '../../src/util/slice.js';
import { kernelHasSlices } from '../helpers/kernel.js';
import { tempDir } from '../helpers/temp.js';

/**
 * sched_setattr on a real process (a `sleep` child): the slice it asks for is what the kernel
 * reports back, 0 gives the default again, and its nice and policy stay. Needs Linux ≥ 6.12
 * (EEVDF custom slices); an older kernel must answer ENOTSUP, which is checked instead.
 */
const canSet = process.getuid?.() === 0;
const supported = kernelHasSlices();
if (!canSet) console.warn("SKIP scheduler slices: needs root (CAP_SYS_NICE) to set another process's");
else if (!supported)
  console.warn(
    `SKIP scheduler slices: kernel ${release()} has no custom slices (Linux 6.12 or later); ENOTSUP checked instead`,
  );

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

async function sleeper(): Promise<number> {
  const c = spawn('sleep', ['30']);
  children.push(c);
  await new Promise((r) => c.once('spawn', r));
  return c.pid!;
}

describe.skipIf(!canSet)('scheduler slices (sched_setattr) on a real process', () => {
  it.skipIf(!supported)(
    'asks for the shortest slice, then the default again; nice and policy stay',
    async () => {
      const pid = await sleeper();
      const fresh = sliceOf(pid);
      expect(typeof fresh).toBe('number');
      expect(fresh).toBeGreaterThan(MIN_SLICE_NS);
      setPriority(pid, 7);
      expect(setSlice(pid, MIN_SLICE_NS)).toBeUndefined();
      expect(sliceOf(pid)).toBe(MIN_SLICE_NS);
      expect(getPriority(pid)).toBe(7);
      expect(execFileSync('chrt', ['-p', String(pid)], { encoding: 'utf8' })).toMatch(/SCHED_OTHER/);
      expect(setSlice(pid, 0)).toBeUndefined();
      expect(sliceOf(pid)).toBe(fresh);
      expect(getPriority(pid)).toBe(7);
    },
  );

  it.skipIf(!supported)(
    "the short slice is the thread's own: what it starts meanwhile begins with the default",
    async () => {
      const sh = spawn('sh', ['-c', 'read go; sleep 30 & echo $!; wait'], {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      children.push(sh);
      await new Promise((r) => sh.once('spawn', r));
      const fresh = sliceOf(sh.pid!);
      expect(setSlice(sh.pid!, MIN_SLICE_NS)).toBeUndefined();
      sh.stdin!.write('go\n');
      const child = await new Promise<number>((r) =>
        sh.stdout!.once('data', (d) => r(Number(String(d).trim()))),
      );
      try {
        expect(sliceOf(sh.pid!)).toBe(MIN_SLICE_NS);
        expect(sliceOf(child)).toBe(fresh);
        // the flag that does it goes with the short slice
        const chrt = () => execFileSync('chrt', ['-p', String(sh.pid)], { encoding: 'utf8' });
        expect(chrt()).toMatch(/SCHED_OTHER\|SCHED_RESET_ON_FORK/);
        expect(setSlice(sh.pid!, 0)).toBeUndefined();
        expect(chrt()).not.toMatch(/RESET_ON_FORK/);
      } finally {
        process.kill(child, 'SIGKILL');
      }
    },
  );

  it.skipIf(supported)('a kernel without custom slices says ENOTSUP', async () => {
    expect(setSlice(await sleeper(), MIN_SLICE_NS)).toBe('ENOTSUP');
  });

  it('a real-time process is left alone (EPOLICY), a gone one is ESRCH, nonsense is EINVAL', async () => {
    const pid = await sleeper();
    execFileSync('chrt', ['-r', '-p', '1', String(pid)]);
    const before = sliceOf(pid);
    expect(setSlice(pid, MIN_SLICE_NS)).toBe('EPOLICY');
    expect(sliceOf(pid)).toBe(before);
    expect(execFileSync('chrt', ['-p', String(pid)], { encoding: 'utf8' })).toMatch(/SCHED_RR/);
    const gone = await sleeper();
    const dying = children.pop()!;
    // reaped, not a zombie (sched_getattr still answers for a zombie)
    const reaped = new Promise((r) => dying.once('exit', r));
    dying.kill('SIGKILL');
    await reaped;
    expect(setSlice(gone, MIN_SLICE_NS)).toBe('ESRCH');
    expect(setSlice(0, MIN_SLICE_NS)).toBe('EINVAL');
    expect(setSlice(pid, -1)).toBe('EINVAL');
  });

  it.skipIf(!supported)(
    'unprivileged (nobody), the default slice comes back and reset-on-fork stays: the kernel refuses clearing it without CAP_SYS_NICE',
    () => {
      const root = resolve(import.meta.dirname, '../..');
      const scratch = tempDir('kvmux-slice-nobody-');
      chmodSync(scratch, 0o777);
      const script = `
        import { spawn, execFileSync } from 'node:child_process';
        import { setSlice, sliceOf } from '${root}/src/util/slice.ts';
        const c = spawn('sleep', ['30']);
        await new Promise((r) => c.once('spawn', r));
        const chrt = () => execFileSync('chrt', ['-p', String(c.pid)], { encoding: 'utf8' }).includes('RESET_ON_FORK');
        const fresh = sliceOf(c.pid);
        const out = { shorten: setSlice(c.pid, ${MIN_SLICE_NS}) ?? 'ok', short: sliceOf(c.pid), flag: chrt() };
        Object.assign(out, { reset: setSlice(c.pid, 0) ?? 'ok', back: sliceOf(c.pid) === fresh, flagAfter: chrt() });
        c.kill('SIGKILL');
        process.stdout.write(JSON.stringify(out));`;
      const out = execFileSync(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          process.execPath,
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          script,
        ],
        // tsx keeps a cache under $TMPDIR/tsx-<uid>: one of this test's, removed with it
        { cwd: root, encoding: 'utf8', env: { ...process.env, HOME: scratch, TMPDIR: scratch } },
      );
      expect(JSON.parse(out)).toEqual({
        shorten: 'ok',
        short: MIN_SLICE_NS,
        flag: true,
        reset: 'ok',
        back: true,
        flagAfter: true,
      });
    },
  );
});
