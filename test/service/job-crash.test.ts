import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSocket } from '../../src/control/rpc/client.js';
import type { JobView } from '../../src/session/jobs/job.js';
import { isAlive, readProcStat } from '../../src/util/proc.js';
import { buildInitramfs, counterInit, linuxGuestQemu } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';
import { untilValue } from '../helpers/until.js';
import { type Kvmux, startKvmux } from './kvmux-harness.js';

/**
 * kill -9 of `kvmux run` in the middle of vm.save (a stream capped at 4 MiB/s so it lasts): QEMU
 * goes on streaming alone, the record says "save", and the next kvmux adopts the VM and finishes
 * the job: the saved state is committed, QEMU quits, and vm.restore brings the guest back.
 * Then the same in the middle of vm.restore: once right after the restoring QEMU was launched
 * (before its stream started), once while the stream flows (slowed by a CPU quota on the VM).
 * Either way the next kvmux brings the guest back counting on, and the saved state is spent.
 */
const dir = tempDir('kvmux-job-crash-');
let k: Kvmux;

interface Row {
  name: string;
  state: string;
  pid: number | null;
  job: JobView | null;
  savedAt: string | null;
}

const row = async (x: Kvmux) => (await x.call<Row[]>('vm.list')).find((r) => r.name === 'tux')!;
const serial = () => {
  try {
    return readFileSync(join(k.dir, 'run', 'vm', 'tux', 'serial.log'), 'utf8');
  } catch {
    return '';
  }
};
const counts = () => [...serial().matchAll(/count (\d+)/g)].map((m) => Number(m[1]));
const recordPath = () => join(k.dir, 'state', 'vms', 'tux.json');
const savedFile = () => join(k.dir, 'state', 'saved', 'tux.state.gz');

/** The `gzip -dc` feeding a restoring QEMU its saved state (QEMU's exec: child), if it runs. */
function streamReaders(qemu: number): number[] {
  const kids = new Map<number, number[]>();
  const comm = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    const st = /^\d+$/.test(d) ? readProcStat(Number(d)) : null;
    if (!st) continue;
    kids.set(st.ppid, [...(kids.get(st.ppid) ?? []), st.pid]);
    comm.set(st.pid, readFileSync(`/proc/${d}/comm`, 'utf8').trim());
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const c of kids.get(pid) ?? []) {
      if (comm.get(c) === 'gzip' && isAlive(c)) out.push(c);
      walk(c);
    }
  };
  walk(qemu);
  return out;
}

/** Save the running guest (a plain, complete vm.save); the last count it showed. */
async function saveNow(): Promise<number> {
  await until('the guest counts', async () => (counts().length >= 3 ? true : undefined));
  await k.call('vm.save', { name: 'tux' });
  expect(await row(k)).toMatchObject({ state: 'stopped', savedAt: expect.any(String) });
  return counts().at(-1) ?? 0;
}

/** After an adopted restore: running, the job done, the guest counting on from `last`, save spent. */
async function expectRestored(last: number): Promise<void> {
  const done = await until('the adopted restore completes', async () => {
    const r = await row(k);
    return r.job?.kind === 'restore' && r.job.status !== 'active' ? r : undefined;
  });
  expect(done).toMatchObject({ state: 'running', savedAt: null, job: { status: 'completed' } });
  const after = await until('the restored guest counts', async () => {
    // the restoring QEMU started its serial log afresh
    const c = counts();
    return c.length >= 3 ? c : undefined;
  });
  process.stderr.write(
    `[job-crash] saved at count ${last}, the adopted restore counts ${after.slice(0, 3)}\n`,
  );
  // the saved memory: on from `last` (a fresh boot would start at 1)
  expect(after[0]).toBeGreaterThanOrEqual(last);
  expect(after[0]).toBeLessThanOrEqual(last + 2);
  expect(after[2]).toBe((after[0] ?? 0) + 2);
  expect(existsSync(savedFile())).toBe(false);
  expect((await row(k)).savedAt).toBeNull();
}

const until = <T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 90000) =>
  untilValue(what, fn, timeoutMs);

beforeAll(async () => {
  const initrd = await buildInitramfs({
    init: counterInit(),
    outDir: join(dir, 'initrd'),
  });
  k = await startKvmux({
    firstDisplay: 260,
    readyTimeoutMs: 90_000,
    vms: [
      {
        name: 'tux',
        backend: 'qemu',
        qemu: linuxGuestQemu(initrd, { migrationBandwidthMiB: 4 }),
      },
    ],
  });
}, 120_000);

afterAll(async () => {
  await k?.stop();
});

