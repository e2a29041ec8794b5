import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { INPUT_LOAD_EVERY_MS, type ShownPriority } from '../../src/service/shown-priority.js';
import { Switcher } from '../../src/service/switcher.js';

/**
 * The priority watch's cadence (fake timers, a recording ShownPriority): once a second while the
 * input thread is quiet, every INPUT_LOAD_EVERY_MS while it is busy, and at once after a hint of
 * bulk work. No X server is started.
 */
function recording(fast: { value: boolean }) {
  const calls: number[] = [];
  const loads: number[] = [];
  const sp = {
    followsInputLoad: true,
    get wantsFastChecks() {
      return fast.value;
    },
    watch: (now: number) => void calls.push(now),
    inputLoad: (load: number) => void loads.push(load),
    show: () => undefined,
  } as unknown as ShownPriority;
  return { sp, calls, loads };
}

const config = configSchema.parse({
  runDir: '/nonexistent/run',
  stateDir: '/nonexistent/state',
  console: 'virtual',
  x: { firstDisplay: 190 },
});

describe('the switcher priority watch', () => {
  let switchers: Switcher[] = [];
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(async () => {
    for (const s of switchers) await s.stop();
    switchers = [];
    vi.useRealTimers();
  });

  it('checks once a second while quiet, and within a quarter second after a bulk hint', () => {
    const fast = { value: false };
    const { sp, calls } = recording(fast);
    const s = new Switcher({ config, shownPriority: sp });
    switchers.push(s);
    vi.advanceTimersByTime(3000);
    expect(calls).toHaveLength(3); // 1 s, 2 s, 3 s: an idle kvmux wakes once a second
    vi.advanceTimersByTime(100);
    s.busyHint(); // an upload's first chunk
    fast.value = true; // the load the next check sees is busy: checks stay frequent
    vi.advanceTimersByTime(INPUT_LOAD_EVERY_MS);
    expect(calls).toHaveLength(4);
    vi.advanceTimersByTime(4 * INPUT_LOAD_EVERY_MS);
    expect(calls).toHaveLength(8);
    s.busyHint(); // already fast: changes nothing
    vi.advanceTimersByTime(INPUT_LOAD_EVERY_MS);
    expect(calls).toHaveLength(9);
    fast.value = false; // the next check finds it quiet: back to once a second after it
    vi.advanceTimersByTime(INPUT_LOAD_EVERY_MS);
    expect(calls).toHaveLength(10);
    vi.advanceTimersByTime(999);
    expect(calls).toHaveLength(10);
    vi.advanceTimersByTime(1);
    expect(calls).toHaveLength(11);
  });

  it('measures the load after a hint from the hint on, not diluted by the quiet time before it', async () => {
    const { sp, loads } = recording({ value: false });
    const s = new Switcher({ config, shownPriority: sp });
    switchers.push(s);
    // real idle time since the window began (timers/promises is not faked)
    await sleep(300);
    s.busyHint();
    // a chunk's work: 30 ms of the input thread, then the quarter second ends
    for (const end = performance.now() + 30; performance.now() < end; );
    vi.advanceTimersByTime(INPUT_LOAD_EVERY_MS);
    expect(loads).toHaveLength(1);
    // ~1 from the hint on; measured from the window's start it was ~30 / 330 ≈ 0.09
    expect(loads[0]).toBeGreaterThan(0.5);
  });

  it('takes no hint when the shown server does not share the input CPU', () => {
    const fast = { value: false };
    const { sp, calls } = recording(fast);
    (sp as { followsInputLoad: boolean }).followsInputLoad = false;
    const s = new Switcher({ config, shownPriority: sp });
    switchers.push(s);
    vi.advanceTimersByTime(100);
    s.busyHint();
    vi.advanceTimersByTime(900);
    expect(calls).toHaveLength(1); // the budget check at 1 s only
  });
});
