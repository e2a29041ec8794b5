import { describe, expect, it } from 'vitest';
import { INPUT_BUSY, INPUT_QUIET, type ProcessRef, ShownPriority } from '../../src/service/shown-priority.js';
import { silentLogger } from '../../src/util/log.js';
import { mulberry32 } from '../helpers/prng.js';

/**
 * The X server on screen is the one raised; every other server kvmux knows is normal. A fake
 * scheduler keeps each process's priority, so the invariant is checked after every step.
 */
class FakeProcs {
  readonly prio = new Map<string, number>();
  /** On the input thread's CPU only (what setScheduling does to a raised server, when pinned). */
  readonly joined = new Set<string>();
  readonly alive = new Set<string>();
  readonly calls: string[] = [];
  refuse: string | undefined;
  private key = (r: ProcessRef) => `${r.pid}@${r.startTime}`;
  private byPid = (pid: number) => [...this.alive].find((k) => k.startsWith(`${pid}@`));
  spawn(r: ProcessRef) {
    this.alive.add(this.key(r));
    this.prio.set(this.key(r), 0);
  }
  die(r: ProcessRef) {
    this.alive.delete(this.key(r));
  }
  io = {
    setScheduling: (pid: number, rt: number) => {
      this.calls.push(`${pid}:${rt}`);
      const k = this.byPid(pid);
      if (!k) return 'ESRCH';
      if (this.refuse && rt > 0) return this.refuse;
      this.prio.set(k, rt);
      if (rt > 0) this.joined.add(k);
      else this.joined.delete(k);
      return undefined;
    },
    isAlive: (r: ProcessRef) => this.alive.has(this.key(r)),
    joinInputCpu: (pid: number, join: boolean) => {
      this.calls.push(`${pid}:${join ? 'join' : 'spread'}`);
      const k = this.byPid(pid);
      if (!k) return 'ESRCH';
      if (join) this.joined.add(k);
      else this.joined.delete(k);
      return undefined;
    },
  };
  pinnedTo(): string[] {
    return [...this.alive].filter((k) => this.joined.has(k));
  }
  raised(): string[] {
    return [...this.alive].filter((k) => (this.prio.get(k) ?? 0) > 0);
  }
}

const a = { pid: 100, startTime: 1 };
const b = { pid: 200, startTime: 1 };

