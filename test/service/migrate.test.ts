import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../src/session/jobs/job.js';
import { buildInitramfs, counterInit, linuxGuestQemu } from '../fixtures/linux-guest.js';
import { tempDir } from '../helpers/temp.js';
import { untilValue } from '../helpers/until.js';
import { type Kvmux, startKvmux } from './kvmux-harness.js';

/**
 * Live migration between two `kvmux run` instances on this machine, each in its own network
 * namespace (ks-mig-a, ks-mig-b) joined by a veth pair: the guest (a real Linux, TCG) counts on
 * its serial console before, and goes on counting on the receiver after, without a reboot.
 */
const NS = ['ks-mig-a', 'ks-mig-b'] as const;
const PORT = 4444;
const dir = tempDir('kvmux-migrate-');
let a: Kvmux;
let b: Kvmux;

interface Row {
  name: string;
  state: string;
  pid: number | null;
  job: JobView | null;
}

const sh = (...argv: string[]) => execa(argv[0]!, argv.slice(1));
const inNs = (ns: string, ...argv: string[]) => sh('ip', 'netns', 'exec', ns, ...argv);
const serial = (k: Kvmux) => {
  try {
    return readFileSync(join(k.dir, 'run', 'vm', 'tux', 'serial.log'), 'utf8');
  } catch {
    return '';
  }
};
const counts = (text: string) => [...text.matchAll(/count (\d+)/g)].map((m) => Number(m[1]));
const row = async (k: Kvmux) => (await k.call<Row[]>('vm.list')).find((r) => r.name === 'tux')!;

const until = <T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60000) =>
  untilValue(what, fn, timeoutMs);

beforeAll(async () => {
  for (const ns of NS) await sh('ip', 'netns', 'del', ns).catch(() => {});
  for (const ns of NS) await sh('ip', 'netns', 'add', ns);
  await sh('ip', 'link', 'add', 'ks-mig0', 'netns', NS[0], 'type', 'veth', 'peer', 'ks-mig1', 'netns', NS[1]);
  for (const [i, ns] of NS.entries()) {
    await inNs(ns, 'ip', 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', `ks-mig${i}`);
    await inNs(ns, 'ip', 'link', 'set', `ks-mig${i}`, 'up');
    await inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  const initrd = await buildInitramfs({
    init: counterInit({ screen: true }),
    outDir: join(dir, 'initrd'),
  });
  const vm = (autostart: boolean, name = 'tux', memoryMiB = 128) => ({
    name,
    backend: 'qemu',
    autostart,
    qemu: linuxGuestQemu(initrd, { memoryMiB }),
  });
  // `small` cannot load tux's stream (its RAM is another size): a receiver that fails
  a = await startKvmux({
    netns: NS[0],
    firstDisplay: 250,
    vms: [vm(true), vm(false, 'small', 96)],
    readyTimeoutMs: 90_000,
  });
  b = await startKvmux({ netns: NS[1], firstDisplay: 255, vms: [vm(false)], readyTimeoutMs: 90_000 });
}, 180_000);

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  for (const ns of NS) await sh('ip', 'netns', 'del', ns).catch(() => {});
});

