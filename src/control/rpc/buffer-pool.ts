/**
 * Reusable buffers for `#bin` attachments. A fresh multi-MiB buffer costs a page fault per 4 KiB
 * on first touch (on these VMs that took longer than hashing the bytes: 0.3–0.5 s per 256 MiB);
 * a recycled one is already mapped. Whoever ends up holding an attachment may `give` it back once
 * nothing reads it any more. No I/O.
 *
 * Slabs are SharedArrayBuffers, so the hashing thread reads them without a copy. That thread then
 * holds them too, until its own garbage collector runs, and hashing makes almost no garbage: a slab
 * the pool let go of was kept alive there, and a peer choosing its chunk sizes could grow the
 * service's memory without bound (review 2026-12-03: 58 → 455 MiB over a 384 MiB upload). So the
 * shared memory is bounded: at most `maxSharedBytes` of slabs exist at once, free or lent, and a
 * given-back slab is always kept. Past the bound, `take` hands out private memory (copied to the
 * hashing thread, and collected there like any other garbage). Only `clear` lets slabs go; its
 * caller ends the hashing thread with them (see transfer/attachments.ts).
 *
 * Every slab has one size (`slabBytes`, the largest attachment by default), so any free slab
 * serves any attachment: with a size class each, slabs of one size could fill the bound and leave
 * every other size to private memory (review 2026-12-03: 2.4 times slower uploads). Only the bytes
 * an attachment fills are ever touched, so a small one costs no more memory in a large slab.
 * Larger attachments get private memory.
 */
export class BufferPool {
  /** Free slabs, newest last. */
  private readonly free: Buffer[] = [];
  /** Bytes of the shared slabs this pool made and has not let go of (free or lent). */
  private shared = 0;
  /** Slabs lent out (by their memory): `give` takes back only these, and each only once. */
  private readonly lent = new WeakSet<ArrayBufferLike>();
  /** A lent slab lost by its borrower (never given back) frees its share of the bound when collected. */
  private readonly lost = new FinalizationRegistry<number>((cap) => {
    this.shared -= cap;
  });

  /**
   * @param maxSharedBytes shared slabs, free and lent together, never exceed this
   * @param slabBytes the size of every slab: a larger attachment gets private memory
   */
  constructor(
    readonly maxSharedBytes = 64 << 20,
    readonly slabBytes = 4 << 20,
  ) {}

  /** `n` bytes (contents undefined: the caller overwrites every byte before use). */
  take(n: number): Buffer {
    const cap = this.slabBytes;
    let slab = n <= cap ? this.free.pop() : undefined;
    if (!slab && n <= cap && this.shared + cap <= this.maxSharedBytes) {
      // shared memory: the hashing thread reads it without a copy (and it is never Node's small-buffer pool)
      slab = Buffer.from(new SharedArrayBuffer(cap));
      this.shared += cap;
      this.lost.register(slab.buffer, cap, slab.buffer);
    }
    // too large, or over the bound: private memory (its own, not Node's shared pool), not lent
    if (!slab) return Buffer.allocUnsafeSlow(n);
    this.lent.add(slab.buffer);
    return slab.subarray(0, n);
  }

  /** Return a buffer from `take` once nothing reads it; anything else (or a second give) is ignored. */
  give(buf: Buffer): void {
    const mem = buf.buffer;
    if (!this.lent.has(mem)) return;
    this.lent.delete(mem);
    this.free.push(Buffer.from(mem, 0, mem.byteLength));
  }

  /**
   * Let every free slab go (an idle service need not keep tens of MiB mapped). Their memory is
   * freed once no thread refers to them: end the hashing thread too, or it may keep them.
   */
  clear(): void {
    for (const slab of this.free) {
      this.lost.unregister(slab.buffer);
      this.shared -= slab.buffer.byteLength;
    }
    this.free.length = 0;
  }

  get bytesFree(): number {
    return this.free.length * this.slabBytes;
  }

  /** Shared slabs in existence, free or lent (at most maxSharedBytes). */
  get bytesShared(): number {
    return this.shared;
  }
}

/** The pool the control server's connections share (emptied when quiet: transfer/attachments.ts). */
export const attachmentPool = new BufferPool();
