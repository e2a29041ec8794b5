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
 */
export class BufferPool {
  /** Free slabs by capacity (powers of two), newest last. */
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
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
   * @param minSlab smallest slab: small attachments share a size class instead of one each
   */
  constructor(
    readonly maxSharedBytes = 64 << 20,
    readonly minSlab = 64 << 10,
  ) {}

  /** `n` bytes (contents undefined: the caller overwrites every byte before use). */
  take(n: number): Buffer {
    const cap = slabSize(n, this.minSlab);
    let slab = this.free.get(cap)?.pop();
    if (slab) this.freeBytes -= cap;
    else if (this.shared + cap <= this.maxSharedBytes) {
      // shared memory: the hashing thread reads it without a copy (and it is never Node's small-buffer pool)
      slab = Buffer.from(new SharedArrayBuffer(cap));
      this.shared += cap;
      this.lost.register(slab.buffer, cap, slab.buffer);
    } else {
      // over the bound: private memory (its own, not Node's shared pool), not lent
      return Buffer.allocUnsafeSlow(n);
    }
    this.lent.add(slab.buffer);
    return slab.subarray(0, n);
  }

  /** Return a buffer from `take` once nothing reads it; anything else (or a second give) is ignored. */
  give(buf: Buffer): void {
    const mem = buf.buffer;
    if (!this.lent.has(mem)) return;
    this.lent.delete(mem);
    const cap = mem.byteLength;
    let list = this.free.get(cap);
    if (!list) {
      list = [];
      this.free.set(cap, list);
    }
    list.push(Buffer.from(mem, 0, cap));
    this.freeBytes += cap;
  }

  /**
   * Let every free slab go (an idle service need not keep tens of MiB mapped). Their memory is
   * freed once no thread refers to them: end the hashing thread too, or it may keep them.
   */
  clear(): void {
    for (const list of this.free.values()) for (const slab of list) this.lost.unregister(slab.buffer);
    this.free.clear();
    this.shared -= this.freeBytes;
    this.freeBytes = 0;
  }

  get bytesFree(): number {
    return this.freeBytes;
  }

  /** Shared slabs in existence, free or lent (at most maxSharedBytes). */
  get bytesShared(): number {
    return this.shared;
  }
}

const slabSize = (n: number, min: number) => Math.max(min, 2 ** Math.ceil(Math.log2(Math.max(1, n))));

/** The pool the control server's connections share (emptied when quiet: transfer/attachments.ts). */
export const attachmentPool = new BufferPool();
