import { describe, expect, it } from 'vitest';
import { SHOWN_CLIENT_SLICE_NS, ShownClient } from '../../src/service/shown-client.js';
import type { ProcessRef } from '../../src/service/shown-priority.js';
import { type Logger, silentLogger } from '../../src/util/log.js';
import { mulberry32 } from '../helpers/prng.js';

/**
 * The shown VM's process runs with the short slice, every other process kvmux knows with the
 * default. A fake kernel keeps each process's slice, so that is checked after every step.
 */
class FakeKernel {
  readonly slice = new Map<string, number>();
  readonly alive = new Set<string>();
  readonly calls: string[] = [];
  answer: string | undefined;
  private key = (r: ProcessRef) => `${r.pid}@${r.startTime}`;
  private byPid = (pid: number) => [...this.alive].find((k) => k.startsWith(`${pid}@`));
  spawn(r: ProcessRef, slice = 0) {
    this.alive.add(this.key(r));
    this.slice.set(this.key(r), slice);
  }
  die(r: ProcessRef) {
    this.alive.delete(this.key(r));
  }
  io = {
    setSlice: (pid: number, ns: number) => {
      this.calls.push(`${pid}:${ns}`);
      const k = this.byPid(pid);
      if (!k) return 'ESRCH';
      if (this.answer) return this.answer;
      this.slice.set(k, ns);
      return undefined;
    },
    isAlive: (r: ProcessRef) => this.alive.has(this.key(r)),
  };
  shortened(): string[] {
    return [...this.alive].filter((k) => this.slice.get(k) !== 0);
  }
}

function logs(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (a: unknown, b?: unknown) =>
    lines.push(`${level} ${typeof a === 'string' ? a : String(b)}`);
  const log = { ...silentLogger, info: at('info'), warn: at('warn') } as unknown as Logger;
  return { log, lines };
}

/** For the tests that call show/offScreen with processes directly. */
const NO_PARTS = { active: () => null, processOf: () => null };

const a = { pid: 100, startTime: 1 };
const b = { pid: 200, startTime: 1 };
const S = SHOWN_CLIENT_SLICE_NS;