describe('ShownPriority: the X server on screen is raised, no other', () => {
  it('raises the shown server and lowers the one shown before', () => {
    const p = new FakeProcs();
    p.spawn(a);
    p.spawn(b);
    const s = new ShownPriority(p.io, 1, silentLogger);
    s.show(a);
    expect(p.raised()).toEqual(['100@1']);
    s.show(b);
    expect(p.raised()).toEqual(['200@1']);
    expect(p.calls).toEqual(['100:1', '100:0', '200:1']);
    s.show(b); // the same again: nothing to do
    expect(p.calls).toHaveLength(3);
    s.show(null);
    expect(p.raised()).toEqual([]);
  });

  it('a server that comes up off screen is lowered (a killed kvmux raised it), never the shown one nor a dead one', () => {
    const p = new FakeProcs();
    p.spawn(a);
    p.spawn(b);
    p.prio.set('200@1', 1); // left raised by a kvmux killed before it could lower it
    const s = new ShownPriority(p.io, 1, silentLogger);
    s.show(a);
    s.offScreen(a); // the shown one stays raised
    s.offScreen(b);
    expect(p.raised()).toEqual(['100@1']);
    const gone = { pid: 300, startTime: 1 };
    s.offScreen(gone);
    s.show(gone); // listed but already dead: its pid is not touched
    expect(p.calls.filter((c) => c.startsWith('300:'))).toEqual([]);
  });

  it('a shown server over its CPU budget runs normal for a cool-down, then is raised again if still shown', () => {
    const p = new FakeProcs();
    p.spawn(a);
    p.spawn(b);
    const cpu = new Map<number, number>([
      [100, 0],
      [200, 0],
    ]);
    const s = new ShownPriority(
      { ...p.io, cpuMs: (r) => (p.io.isAlive(r) ? (cpu.get(r.pid) ?? null) : null) },
      1,
      silentLogger,
    );
    s.show(a);
    s.watch(0);
    cpu.set(100, 400); // 40% of a CPU over 1 s: within budget
    s.watch(1000);
    expect(p.raised()).toEqual(['100@1']);
    cpu.set(100, 1300); // 90%: a flood
    s.watch(2000);
    expect(p.raised()).toEqual([]);
    s.show(b);
    s.show(a); // back on screen within the cool-down: stays normal
    expect(p.raised()).toEqual([]);
    s.watch(11_999);
    expect(p.raised()).toEqual([]);
    s.watch(12_000);
    expect(p.raised()).toEqual(['100@1']);
    // demoted again, then another display shown: the cool-down's end raises nothing
    s.watch(12_500);
    cpu.set(100, 3000);
    s.watch(13_500);
    s.show(b);
    expect(p.raised()).toEqual(['200@1']);
    s.watch(24_000);
    expect(p.raised()).toEqual(['200@1']);
  });

  it.each([
    ['a load check first', 'load'],
    ['a budget check first', 'budget'],
  ])('never touches the pid of a server that has gone (a reused pid is another process): %s', (_, first) => {
    const p = new FakeProcs();
    p.spawn(a);
    const cpu = new Map<number, number>([[100, 0]]);
    const s = new ShownPriority(
      { ...p.io, cpuMs: (r) => (p.io.isAlive(r) ? (cpu.get(r.pid) ?? null) : null) },
      1,
      silentLogger,
    );
    s.show(a);
    s.watch(0);
    p.die(a);
    const reused = { pid: 100, startTime: 9 }; // same pid, another process, made RT by someone else
    p.spawn(reused);
    p.prio.set('100@9', 50);
    // before kvmux learns of the death: a busy input thread and a budget check (the new process
    // floods a CPU) must neither move nor lower it, whichever comes first
    cpu.set(100, 950);
    const checks = [() => s.inputLoad(0.5), () => s.watch(1000)];
    if (first === 'budget') checks.reverse();
    for (const check of checks) check();
    s.inputLoad(0);
    p.spawn(b);
    s.show(b);
    expect(p.prio.get('100@9')).toBe(50);
    expect(p.calls).toEqual(['100:1', '200:1']);
  });

  it('a restarted server (same display, new process) is raised in place of the old', () => {
    const p = new FakeProcs();
    p.spawn(a);
    const s = new ShownPriority(p.io, 1, silentLogger);
    s.show(a);
    p.die(a);
    s.show(null); // the display reports its server gone (Switcher.onDisplayChange)
    const again = { pid: 101, startTime: 5 };
    p.spawn(again);
    s.show(again);
    expect(p.raised()).toEqual(['101@5']);
    expect(s.current).toEqual(again);
  });

  it('a refusal (no RT budget) leaves nothing raised and is said once', () => {
    const p = new FakeProcs();
    p.spawn(a);
    p.spawn(b);
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (_o: unknown, msg: string) => warned.push(msg) } as never;
    const s = new ShownPriority(p.io, 1, log);
    p.refuse = 'EPERM';
    s.show(a);
    s.show(b);
    s.show(a);
    expect(p.raised()).toEqual([]);
    expect(s.current).toBeNull();
    expect(warned).toHaveLength(1);
    p.refuse = undefined;
    s.show(b);
    expect(p.raised()).toEqual(['200@1']);
  });

  it('a busy input thread lets the raised server use every CPU, until it is quiet again', () => {
    const p = new FakeProcs();
    p.spawn(a);
    p.spawn(b);
    const s = new ShownPriority(p.io, 1, silentLogger);
    expect(s.followsInputLoad).toBe(true);
    s.inputLoad(0.9); // nothing raised: nothing to move
    expect(p.calls).toEqual([]);
    s.show(a);
    expect(p.pinnedTo()).toEqual(['100@1']);
    s.inputLoad(0.01); // typing, the mouse: stays on the input CPU
    expect(s.wantsFastChecks).toBe(false); // an idle kvmux checks once a second
    s.inputLoad(INPUT_BUSY); // not above
    expect(p.pinnedTo()).toEqual(['100@1']);
    expect(s.wantsFastChecks).toBe(true); // busy-ish: checked again soon
    s.inputLoad(0.6); // an upload being read
    expect(p.pinnedTo()).toEqual([]);
    expect(p.raised()).toEqual(['100@1']); // still real-time
    s.inputLoad(INPUT_QUIET); // between: no flapping
    expect(p.pinnedTo()).toEqual([]);
    expect(s.wantsFastChecks).toBe(true); // spread: checked again soon
    s.inputLoad(0.01);
    expect(p.pinnedTo()).toEqual(['100@1']);
    expect(s.wantsFastChecks).toBe(false); // joined and quiet: once a second again
    s.inputLoad(0.7);
    s.show(b); // a switch while busy: the new one joins (raised), the old one is lowered
    expect(p.pinnedTo()).toEqual(['200@1']);
    s.inputLoad(0.7);
    expect(p.pinnedTo()).toEqual([]);
    s.show(null);
    s.inputLoad(0);
    expect(p.pinnedTo()).toEqual([]);
    expect(s.wantsFastChecks).toBe(false); // nothing raised: back to once a second
    expect(p.calls).toEqual([
      '100:1',
      '100:spread',
      '100:join',
      '100:spread',
      '100:0',
      '200:1',
      '200:spread',
      '200:0',
    ]);
  });

  it('reads the CPU time of the raised server once per budget window, however often it is asked', () => {
    const p = new FakeProcs();
    p.spawn(a);
    let reads = 0;
    let aliveChecks = 0;
    const s = new ShownPriority(
      {
        ...p.io,
        isAlive: (r) => {
          aliveChecks++;
          return p.io.isAlive(r);
        },
        cpuMs: () => {
          reads++;
          return 0;
        },
      },
      1,
      silentLogger,
    );
    s.show(a);
    aliveChecks = 0;
    for (let t = 0; t <= 4000; t += 250) s.watch(t); // checks every 250 ms while the input is busy
    expect(reads).toBeLessThanOrEqual(5);
    expect(reads).toBeGreaterThanOrEqual(4);
    // that read says whether the server is still there: /proc is read once per window, not twice
    expect(aliveChecks).toBe(0);
  });

  it('forgets a raised server whose CPU time is gone (it exited): never lowers its pid later', () => {
    const p = new FakeProcs();
    p.spawn(a);
    const s = new ShownPriority({ ...p.io, cpuMs: (r) => (p.io.isAlive(r) ? 0 : null) }, 1, silentLogger);
    s.show(a);
    s.watch(0);
    p.die(a);
    p.spawn({ pid: 100, startTime: 7 });
    s.watch(1000);
    expect(s.current).toBeNull();
    s.show(null);
    expect(p.calls).toEqual(['100:1']);
  });

  it('follows the input load only when real-time and pinned', () => {
    const p = new FakeProcs();
    const { joinInputCpu: _, ...unpinned } = p.io;
    expect(new ShownPriority(unpinned, 1, silentLogger).followsInputLoad).toBe(false);
    expect(new ShownPriority(p.io, 0, silentLogger).followsInputLoad).toBe(false);
  });

  it('random switches, restarts and deaths: after every step at most one server is raised, the shown one', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rnd = mulberry32(seed);
      const p = new FakeProcs();
      const s = new ShownPriority(p.io, 1, silentLogger);
      let next = 1000;
      const servers = [0, 1, 2].map(() => ({ pid: next++, startTime: 1 }));
      for (const r of servers) p.spawn(r);
      let shown: ProcessRef | null = null;
      let spread = false;
      for (let step = 0; step < 200; step++) {
        const i = Math.floor(rnd() * servers.length);
        const r = servers[i]!;
        const what = rnd();
        const before = s.current;
        if (what < 0.25) {
          const load = rnd() * 3 * INPUT_BUSY; // around both bars
          s.inputLoad(load);
          if (s.current) spread = spread ? load >= INPUT_QUIET : load > INPUT_BUSY;
        } else if (what < 0.6) {
          shown = p.io.isAlive(r) ? r : null;
          s.show(shown);
        } else if (what < 0.8) {
          // the server dies; the display runtime reports it gone, then a new one comes up
          p.die(r);
          if (shown === r) s.show(null);
          const fresh = { pid: next++, startTime: step + 2 };
          servers[i] = fresh;
          p.spawn(fresh);
          if (shown === r) {
            shown = fresh;
            s.show(fresh);
          }
        } else {
          // a death reported late: a switch happens before the runtime notices
          p.die(r);
          const fresh = { pid: next++, startTime: step + 2 };
          servers[i] = fresh;
          p.spawn(fresh);
          if (shown === r) shown = null;
          s.show(shown);
        }
        if (s.current !== before) spread = false; // raised anew: on the input CPU
        const want = shown ? [`${shown.pid}@${shown.startTime}`] : [];
        expect(p.raised(), `seed ${seed} step ${step}`).toEqual(want);
        // on the input CPU: the raised server unless the input thread is busy, never another
        expect(p.pinnedTo(), `seed ${seed} step ${step}`).toEqual(spread ? [] : want);
      }
    }
  });
});
