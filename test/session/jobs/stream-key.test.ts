import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { adoptJob } from '../../../src/session/jobs/adopt-job.js';
import { newJob } from '../../../src/session/jobs/job.js';
import { sendStream } from '../../../src/session/jobs/qemu-stream.js';
import { savePaths } from '../../../src/session/jobs/saved-state.js';
import {
  migrationKeySchema,
  pskLine,
  useNoStreamKey,
  useStreamKey,
  writeStreamKey,
} from '../../../src/session/jobs/stream-key.js';
import { type JobHost, migrateVm, saveVm, takeIncoming } from '../../../src/session/jobs/vm-jobs.js';
import { QmpClient } from '../../../src/session/qmp.js';
import { tempDir } from '../../helpers/temp.js';

/**
 * The stream key against real QEMUs (no guest needed: an empty 32 MiB machine under TCG), through a
 * unix socket: what an adopted keyed receive does when kvmux died before the stream started.
 */
const KEY = 'correct-horse-battery-staple-42';
const procs: ChildProcess[] = [];
const clients: QmpClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    }
  }
});

async function qemu(
  dir: string,
  name: string,
  incoming: boolean,
): Promise<{ qmp: QmpClient; proc: ChildProcess }> {
  const sock = join(dir, `${name}.qmp`);
  const argv = ['-machine', 'accel=tcg', '-m', '32', '-display', 'none', '-nodefaults'];
  argv.push('-qmp', `unix:${sock},server=on,wait=off`, ...(incoming ? ['-incoming', 'defer'] : []));
  const proc = spawn('qemu-system-x86_64', argv, { stdio: 'ignore' });
  procs.push(proc);
  const qmp = await QmpClient.connect(sock, { label: name, timeoutMs: 10_000 });
  clients.push(qmp);
  return { qmp, proc };
}

function host(
  keyDir: string,
  proc: ChildProcess,
  qmp?: QmpClient,
): JobHost & { views: string[]; records: unknown[] } {
  const views: string[] = [];
  const records: unknown[] = [];
  return {
    name: 'tux',
    stateDir: keyDir,
    keyDir,
    views,
    records,
    handle: () =>
      ({
        exited: new Promise<void>((r) => (proc.exitCode !== null ? r() : proc.once('exit', () => r()))),
        qmp: async () => qmp ?? null,
      }) as never,
    setJob: (v, record) => {
      views.push(v.status);
      if (record) records.push(record);
    },
  };
}

const status = async (qmp: QmpClient) => (await qmp.execute<{ status: string }>('query-status')).status;

