import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { sendFile } from '../../src/control/transfer/transfer-client.js';
import { signal } from '../../src/util/proc.js';
import { MIN_SLICE_NS, sliceOf } from '../../src/util/slice.js';
import { kernelHasSlices } from '../helpers/kernel.js';
import { tempDir } from '../helpers/temp.js';
import { cpusOf, schedulingOf, threadCpusOf, xServerPidOf } from '../helpers/x-servers.js';
import { eventually, type Kvmux, sleep, startKvmux } from './kvmux-harness.js';

/**
 * `kvmux run` with input.realtime (the default): its input thread at SCHED_RR 2, and the X server
 * of the display on screen at SCHED_RR 1 while the others stay SCHED_OTHER. Read from /proc of the
 * real processes after each switch and after the shown X server is killed and restarted.
 */
const SCHED_OTHER = 0;
const SCHED_RR = 2;
const canRaise = process.getuid?.() === 0;
const cpus = availableParallelism();
/** Every CPU, as /proc lists them (this machine's CPUs are numbered 0..n-1). */
const all = cpus > 1 ? `0-${cpus - 1}` : '0';
if (cpus < 2) console.warn('SKIP input CPU pin: one CPU, nothing to pin');
if (!canRaise) console.warn('SKIP run priority: needs root (CAP_SYS_NICE) to raise priority');
const slices = canRaise && kernelHasSlices();
if (canRaise && !slices)
  console.warn(`SKIP shown VM slice: kernel ${release()} has no custom scheduler slices (6.12+)`);

let k: Kvmux | undefined;
afterEach(async () => {
  await k?.stop();
  k = undefined;
});

const vms = [
  { name: 'left', backend: 'command', command: ['sleep', '600'] },
  { name: 'right', backend: 'command', command: ['sleep', '600'] },
];

async function servers(kv: Kvmux): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const d of await kv.call<Array<{ name: string; display: string }>>('display.list')) {
    const pid = d.display ? xServerPidOf(d.display) : null;
    if (pid) out[d.name] = pid;
  }
  return out;
}

async function bothUp(kv: Kvmux): Promise<Record<string, number>> {
  for (let i = 0; i < 100; i++) {
    const s = await servers(kv);
    if (s['left'] && s['right']) return s;
    await sleep(100);
  }
  throw new Error('the two X servers did not come up');
}

const policy = (pid: number) => {
  const s = schedulingOf(pid);
  return s.policy === SCHED_RR
    ? `rr ${s.rtPriority}`
    : s.policy === SCHED_OTHER
      ? `other ${s.nice}`
      : `${s.policy}`;
};

