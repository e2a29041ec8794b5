import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSocket } from '../../src/control/rpc/client.js';
import type { JobView } from '../../src/session/jobs/job.js';
import { buildInitramfs, findKernel } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';
import { type Kvmux, sleep, startKvmux } from './kvmux-harness.js';

/**
 * kill -9 of `kvmux run` in the middle of vm.save (a stream capped at 4 MiB/s so it lasts): QEMU
 * goes on streaming alone, the record says "save", and the next kvmux adopts the VM and finishes
 * the job: the saved state is committed, QEMU quits, and vm.restore brings the guest back.
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

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  const initrd = await buildInitramfs({
    init: 'i=0; while :; do i=$((i+1)); echo "count $i"; sleep 0.1; done',
    outDir: join(dir, 'initrd'),
  });
  k = await startKvmux({
    firstDisplay: 260,
    readyTimeoutMs: 90_000,
    vms: [
      {
        name: 'tux',
        backend: 'qemu',
        qemu: {
          kernel: findKernel().path,
          initrd,
          append: 'console=ttyS1 panic=-1 quiet loglevel=3',
          accel: 'tcg',
          memoryMiB: 96,
          migrationBandwidthMiB: 4,
        },
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
});