describe('vm.migrate between two kvmux hosts (each in its own netns)', () => {
  it('the guest keeps running: its counter goes on at the receiver', async () => {
    await until('the guest counts at the sender', async () =>
      counts(serial(a)).length >= 5 ? true : undefined,
    );
    const recv = await b.call<Row>('vm.receive', { name: 'tux', from: `tcp:10.77.0.2:${PORT}` });
    expect(recv).toMatchObject({ state: 'running' });
    expect((await row(b)).job).toMatchObject({ kind: 'receive', status: 'active' });

    const sent = await a.call<{ job: JobView; status: Row }>('vm.migrate', {
      name: 'tux',
      to: `tcp:10.77.0.2:${PORT}`,
    });
    const last = counts(serial(a)).at(-1) ?? 0;
    expect(sent.job).toMatchObject({ kind: 'migrate', status: 'completed', percent: 100 });
    expect(sent.status).toMatchObject({ state: 'stopped', crashes: 0 });
    process.stderr.write(
      `[migrate] downtime ${sent.job.downtimeMs} ms, total ${sent.job.totalMs} ms, ${sent.job.transferredBytes} bytes; sender stopped at count ${last}\n`,
    );

    const done = await until('the receiver finishes', async () => {
      const r = await row(b);
      return r.job?.status === 'completed' ? r : undefined;
    });
    expect(done).toMatchObject({ state: 'running' });
    const after = await until('the guest counts at the receiver', async () => {
      const c = counts(serial(b));
      return c.length >= 3 ? c : undefined;
    });
    // the same guest: on from the sender's last count (a fresh boot would start at 1)
    expect(after[0]).toBeGreaterThanOrEqual(last);
    expect(after[0]).toBeLessThanOrEqual(last + 2);
    expect(after[2]).toBe((after[0] ?? 0) + 2);
  }, 120_000);

  it('a migration to where no one listens fails and the guest runs on at the sender', async () => {
    await b.call('vm.migrate', { name: 'tux', to: 'tcp:10.77.0.1:4445' }).then(
      () => expect.fail('migrated to nowhere'),
      (err: Error) => expect(err.message).toMatch(/migration to tcp:10.77.0.1:4445 failed/),
    );
    const r = await row(b);
    expect(r).toMatchObject({ state: 'running', job: { kind: 'migrate', status: 'failed' } });
    const n = counts(serial(b)).length;
    await until('the guest still counts', async () => (counts(serial(b)).length > n + 2 ? true : undefined));
  }, 60_000);

  it('a receiver that cannot load the stream fails the migration, and the guest runs on at the sender', async () => {
    // without QEMU's return path the sender would call it completed and quit: the guest lost
    await a.call('vm.receive', { name: 'small', from: `tcp:10.77.0.1:${PORT + 2}` });
    await b.call('vm.migrate', { name: 'tux', to: `tcp:10.77.0.1:${PORT + 2}` }).then(
      () => expect.fail('the sender called a stream nobody loaded completed'),
      (err: Error) => expect(err.message).toMatch(/failed/),
    );
    expect(await row(b)).toMatchObject({ state: 'running', job: { kind: 'migrate', status: 'failed' } });
    const n = counts(serial(b)).length;
    await until('the guest still counts at the sender', async () =>
      counts(serial(b)).length > n + 2 ? true : undefined,
    );
    const small = (await a.call<Row[]>('vm.list')).find((x) => x.name === 'small');
    expect(small?.state).not.toBe('running');
  }, 90_000);

  it('with a key: a stranger and a wrong or missing key are turned away, the receiver keeps listening, the key takes the guest', async () => {
    const key = 'correct-horse-battery-staple-42';
    const from = `tcp:10.77.0.1:${PORT + 4}`;
    await a.call('vm.receive', { name: 'tux', from, key });
    expect((await row(a)).job).toMatchObject({ kind: 'receive', status: 'active', keyed: true });
    // a stranger on the link reaches the port first with bytes of its own
    await inNs(NS[1], 'bash', '-c', `echo not-a-migration-stream > /dev/tcp/10.77.0.1/${PORT + 4}`);
    for (const wrong of [{ key: 'another-key-of-16-chars' }, {}]) {
      await b.call('vm.migrate', { name: 'tux', to: from, ...wrong }).then(
        () => expect.fail(`migrated with ${JSON.stringify(wrong)}`),
        (err: Error) => expect(err.message).toMatch(/failed/),
      );
      expect(await row(b)).toMatchObject({ state: 'running', job: { kind: 'migrate', status: 'failed' } });
      expect(await row(a)).toMatchObject({ state: 'running', job: { kind: 'receive', status: 'active' } });
    }
    const n = counts(serial(b)).length;
    await until('the guest still counts at the sender', async () =>
      counts(serial(b)).length > n + 2 ? true : undefined,
    );
    const sent = await b.call<{ job: JobView }>('vm.migrate', { name: 'tux', to: from, key });
    expect(sent.job).toMatchObject({ kind: 'migrate', status: 'completed', keyed: true });
    const last = counts(serial(b)).at(-1) ?? 0;
    await until('the receiver finishes', async () =>
      (await row(a)).job?.status === 'completed' ? true : undefined,
    );
    const after = await until('the guest counts on at the receiver', async () => {
      const c = counts(serial(a)).filter((x) => x >= last);
      return c.length >= 3 ? c : undefined;
    });
    expect(after[0]).toBeLessThanOrEqual(last + 2);
    // the key is gone from both run dirs and never reached a log
    for (const k of [a, b]) {
      expect(existsSync(join(k.dir, 'run', 'vm', 'tux', 'stream-key'))).toBe(false);
      expect(k.log()).not.toContain(key);
    }
  }, 120_000);
});
