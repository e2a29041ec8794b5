import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { attachmentPool } from '../../src/control/rpc/buffer-pool.js';
import { manageTransferMemory } from '../../src/control/transfer/attachments.js';
import {
  hashWorkerRunning,
  OrderedHash,
  stopHashWorker,
  stopHashWorkerIfIdle,
} from '../../src/control/transfer/hash-worker.js';

describe('sha256 on the hashing thread', () => {
  it('gives the digest of the updates in the order they were made, shared memory or not', async () => {
    const parts = [randomBytes(1000), randomBytes(70_000), Buffer.alloc(0), randomBytes(3)];
    const shared = Buffer.from(new SharedArrayBuffer(70_000));
    parts[1]!.copy(shared);
    const h = new OrderedHash();
    await Promise.all([h.update(parts[0]!), h.update(shared), h.update(parts[2]!), h.update(parts[3]!)]);
    expect(await h.digest()).toBe(createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
  });

  it('keeps interleaved transfers apart', async () => {
    const a = new OrderedHash();
    const b = new OrderedHash();
    const x = randomBytes(5000);
    const y = randomBytes(7000);
    const pending = [a.update(x.subarray(0, 100)), b.update(y), a.update(x.subarray(100))];
    const dropped = new OrderedHash();
    void dropped.update(y);
    dropped.drop();
    await Promise.all(pending);
    expect(await a.digest()).toBe(createHash('sha256').update(x).digest('hex'));
    expect(await b.digest()).toBe(createHash('sha256').update(y).digest('hex'));
  });

  it('fails the hashes in progress when the worker goes, and starts a new one for the next', async () => {
    const big = Buffer.from(new SharedArrayBuffer(8 << 20));
    const h = new OrderedHash();
    const updates = Array.from({ length: 20 }, () =>
      h.update(big).then(
        () => 'ok',
        (e: Error) => e.message,
      ),
    );
    await stopHashWorker();
    const outcomes = await Promise.all(updates);
    expect(outcomes.at(-1)).toBe('sha256 worker stopped');
    const next = new OrderedHash();
    await next.update(Buffer.from('abc'));
    expect(await next.digest()).toBe(createHash('sha256').update('abc').digest('hex'));
  });

  it('never continues a hash on a new worker: the transfer that began on the old one fails', async () => {
    const h = new OrderedHash();
    await h.update(Buffer.from('first half'));
    await stopHashWorker();
    await expect(h.update(Buffer.from('second half'))).rejects.toThrow(
      /sha256 worker: ended during this transfer/,
    );
    await expect(h.digest()).rejects.toThrow(/sha256 worker: ended during this transfer/);
    // and no new thread was started for it (one started, then refused, kept the process alive)
    expect(hashWorkerRunning()).toBe(false);
  });

  it('stops when idle only: never under an open hash, which would fail its transfer', async () => {
    const h = new OrderedHash();
    await h.update(Buffer.from('a paused transfer'));
    expect(stopHashWorkerIfIdle()).toBe(false);
    expect(hashWorkerRunning()).toBe(true);
    // its commit: the digest is on its way, not yet answered
    const digest = h.digest();
    expect(stopHashWorkerIfIdle()).toBe(false);
    expect(await digest).toBe(createHash('sha256').update('a paused transfer').digest('hex'));
    expect(stopHashWorkerIfIdle()).toBe(true);
    expect(hashWorkerRunning()).toBe(false);
    // an aborted transfer's drop ends its hash too
    const dropped = new OrderedHash();
    await dropped.update(Buffer.from('x'));
    expect(stopHashWorkerIfIdle()).toBe(false);
    dropped.drop();
    expect(stopHashWorkerIfIdle()).toBe(true);
  });

  it('after a quiet minute, empties the attachment pool and ends the idle thread (which may hold its slabs)', async () => {
    const release = manageTransferMemory();
    const h = new OrderedHash();
    const slab = attachmentPool.take(1 << 20);
    await h.update(slab);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      attachmentPool.give(slab);
      expect(attachmentPool.bytesFree).toBe(attachmentPool.slabBytes);
      // a transfer paused between chunks: its hash is open, both wait another minute
      vi.advanceTimersByTime(60_000);
      expect(hashWorkerRunning()).toBe(true);
      expect(attachmentPool.bytesFree).toBe(attachmentPool.slabBytes);
      await h.digest(); // a worker's answer, not a timer
      vi.advanceTimersByTime(59_000);
      expect(attachmentPool.bytesFree).toBe(attachmentPool.slabBytes);
      vi.advanceTimersByTime(1_000);
      expect(hashWorkerRunning()).toBe(false);
      expect(attachmentPool.bytesFree).toBe(0);
      expect(attachmentPool.bytesShared).toBe(0);
    } finally {
      vi.useRealTimers();
      await release();
    }
  });

  it('hashes also in a process started with --input-type=module (its workers would be ESM)', () => {
    const mod = fileURLToPath(new URL('../../src/control/transfer/hash-worker.ts', import.meta.url));
    const script = `const { OrderedHash } = await import(${JSON.stringify(mod)});
const h = new OrderedHash();
await h.update(Buffer.from('abc'));
process.stdout.write(await h.digest());`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(out).toBe(createHash('sha256').update('abc').digest('hex'));
  });
});