describe('migration stream key', () => {
  it('keys are 16-128 printable characters; the PSK file holds them in hex', () => {
    expect(migrationKeySchema.safeParse('short').success).toBe(false);
    expect(migrationKeySchema.safeParse('with a space in it!').success).toBe(false);
    expect(migrationKeySchema.safeParse(KEY).success).toBe(true);
    expect(pskLine('abcdefghijklmnop')).toBe('kvmux:6162636465666768696a6b6c6d6e6f70\n');
  });

  it('an adopted keyed receive listens again with its key: a plain sender is refused, the keyed one gets in', async () => {
    const dir = tempDir('kvmux-stream-key-');
    const keyDir = join(dir, 'stream-key');
    const uri = `unix:${join(dir, 'mig.sock')}`;
    writeStreamKey(keyDir, KEY);
    const recv = await qemu(dir, 'recv', true);
    const rec = { kind: 'receive' as const, target: uri, startedAt: new Date().toISOString(), keyed: true };
    const h = host(keyDir, recv.proc);
    const adopted = adoptJob(h, recv.qmp, rec, { disks: [], memoryMiB: 32 });
    // the plain sender: refused at the handshake, the receiver listens on
    const plain = await qemu(dir, 'plain', false);
    await useNoStreamKey(plain.qmp);
    for (let i = 0; i < 100 && !existsSync(uri.slice(5)); i++) await new Promise((r) => setTimeout(r, 50));
    const refused = await sendStream(plain.qmp, uri, newJob('migrate', uri, new Date()), {
      returnPath: true,
    });
    expect(refused.status).toBe('failed');
    expect(await status(recv.qmp)).toBe('inmigrate');
    // the keyed sender (its own copy of the key, as on another host)
    const sender = await qemu(dir, 'sender', false);
    const senderKeys = join(dir, 'sender-key');
    writeStreamKey(senderKeys, KEY);
    await useStreamKey(sender.qmp, senderKeys, 'client', { fresh: true });
    const sent = await sendStream(sender.qmp, uri, newJob('migrate', uri, new Date(), true), {
      returnPath: true,
    });
    expect(sent.status).toBe('completed');
    const end = await adopted;
    expect(end).toMatchObject({ status: 'completed', keyed: true });
    expect(await status(recv.qmp)).toBe('running');
    expect(existsSync(keyDir)).toBe(false);
  }, 60_000);

  it('an adopted keyed receive whose key is gone fails closed: it never listens without it', async () => {
    const dir = tempDir('kvmux-stream-key-');
    const uri = `unix:${join(dir, 'mig.sock')}`;
    const recv = await qemu(dir, 'recv', true);
    const rec = { kind: 'receive' as const, target: uri, startedAt: new Date().toISOString(), keyed: true };
    const end = await adoptJob(host(join(dir, 'stream-key'), recv.proc), recv.qmp, rec, {
      disks: [],
      memoryMiB: 32,
    });
    expect(end).toMatchObject({ status: 'failed' });
    expect(end.error).toMatch(/key is gone/);
    expect(existsSync(uri.slice(5))).toBe(false);
    await new Promise<void>((r) => (recv.proc.exitCode !== null ? r() : recv.proc.once('exit', () => r())));
  }, 30_000);

  it.each([
    ['keyed', KEY],
    ['plain', undefined],
  ])(
    'a save after a failed %s migration writes a plain state file: no TLS nor return path left',
    async (_, key) => {
      const dir = tempDir('kvmux-stream-key-');
      const vm = await qemu(dir, 'vm', false);
      const h = host(join(dir, 'stream-key'), vm.proc, vm.qmp);
      // nobody listens there: the migration fails and the guest goes on
      const failed = await migrateVm(h, `unix:${join(dir, 'nobody.sock')}`, { key }).catch((e: Error) => e);
      expect(failed).toBeInstanceOf(Error);
      expect(await status(vm.qmp)).toBe('running');
      // the record a restarted kvmux adopts the job from says whether it was keyed
      expect(h.records[0]).toMatchObject({ kind: 'migrate', ...(key ? { keyed: true } : {}) });
      const stateDir = join(dir, 'state');
      const saved = await Promise.race([
        saveVm({ ...h, stateDir }, { disks: [], memoryMiB: 32 }),
        new Promise<never>((_, no) => setTimeout(() => no(new Error('save hung for 20 s')), 20_000)),
      ]);
      expect(saved.bytes).toBeGreaterThan(0);
      // the file is QEMU's own stream (gzip of "QEVM"), which a restore can load
      const head = gunzipSync(readFileSync(savePaths(stateDir, 'tux').file)).subarray(0, 4);
      expect(head.toString('latin1')).toBe('QEVM');
    },
    60_000,
  );

  it.each([16, 128])(
    'a key of %i characters (the schema allows 16-128) carries a migration',
    async (len) => {
      const key = 'k'.repeat(len - 1).concat('!');
      expect(migrationKeySchema.safeParse(key).success).toBe(true);
      const dir = tempDir('kvmux-stream-key-');
      const uri = `unix:${join(dir, 'mig.sock')}`;
      const recv = await qemu(dir, 'recv', true);
      writeStreamKey(join(dir, 'recv-key'), key);
      await useStreamKey(recv.qmp, join(dir, 'recv-key'), 'server', { fresh: true });
      await recv.qmp.execute('migrate-incoming', { uri });
      const sender = await qemu(dir, 'sender', false);
      writeStreamKey(join(dir, 'send-key'), key);
      await useStreamKey(sender.qmp, join(dir, 'send-key'), 'client', { fresh: true });
      const sent = await sendStream(sender.qmp, uri, newJob('migrate', uri, new Date(), true));
      expect(sent.status).toBe('completed');
    },
    60_000,
  );

  it('a VM received with a key saves to a plain file later (its return path and TLS are not the save’s)', async () => {
    const dir = tempDir('kvmux-stream-key-');
    const uri = `unix:${join(dir, 'mig.sock')}`;
    const recv = await qemu(dir, 'recv', true);
    const h = host(join(dir, 'recv-key'), recv.proc, recv.qmp);
    const received = takeIncoming(h, { kind: 'receive', uri, target: uri, key: KEY });
    for (let i = 0; i < 100 && !existsSync(uri.slice(5)); i++) await new Promise((r) => setTimeout(r, 50));
    const sender = await qemu(dir, 'sender', false);
    writeStreamKey(join(dir, 'send-key'), KEY);
    await useStreamKey(sender.qmp, join(dir, 'send-key'), 'client', { fresh: true });
    const sent = await sendStream(sender.qmp, uri, newJob('migrate', uri, new Date(), true), {
      returnPath: true,
    });
    expect(sent.status).toBe('completed');
    expect((await received).status).toBe('completed');
    const stateDir = join(dir, 'state');
    const saved = await Promise.race([
      saveVm({ ...h, stateDir }, { disks: [], memoryMiB: 32 }),
      new Promise<never>((_, no) => setTimeout(() => no(new Error('save hung for 20 s')), 20_000)),
    ]);
    expect(saved.bytes).toBeGreaterThan(0);
  }, 60_000);
});
