import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/control/rpc/buffer-pool.js';
import { ChunkedTransfer } from '../../src/control/transfer/chunked-file.js';
import { OrderedHash, stopHashWorker } from '../../src/control/transfer/hash-worker.js';
import { mainThreadCpu, tempDir } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('chunked transfer to a temp file', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir();
  });
  afterEach(() => t.cleanup());

  it('keeps several writes in flight, starts writeback during a large transfer, and lands every byte', async () => {
    const data = randomBytes(72 << 20);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(data));
    const chunk = 4 << 20;
    let peak = 0;
    const released: number[] = [];
    const pool = new BufferPool();
    for (let off = 0; off < data.length; off += chunk) {
      // shared memory the hashing thread reads in place, held until released: overwritten after
      // release, as the pool's next read would (a release before the hash ended spoils the digest)
      const part = pool.take(chunk);
      data.copy(part, 0, off, off + chunk);
      await x.write(off, part, (b) => {
        released.push(off);
        b.fill(0);
      });
      peak = Math.max(peak, x.writesInFlight);
    }
    expect(peak).toBeGreaterThan(1);
    expect(x.writebacks).toBeGreaterThanOrEqual(1);
    await x.commit(join(t.dir, 'out.img'), { replace: false });
    expect(released.sort((a, b) => a - b)).toEqual(
      Array.from({ length: data.length / chunk }, (_, i) => i * chunk),
    );
    expect(readFileSync(join(t.dir, 'out.img')).equals(data)).toBe(true);
  });

  it("hashes on the hashing thread: the event loop (kvmux's input thread) does not pay for sha256", async () => {
    const chunk = 4 << 20;
    const blocks = [0, 1, 2, 3].map((i) => {
      const b = new BufferPool().take(chunk);
      b.fill(i * 51 + 7);
      return b;
    });
    const n = 96; // 384 MiB: ~0.26 s of sha256 on one core with SHA extensions, ~0.7 s without
    const want = createHash('sha256');
    for (let i = 0; i < n; i++) want.update(blocks[i % 4]!);
    const x = await ChunkedTransfer.open(t.dir, n * chunk, want.digest('hex'));
    const cpu0 = mainThreadCpu();
    for (let i = 0; i < n; i++) await x.write(i * chunk, blocks[i % 4]!);
    await x.commit(join(t.dir, 'out.img'), { replace: false });
    const used = mainThreadCpu() - cpu0;
    expect(used, `main thread used ${used.toFixed(2)} s of CPU`).toBeLessThan(0.12);
  });

  it('gives a chunk back only once its hash has read it, also when the disk is done first', async () => {
    // the hashing thread is busy with another transfer's 64 MiB (tens of ms) while this chunk's
    // write lands in the page cache in well under a millisecond
    const busy = new OrderedHash();
    const queued = busy.update(Buffer.from(new SharedArrayBuffer(64 << 20)));
    const data = randomBytes(1 << 20);
    const part = new BufferPool().take(data.length);
    data.copy(part);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(data));
    let busyHashed = false;
    void queued.then(() => {
      busyHashed = true;
    });
    // whether the busy hash (queued before this chunk's) had ended when the chunk came back
    let releasedAfterHash: boolean | undefined;
    await x.write(0, part, (b) => {
      releasedAfterHash = busyHashed;
      b.fill(0); // as the pool's next read would
    });
    await x.commit(join(t.dir, 'out.img'), { replace: false });
    expect(releasedAfterHash).toBe(true);
    expect(readFileSync(join(t.dir, 'out.img')).equals(data)).toBe(true);
    busy.drop();
  });

  it('a hashing thread lost mid-transfer fails the transfer as such, and keeps nothing', async () => {
    const data = randomBytes(2 << 20);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(data));
    await x.write(0, data.subarray(0, 1 << 20));
    await stopHashWorker();
    const failure = x
      .write(1 << 20, data.subarray(1 << 20))
      .then(() => x.commit(join(t.dir, 'out.img'), { replace: false }));
    await expect(failure).rejects.toThrow(
      /: hashing failed: sha256 worker (stopped|: ended during this transfer \(its hash went with it\)); transfer aborted, nothing kept$/,
    );
    expect(readdirSync(t.dir)).toEqual([]);
  });

  it('runs the inspection beside the fsync and installs nothing when it refuses', async () => {
    const data = randomBytes(1 << 20);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(data));
    await x.write(0, data);
    let inspected = '';
    await expect(
      x.commit(join(t.dir, 'out.img'), {
        replace: false,
        inspect: async (tmp) => {
          inspected = readFileSync(tmp).equals(data) ? 'complete' : 'partial';
          throw new Error('refused by inspection');
        },
      }),
    ).rejects.toThrow(/cannot install: refused by inspection/);
    expect(inspected).toBe('complete');
    expect(readdirSync(t.dir)).toEqual([]);
  });

  it('refuses a wrong sha256 computed on the hashing thread, and keeps nothing', async () => {
    const data = randomBytes(3 << 20);
    const x = await ChunkedTransfer.open(t.dir, data.length, sha(randomBytes(8)));
    for (let off = 0; off < data.length; off += 1 << 20)
      await x.write(off, data.subarray(off, off + (1 << 20)));
    await expect(x.commit(join(t.dir, 'out.img'), { replace: false })).rejects.toThrow(/sha256 mismatch/);
    expect(readdirSync(t.dir)).toEqual([]);
  });

  const strace = spawnSync('strace', ['-V']).status === 0;
  it.skipIf(!strace)(
    'fsyncs the temp file before it gets its name, and the folder after (traced with strace; skipped where strace is missing)',
    async () => {
      const data = randomBytes(1 << 20);
      const x = await ChunkedTransfer.open(t.dir, data.length, sha(data));
      await x.write(0, data);
      const log = join(t.dir, 'strace.log');
      // this test process itself, every thread: the thread pool does the syncs
      const tracer = spawn('strace', [
        '-f',
        '-qq',
        '-p',
        String(process.pid),
        '-e',
        'trace=fsync,linkat,link',
        '-o',
        log,
      ]);
      try {
        for (let i = 0; i < 100 && !existsSync(log); i++) await sleep(20);
        await sleep(300); // attached to every thread
        await x.commit(join(t.dir, 'out.img'), { replace: false });
      } finally {
        const exited = new Promise((r) => tracer.once('exit', r));
        tracer.kill('SIGINT');
        await exited;
      }
      const calls = readFileSync(log, 'utf8')
        .split('\n')
        .map((l) => /(fsync|link(?:at)?)\(/.exec(l)?.[1])
        .filter((c) => c !== undefined);
      expect(calls).toEqual(['fsync', expect.stringMatching(/^link/), 'fsync']);
    },
  );

  it('reports a failed write only once the temp file is gone, to whichever call comes first', async () => {
    const mnt = join(t.dir, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    try {
      const data = randomBytes(1536 << 10);
      const x = await ChunkedTransfer.open(mnt, data.length, sha(data)); // fits now…
      writeFileSync(join(mnt, 'other-tenant'), randomBytes(1 << 20)); // …not once this lands
      let failure = '';
      let tempFileThen = true;
      for (let off = 0; off < data.length && !failure; off += 64 << 10) {
        failure = await x.write(off, data.subarray(off, off + (64 << 10))).then(
          () => '',
          (err: Error) => err.message,
        );
        tempFileThen = existsSync(x.tmpPath);
      }
      // the calls that follow, one event-loop turn apart, all land inside the removal if it is slow
      for (let i = 0; i < 20 && failure; i++) {
        const again = await x.write(x.bytesReceived, Buffer.alloc(1)).then(
          () => '',
          (err: Error) => err.message,
        );
        expect(again).toMatch(/disk full \(ENOSPC\).*nothing kept/);
        tempFileThen &&= existsSync(x.tmpPath);
        await nextTurn();
      }
      expect(failure).toMatch(/disk full \(ENOSPC\).*nothing kept/);
      expect(tempFileThen).toBe(false);
      expect(readdirSync(mnt)).toEqual(['other-tenant']);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