describe('ShownClient: the VM on screen asks for short slices, no other process', () => {
  it('the shortest slice the kernel takes', () => {
    expect(S).toBe(100_000);
  });

  it('shortens the shown process and resets the one shown before', () => {
    const k = new FakeKernel();
    k.spawn(a);
    k.spawn(b);
    const c = new ShownClient(k.io, NO_PARTS, silentLogger);
    c.show(a);
    expect(k.shortened()).toEqual(['100@1']);
    expect(k.slice.get('100@1')).toBe(S);
    c.show(b);
    expect(k.shortened()).toEqual(['200@1']);
    expect(k.slice.get('100@1')).toBe(0);
    expect(c.current).toEqual(b);
    c.show(null);
    expect(k.shortened()).toEqual([]);
    expect(c.current).toBeNull();
  });

  it('showing the same process again asks the kernel nothing', () => {
    const k = new FakeKernel();
    k.spawn(a);
    const c = new ShownClient(k.io, NO_PARTS, silentLogger);
    c.show(a);
    c.show({ ...a });
    expect(k.calls).toEqual([`100:${S}`]);
  });

  it('a process that has gone is forgotten, never reset: its pid may be another process now', () => {
    const k = new FakeKernel();
    k.spawn(a);
    const c = new ShownClient(k.io, NO_PARTS, silentLogger);
    c.show(a);
    k.die(a);
    const reused = { pid: 100, startTime: 9 };
    k.spawn(reused, 0);
    c.show(b); // b not running (yet): nothing shortened, the reused pid untouched
    expect(k.calls).toEqual([`100:${S}`]);
    expect(k.slice.get('100@9')).toBe(0);
    expect(c.current).toBeNull();
  });

  it('a restarted VM (same pid number, new start time) is shortened anew', () => {
    const k = new FakeKernel();
    k.spawn(a);
    const c = new ShownClient(k.io, NO_PARTS, silentLogger);
    c.show(a);
    k.die(a);
    const again = { pid: 100, startTime: 5 };
    k.spawn(again);
    c.show(again);
    expect(k.slice.get('100@5')).toBe(S);
    expect(c.current).toEqual(again);
  });

  it('a kernel without custom slices is told once, then left alone', () => {
    const k = new FakeKernel();
    k.spawn(a);
    k.spawn(b);
    k.answer = 'ENOTSUP';
    const { log, lines } = logs();
    const c = new ShownClient(k.io, NO_PARTS, log);
    c.show(a);
    c.show(b);
    c.offScreen(a);
    expect(k.calls).toEqual([`100:${S}`]);
    expect(lines).toEqual([expect.stringMatching(/^info no custom scheduler slices here \(Linux 6\.12/)]);
    expect(c.current).toBeNull();
  });

  it('a refusal is warned once and tried again on the next switch', () => {
    const k = new FakeKernel();
    k.spawn(a);
    k.spawn(b);
    k.answer = 'EPERM';
    const { log, lines } = logs();
    const c = new ShownClient(k.io, NO_PARTS, log);
    c.show(a);
    c.show(b);
    expect(lines).toEqual([expect.stringMatching(/^warn VM on screen: short scheduler slice refused/)]);
    k.answer = undefined;
    c.show(a);
    expect(k.shortened()).toEqual(['100@1']);
  });

  it('a real-time VM process is neither warned about when reset nor counted as shortened', () => {
    const k = new FakeKernel();
    k.spawn(a);
    const { log, lines } = logs();
    const c = new ShownClient(k.io, NO_PARTS, log);
    k.answer = 'EPOLICY';
    c.offScreen(a);
    expect(lines).toEqual([]);
    c.show(a);
    expect(c.current).toBeNull();
  });

  it('offScreen resets a process left shortened (a killed kvmux), never the shown one', () => {
    const k = new FakeKernel();
    k.spawn(a, S);
    k.spawn(b, S);
    const c = new ShownClient(k.io, NO_PARTS, silentLogger);
    c.show(b);
    c.offScreen(b);
    expect(k.slice.get('200@1')).toBe(S);
    c.offScreen(a);
    expect(k.slice.get('100@1')).toBe(0);
    c.offScreen({ pid: 300, startTime: 1 }); // not running: nothing asked
    expect(k.calls).toEqual([`200:${S}`, '100:0']);
  });

  it('random switches, deaths and restarts: at every step only the shown live process is shortened', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = mulberry32(seed);
      const k = new FakeKernel();
      const c = new ShownClient(k.io, NO_PARTS, silentLogger);
      const procs: ProcessRef[] = [1, 2, 3].map((pid) => ({ pid, startTime: 1 }));
      for (const p of procs) k.spawn(p);
      let shown: number | null = null;
      for (let step = 0; step < 60; step++) {
        const i = Math.floor(rnd() * procs.length);
        const r = rnd();
        if (r < 0.5) {
          shown = i;
          c.show(procs[i]!);
        } else if (r < 0.65) {
          shown = null;
          c.show(null);
        } else if (r < 0.8) {
          k.die(procs[i]!);
        } else {
          // restarted: same pid, new start time; shown again if it is the one on screen
          k.die(procs[i]!);
          procs[i] = { pid: procs[i]!.pid, startTime: procs[i]!.startTime + 1 };
          k.spawn(procs[i]!);
          if (shown === i) c.show(procs[i]!);
          else c.offScreen(procs[i]!);
        }
        const want =
          shown !== null && k.io.isAlive(procs[shown]!)
            ? [`${procs[shown]!.pid}@${procs[shown]!.startTime}`]
            : [];
        expect(k.shortened(), `seed ${seed} step ${step}`).toEqual(want);
      }
    }
  });
});

/** Displays and the VMs on them, as the switcher and the supervisors would answer. */
class FakeParts {
  shown: string | null = null;
  readonly vms = new Map<string, ProcessRef & { backend: string }>();
  readonly parts = {
    active: () => this.shown,
    processOf: (name: string) => this.vms.get(name) ?? null,
  };
}

