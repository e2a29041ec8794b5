import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Real scheduling of a real child process (never of the test runner itself). */
const root = join(import.meta.dirname, '../..');
const fixture = join(root, 'test/fixtures/input-priority.ts');
const SCHED_OTHER = 0;
const SCHED_RR = 2;
const isRoot = process.getuid?.() === 0;
const capSysNice =
  isRoot &&
  (BigInt(`0x${/CapEff:\s+(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`) >> 23n) & 1n;
// cgroup v1 with RT group scheduling: a new cpu cgroup gets no real-time budget (cpu.rt_runtime_us 0)
const cpuV1 = '/sys/fs/cgroup/cpu';
const rtGroups = existsSync(join(cpuV1, 'cpu.rt_runtime_us'));

function run(wanted: object, prefix: string[] = []) {
  const argv = [...prefix, process.execPath, '--import', 'tsx', fixture, JSON.stringify(wanted)];
  return JSON.parse(execFileSync(argv[0]!, argv.slice(1), { cwd: root, encoding: 'utf8' }));
}

describe('input priority (kvmux run)', () => {
  if (!capSysNice) console.warn('SKIP input priority: needs root with CAP_SYS_NICE to raise priority');

  it.skipIf(!capSysNice)('puts the main thread on SCHED_RR 2; children and later threads stay normal', () => {
    const r = run({});
    expect(r.result).toMatchObject({ policy: 'rr', rtPriority: 2, resetOnFork: true });
    expect(r.result.error).toBeUndefined();
    expect(r.self).toMatchObject({ policy: SCHED_RR, rtPriority: 2 });
    expect(r.child).toEqual({ policy: SCHED_OTHER, rtPriority: 0, nice: 0 });
    expect(r.thread).toEqual({ policy: SCHED_OTHER, rtPriority: 0, nice: 0 });
  });

  it.skipIf(!capSysNice)('with realtime off, nice -10 on the main thread only', () => {
    const r = run({ realtime: false });
    expect(r.result).toMatchObject({ policy: 'other', nice: -10, resetOnFork: true });
    expect(r.self).toEqual({ policy: SCHED_OTHER, rtPriority: 0, nice: -10 });
    expect(r.child).toEqual({ policy: SCHED_OTHER, rtPriority: 0, nice: 0 });
    expect(r.thread.nice).toBe(0);
  });

  if (capSysNice && !rtGroups)
    console.warn('SKIP input priority refused: no cgroup v1 cpu.rt_runtime_us here (no RT group scheduling)');
  it.skipIf(!capSysNice || !rtGroups)(
    'falls back to nice -10 when the cgroup has no real-time budget',
    () => {
      const cg = join(cpuV1, `kvmux-test-${process.pid}`);
      mkdirSync(cg);
      try {
        expect(readFileSync(join(cg, 'cpu.rt_runtime_us'), 'utf8').trim()).toBe('0');
        const r = run({}, ['sh', '-c', `echo $$ > ${cg}/cgroup.procs && exec "$@"`, 'sh']);
        expect(r.result).toMatchObject({ policy: 'other', nice: -10, resetOnFork: true });
        expect(r.result.realtimeRefused).toMatch(/SCHED_RR.*EPERM/);
        expect(r.result.error).toBeUndefined();
        expect(r.self).toEqual({ policy: SCHED_OTHER, rtPriority: 0, nice: -10 });
        expect(r.child).toEqual({ policy: SCHED_OTHER, rtPriority: 0, nice: 0 });
      } finally {
        rmdirSync(cg);
      }
    },
  );

  it.skipIf(!isRoot)('reports an error and raises nothing without CAP_SYS_NICE', () => {
    const r = run({}, ['setpriv', '--bounding-set', '-sys_nice', '--inh-caps', '-sys_nice']);
    expect(r.result.realtimeRefused).toMatch(/EPERM/);
    expect(r.result.error).toMatch(/setpriority/);
    expect(r.self).toEqual({ policy: SCHED_OTHER, rtPriority: 0, nice: 0 });
  });
});