describe.skipIf(!canRaise)('input priority follows the monitor (kvmux run, Xvfb)', () => {
  it('the shown X server runs real-time, the others normal; a switch and a restart move it', async () => {
    k = await startKvmux({ vms });
    const x = await bothUp(k);
    expect(policy(k.pid)).toBe('rr 2');
    await eventually(() => policy(x['left']!) === 'rr 1', 'left X server raised');
    expect(policy(x['right']!)).toBe('other 0');

    await k.call('display.switch', { name: 'right' });
    expect(policy(x['right']!)).toBe('rr 1');
    expect(policy(x['left']!)).toBe('other 0');

    // the shown display's X server dies: its replacement is raised, nothing else
    signal(x['right']!, 'SIGKILL');
    let again = 0;
    for (let i = 0; i < 150 && !again; i++) {
      const s = await servers(k);
      if (s['right'] && s['right'] !== x['right']) again = s['right'];
      else await sleep(100);
    }
    expect(again).toBeGreaterThan(0);
    await eventually(() => policy(again) === 'rr 1', 'restarted right X server raised', 10_000);
    expect(policy(x['left']!)).toBe('other 0');

    await k.call('display.switch', { name: 'left' });
    expect(policy(x['left']!)).toBe('rr 1');
    expect(policy(again)).toBe('other 0');
  }, 90_000);

  it.skipIf(cpus < 2)(
    'the input thread keeps to the last CPU; the shown X server joins it, nothing else does',
    async () => {
      k = await startKvmux({ vms });
      const x = await bothUp(k);
      const last = String(cpus - 1);
      await eventually(() => cpusOf(k!.pid) === last, 'kvmux main thread pinned');
      await eventually(
        () => threadCpusOf(x['left']!).join() === last,
        'shown X server (all threads) joined it',
      );
      expect(threadCpusOf(x['right']!)).toEqual([all]);
      // kvmux's other threads (libuv pool, V8) and what it spawned (the VMs) keep every CPU
      const others = threadCpusOf(k.pid).filter((c) => c !== last);
      expect(others).toEqual([all]);
      const vmPids = (await k.call<Array<{ name: string; pid?: number }>>('vm.list')).map((v) => v.pid);
      expect(vmPids.length).toBe(2);
      for (const pid of vmPids) expect(threadCpusOf(pid!)).toEqual([all]);

      await k.call('display.switch', { name: 'right' });
      expect(threadCpusOf(x['right']!)).toEqual([last]);
      expect(threadCpusOf(x['left']!)).toEqual([all]);
    },
    90_000,
  );

  it.skipIf(cpus < 2)(
    'while an upload keeps the input thread busy the shown X server may use every CPU, then joins again',
    async () => {
      const images = tempDir('kvmux-prio-img-');
      const file = join(tempDir('kvmux-prio-src-'), 'big.raw');
      const block = randomBytes(8 << 20);
      const fd = openSync(file, 'w');
      for (let i = 0; i < 96; i++) writeSync(fd, block); // 768 MiB: a few seconds of reading
      closeSync(fd);
      k = await startKvmux({ vms, extra: { imageDirs: [images] } });
      const x = await bothUp(k);
      const last = String(cpus - 1);
      const shown = () => threadCpusOf(x['left']!).join();
      await eventually(() => shown() === last, 'shown X server joined the input CPU');
      let uploading = true;
      const upload = sendFile(k.client, { prefix: 'image.upload', file, begin: { name: 'big.raw' } }).finally(
        () => (uploading = false),
      );
      const seen = new Set<string>();
      while (uploading) {
        seen.add(shown());
        await sleep(20);
      }
      await upload;
      expect([...seen]).toContain(all);
      // quiet again: back on the input thread's CPU, still real-time
      await eventually(() => shown() === last, 'shown X server joined the input CPU again');
      expect(policy(x['left']!)).toBe('rr 1');
      expect(threadCpusOf(x['right']!)).toEqual([all]);
    },
    120_000,
  );

  it('with input.realtime false nothing is real-time: kvmux at nice -10, every X server normal', async () => {
    k = await startKvmux({ vms, input: { realtime: false } });
    const x = await bothUp(k);
    await sleep(500);
    expect(policy(k.pid)).toBe('other -10');
    expect(cpusOf(k.pid)).toBe(all); // no pin without real-time either
    expect(policy(x['left']!)).toBe('other 0');
    expect(policy(x['right']!)).toBe('other 0');
    await k.call('display.switch', { name: 'right' });
    expect(policy(x['right']!)).toBe('other 0');
  }, 90_000);

  it('a crashed kvmux left an X server real-time: the next kvmux lowers it unless it shows it', async () => {
    k = await startKvmux({ vms });
    const x = await bothUp(k);
    await k.call('display.switch', { name: 'right' });
    expect(policy(x['right']!)).toBe('rr 1');
    // killed before its background write of the shown display landed: the next one shows left
    await k.crash('SIGKILL');
    writeFileSync(join(k.dir, 'state', 'active-display'), 'left\n');
    k = await k.restart();
    expect(await bothUp(k)).toEqual(x); // adopted, not restarted
    await eventually(() => policy(x['left']!) === 'rr 1', 'shown left X server raised');
    await eventually(() => policy(x['right']!) === 'other 0', 'adopted right X server back to normal');
    // killed again (left raised), and started again with input.realtime off: nothing stays real-time
    await k.crash('SIGKILL');
    const cfgPath = join(k.dir, 'kvmux.yaml');
    const cfg = parse(readFileSync(cfgPath, 'utf8')) as { input: Record<string, unknown> };
    writeFileSync(cfgPath, stringify({ ...cfg, input: { ...cfg.input, realtime: false } }));
    k = await k.restart();
    expect(await bothUp(k)).toEqual(x);
    await eventually(() => policy(x['left']!) === 'other 0', 'adopted left X server back to normal');
    expect(policy(x['right']!)).toBe('other 0');
    // and on every CPU again, though this kvmux pins nothing (the killed one had pinned it)
    expect(cpusOf(k.pid)).toBe(all);
    expect(threadCpusOf(x['left']!)).toEqual([all]);
  }, 90_000);

  it.skipIf(!slices)(
    'the VM on screen asks for the shortest scheduler slice, the others run with the default; it follows switches, restarts and a crashed kvmux',
    async () => {
      k = await startKvmux({ vms });
      await bothUp(k);
      const pids = async (kv: Kvmux) => {
        const out: Record<string, number> = {};
        for (const v of await kv.call<Array<{ name: string; pid?: number }>>('vm.list'))
          if (v.pid) out[v.name] = v.pid;
        return out;
      };
      let p = await pids(k);
      await eventually(() => sliceOf(p['left']!) === MIN_SLICE_NS, 'shown left VM shortened');
      const normal = sliceOf(p['right']!);
      expect(normal).toBeGreaterThan(MIN_SLICE_NS);

      await k.call('display.switch', { name: 'right' });
      expect(sliceOf(p['right']!)).toBe(MIN_SLICE_NS);
      expect(sliceOf(p['left']!)).toBe(normal);

      // the shown VM's process dies and is restarted: the new one is shortened, nothing else
      const before = p['right'];
      signal(before!, 'SIGKILL');
      for (let i = 0; i < 200 && (p['right'] === undefined || p['right'] === before); i++) {
        await sleep(100);
        p = await pids(k);
      }
      expect(p['right']).not.toBe(before);
      await eventually(() => sliceOf(p['right']!) === MIN_SLICE_NS, 'restarted right VM shortened');
      expect(sliceOf(p['left']!)).toBe(normal);

      // killed while showing right, started again showing left: right is adopted and reset
      await k.crash('SIGKILL');
      writeFileSync(join(k.dir, 'state', 'active-display'), 'left\n');
      k = await k.restart();
      expect(await pids(k)).toEqual(p); // adopted, not restarted
      await eventually(() => sliceOf(p['left']!) === MIN_SLICE_NS, 'shown left VM shortened');
      await eventually(() => sliceOf(p['right']!) === normal, 'adopted right VM back to the default');

      // a kvmux leaving its VMs running (SIGUSR1) leaves none shortened; the next one takes them over
      const left = k;
      try {
        expect(await left.crash('SIGUSR1')).toBe(0);
        expect(sliceOf(p['left']!)).toBe(normal);
        expect(sliceOf(p['right']!)).toBe(normal);
      } finally {
        // whatever happened, a kvmux owns the VMs again: afterEach stops it, and them
        k = await left.restart();
      }
    },
    90_000,
  );

  it('a client flooding the shown X server loses real-time (CPU budget); a calm display shown next is raised', async () => {
    const flood = [process.execPath, join(import.meta.dirname, '../fixtures/x-flood.mjs')];
    k = await startKvmux({ vms: [{ name: 'left', backend: 'command', command: flood }, vms[1]!] });
    const x = await bothUp(k);
    await eventually(
      () => /over its real-time CPU budget/.test(k!.log()),
      'the flooded X server demoted',
      10_000,
    );
    const active = (await k.call<Array<{ name: string; active: boolean }>>('display.list')).find(
      (d) => d.active,
    );
    expect(active?.name).toBe('left'); // still on screen, yet normal
    expect(policy(x['left']!)).toBe('other 0');
    // a calm display shown meanwhile is raised as usual
    await k.call('display.switch', { name: 'right' });
    expect(policy(x['right']!)).toBe('rr 1');
  }, 90_000);
});
