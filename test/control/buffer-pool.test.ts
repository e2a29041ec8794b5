import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/control/rpc/buffer-pool.js';

describe('attachment buffer pool', () => {
  it('hands back exactly n bytes, and reuses the memory of a given-back buffer', () => {
    const pool = new BufferPool(1 << 20, 1024);
    const a = pool.take(3000);
    expect(a.length).toBe(3000);
    a.fill(7);
    pool.give(a);
    const b = pool.take(2500); // same size class (4096)
    expect(b.length).toBe(2500);
    expect(b.buffer).toBe(a.buffer);
    // a fresh one while b is out: never two holders of one slab
    expect(pool.take(2500).buffer).not.toBe(b.buffer);
  });

  it('takes a buffer back once only, and never one it did not lend', () => {
    const pool = new BufferPool(1 << 20, 1024);
    const a = pool.take(1024);
    pool.give(a);
    pool.give(a); // a second give would put one slab in the free list twice
    expect(pool.bytesFree).toBe(1024);
    const x = pool.take(1024);
    const y = pool.take(1024);
    expect(x.buffer).not.toBe(y.buffer);
    pool.give(Buffer.alloc(1024));
    pool.give(Buffer.from(new SharedArrayBuffer(1024)));
    expect(pool.bytesFree).toBe(0);
  });

  it('keeps at most maxFreeBytes of free slabs, and clear lets them all go', () => {
    const pool = new BufferPool(8192, 4096);
    const bufs = [pool.take(4096), pool.take(4096), pool.take(4096)];
    for (const b of bufs) pool.give(b);
    expect(pool.bytesFree).toBe(8192);
    pool.clear();
    expect(pool.bytesFree).toBe(0);
  });

  it('lends shared memory, which the hashing thread reads without a copy', () => {
    expect(new BufferPool().take(10).buffer).toBeInstanceOf(SharedArrayBuffer);
  });
});