describe('ShownClient follows the monitor and the VMs by name', () => {
  function setup() {
    const k = new FakeKernel();
    const f = new FakeParts();
    const { log, lines } = logs();
    const c = new ShownClient(k.io, f.parts, log);
    const run = (name: string, ref: ProcessRef, backend = 'qemu') => {
      k.spawn(ref);
      f.vms.set(name, { ...ref, backend });
    };
    return { k, f, c, run, lines };
  }

  it('a switch shortens the shown VM; a VM started on screen after the switch is shortened when it runs', () => {
    const { k, f, c, run } = setup();
    f.shown = 'one';
    c.switched(); // nothing runs there yet
    expect(k.calls).toEqual([]);
    run('one', a);
    c.vmState('one', 'running');
    expect(k.shortened()).toEqual(['100@1']);
    run('two', b, 'command');
    f.shown = 'two';
    c.switched();
    expect(k.shortened()).toEqual(['200@1']);
  });

  it("the admin screen's process counts; a subhost's does not (its display's client runs inside it)", () => {
    const { k, f, c, run } = setup();
    run('admin', a, 'command');
    run('box', b, 'subhost');
    f.shown = 'admin';
    c.switched();
    expect(k.shortened()).toEqual(['100@1']);
    f.shown = 'box';
    c.switched();
    expect(k.shortened()).toEqual([]);
    expect(k.calls).toEqual([`100:${S}`, '100:0']);
  });

  it('the shown VM restarted: its new process is shortened', () => {
    const { k, f, c, run } = setup();
    run('one', a);
    f.shown = 'one';
    c.switched();
    k.die(a);
    c.vmState('one', 'starting');
    const again = { pid: 101, startTime: 7 };
    run('one', again);
    c.vmState('one', 'running');
    expect(k.shortened()).toEqual(['101@7']);
  });

  it('a VM running off screen gets the default once per process, not at each of its status changes', () => {
    const { k, f, c, run } = setup();
    run('one', a);
    f.shown = 'one';
    c.switched();
    run('two', b);
    k.slice.set('200@1', S); // left shortened by a killed kvmux
    for (let i = 0; i < 5; i++) c.vmState('two', 'running'); // balloon, job, resources...
    expect(k.calls).toEqual([`100:${S}`, '200:0']);
    expect(k.shortened()).toEqual(['100@1']);
    // stopped and started again: the new process is looked at once more
    k.die(b);
    c.vmState('two', 'stopped');
    const again = { pid: 201, startTime: 3 };
    run('two', again);
    k.slice.set('201@3', S);
    c.vmState('two', 'running');
    c.vmState('two', 'running');
    expect(k.calls).toEqual([`100:${S}`, '200:0', '201:0']);
    expect(k.shortened()).toEqual(['100@1']);
  });

  it('close resets the shown VM and nothing shortens it again (a late switch or start while kvmux stops)', () => {
    const { k, f, c, run } = setup();
    run('one', a);
    f.shown = 'one';
    c.switched();
    c.close();
    expect(k.shortened()).toEqual([]);
    c.switched();
    c.vmState('one', 'running');
    run('two', b);
    f.shown = 'two';
    c.switched();
    expect(k.shortened()).toEqual([]);
    expect(k.calls).toEqual([`100:${S}`, '100:0']);
  });

  it('no syscall numbers for this CPU (ENOSYS) is said once, like a kernel without custom slices', () => {
    const { k, f, c, run, lines } = setup();
    run('one', a);
    run('two', b);
    k.answer = 'ENOSYS';
    f.shown = 'one';
    c.switched();
    f.shown = 'two';
    c.switched();
    c.vmState('one', 'running');
    expect(k.calls).toEqual([`100:${S}`]);
    expect(lines).toEqual([expect.stringMatching(/^info no custom scheduler slices here/)]);
  });

  it('a refused reset is warned once, not at every switch away', () => {
    const { k, f, c, run, lines } = setup();
    run('one', a);
    run('two', b);
    const io = k.io.setSlice;
    k.io.setSlice = (pid, ns) => (ns === 0 ? 'EPERM' : io(pid, ns));
    for (const name of ['one', 'two', 'one', 'two']) {
      f.shown = name;
      c.switched();
    }
    expect(lines).toEqual([
      expect.stringMatching(/^warn VM off screen: resetting its scheduler slice failed/),
    ]);
  });
});