describe('adoption after a crash mid-save', () => {
  it('the next kvmux finishes the save, and restore brings the guest back', async () => {
    await until('the guest counts', async () => (counts().length >= 5 ? true : undefined));
    const pid = (await row(k)).pid;
    // its own connection: one connection answers its calls in order, and vm.list must get through
    const saver = await connectSocket(join(k.dir, 'run', 'control.sock'));
    void saver.call('vm.save', { name: 'tux' }).catch(() => {});
    let seen: Row | undefined;
    const mid = await until(
      'the save streams',
      async () => {
        seen = await row(k);
        const j = seen.job;
        return j?.kind === 'save' && j.status === 'active' && j.transferredBytes > 0 ? seen : undefined;
      },
      30_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify(seen)}\n${k.log().slice(-1500)}`);
    });
    await k.crash('SIGKILL');
    saver.close();
    const record = JSON.parse(readFileSync(join(k.dir, 'state', 'vms', 'tux.json'), 'utf8'));
    expect(record.job).toMatchObject({ kind: 'save' });
    process.stderr.write(`[job-crash] killed kvmux at ${mid.job?.transferredBytes} bytes of the save\n`);
    const last = counts().at(-1) ?? 0;

    k = await k.restart();
    const done = await until('the adopted save completes', async () => {
      const r = await row(k);
      return r.state === 'stopped' && r.savedAt ? r : undefined;
    });
    expect(done.job).toMatchObject({ kind: 'save', status: 'completed' });
    expect(existsSync(join(k.dir, 'state', 'saved', 'tux.state.gz'))).toBe(true);
    expect(existsSync(join(k.dir, 'state', 'saved', 'tux.state.gz.partial'))).toBe(false);
    expect(
      existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z',
    ).toBe(false);

    await k.call('vm.restore', { name: 'tux' });
    const after = await until('the restored guest counts', async () => {
      const c = counts();
      return c.length >= 3 ? c : undefined;
    });
    expect(after[0]).toBeGreaterThanOrEqual(last);
    expect(after[0]).toBeLessThanOrEqual(last + 2);
  }, 240_000);

  it('kill -9 while the restoring QEMU is still starting (no QMP, no stream): the next kvmux starts the stream', async () => {
    const last = await saveNow();
    // 3% of a CPU: QEMU takes seconds to come up, kvmux is killed before it can send the stream
    await k.call('vm.setResources', { name: 'tux', cpuQuota: 0.03 });
    const restorer = await connectSocket(join(k.dir, 'run', 'control.sock'));
    void restorer.call('vm.restore', { name: 'tux' }).catch(() => {});
    // the record names the restore as soon as QEMU is spawned
    await until(
      'the restore is recorded',
      async () => {
        const rec = existsSync(recordPath()) ? readFileSync(recordPath(), 'utf8') : '';
        return /"kind": ?"restore"/.test(rec) ? true : undefined;
      },
      30_000,
    );
    await k.crash('SIGKILL');
    restorer.close();
    const record = JSON.parse(readFileSync(recordPath(), 'utf8'));
    const qmpUp = existsSync(record.sockets.qmp);
    process.stderr.write(`[job-crash] killed kvmux with the restore recorded; QMP up: ${qmpUp}\n`);
    expect(record.job).toMatchObject({ kind: 'restore', target: savedFile() });
    expect(isAlive(record.pid)).toBe(true);
    // what this test is for: QEMU waits in -incoming defer and nothing told it where the stream is
    expect(streamReaders(record.pid)).toEqual([]);

    k = await k.restart();
    await k.call('vm.setResources', { name: 'tux' });
    await expectRestored(last);
    expect((await row(k)).pid).toBe(record.pid);
  }, 240_000);

  it('kill -9 while the restore streams: the next kvmux follows it to the end', async () => {
    const last = await saveNow();
    // 3% of a CPU for QEMU and its gzip: the stream takes long enough to be caught in the middle
    await until('the guest counts', async () => (counts().length >= 3 ? true : undefined));
    await k.call('vm.setResources', { name: 'tux', cpuQuota: 0.03 });
    const restorer = await connectSocket(join(k.dir, 'run', 'control.sock'));
    void restorer.call('vm.restore', { name: 'tux' }).catch(() => {});
    const qemu = await until(
      'the restore streams',
      async () => {
        const r = await row(k);
        return r.pid && r.job?.kind === 'restore' && streamReaders(r.pid).length ? r.pid : undefined;
      },
      120_000,
    );
    await k.crash('SIGKILL');
    restorer.close();
    expect(streamReaders(qemu).length).toBeGreaterThan(0);

    k = await k.restart();
    // QMP answers slowly at 3% of a CPU: the adopted job shows once QEMU said how far it got
    const adopted = await until('the adopted job shows', async () => {
      const r = await row(k);
      return r.job ? r : undefined;
    });
    process.stderr.write(`[job-crash] adopted mid-restore: ${JSON.stringify(adopted.job)}\n`);
    expect(adopted).toMatchObject({
      state: 'running',
      pid: qemu,
      job: { kind: 'restore', status: 'active' },
    });
    await k.call('vm.setResources', { name: 'tux' });
    await expectRestored(last);
  }, 240_000);
});
