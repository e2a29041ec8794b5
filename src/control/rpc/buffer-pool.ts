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
 * every other size to private memory (review 2026-12-03: 2.4 times slower uploads). Larger
 * attachments, and small ones (under `minSharedBytes`: their copy costs nothing), get private
 * memory. A connection holds at most `PoolShare.maxLent` slabs at once, so one peer cannot take
 * the bound from the others by leaving attachments unclaimed in its queue.
 *
 * After `quietMs` without a give-back the free slabs are let go, once `beforeQuietClear` (the
 * hashing thread's owner: it ends that thread, which may still refer to them) agrees.
 */
export class BufferPool {
  /** Free slabs, newest last. */
  private readonly free: Buffer[] = [];
  /** Bytes of the shared slabs this pool made and has not let go of (free or lent). */
  private shared = 0;
  /** Each shared slab's record (by its memory): whether it is lent, and under which share. */
  private readonly records = new WeakMap<ArrayBufferLike, SlabRecord>();
  /** A lent slab lost by its borrower (never given back) frees its share of the bound when collected. */
  private readonly lost = new FinalizationRegistry<SlabRecord>((r) => {
    this.shared -= this.slabBytes;
    if (r.lent) r.share?.add(-1);
  });
  readonly minSharedBytes: number;
  private readonly quietMs: number;
  private quietTimer: NodeJS.Timeout | undefined;
  /** Asked before the quiet clear; false puts it off by another `quietMs`. */
  beforeQuietClear: (() => boolean) | undefined;

  /**
   * @param maxSharedBytes shared slabs, free and lent together, never exceed this
   * @param slabBytes the size of every slab: a larger attachment gets private memory
   * @param opts.minSharedBytes a smaller attachment gets private memory (default 64 KiB)
   * @param opts.quietMs free slabs are let go this long after the last give-back (0: never)
   */
  constructor(
    readonly maxSharedBytes = 64 << 20,
    readonly slabBytes = 4 << 20,
    opts: { minSharedBytes?: number; quietMs?: number } = {},
  ) {
    this.minSharedBytes = opts.minSharedBytes ?? 64 << 10;
    this.quietMs = opts.quietMs ?? 0;
  }

  /** `n` bytes (contents undefined: the caller overwrites every byte before use), for `share`. */
  take(n: number, share?: PoolShare): Buffer {
    const cap = this.slabBytes;
    const fits = n <= cap && n >= this.minSharedBytes && (share?.hasRoom() ?? true);
    let slab = fits ? this.free.pop() : undefined;
    if (!slab && fits && this.shared + cap <= this.maxSharedBytes) {
      // shared memory: the hashing thread reads it without a copy (and it is never Node's small-buffer pool)
      slab = Buffer.from(new SharedArrayBuffer(cap));
      this.shared += cap;
      const record: SlabRecord = { lent: false, share: null };
      this.records.set(slab.buffer, record);
      this.lost.register(slab.buffer, record, slab.buffer);
    }
    // too large, too small, over the share or the bound: private memory (not Node's shared pool), not lent
    if (!slab) return Buffer.allocUnsafeSlow(n);
    const record = this.records.get(slab.buffer)!;
    record.lent = true;
    record.share = share ?? null;
    share?.add(1);
    return slab.subarray(0, n);
  }

  /** Return a buffer from `take` once nothing reads it; anything else (or a second give) is ignored. */
  give(buf: Buffer): void {
    const mem = buf.buffer;
    const record = this.records.get(mem);
    if (!record?.lent) return;
    record.lent = false;
    record.share?.add(-1);
    record.share = null;
    this.free.push(Buffer.from(mem, 0, this.slabBytes));
    this.armQuietTimer();
  }

  /**
   * Let every free slab go (an idle service need not keep tens of MiB mapped). Their memory is
   * freed once no thread refers to them: end the hashing thread too, or it may keep them.
   */
  clear(): void {
    clearTimeout(this.quietTimer);
    for (const slab of this.free) {
      this.lost.unregister(slab.buffer);
      this.records.delete(slab.buffer);
    }
    this.shared -= this.bytesFree;
    this.free.length = 0;
  }

  get bytesFree(): number {
    return this.free.length * this.slabBytes;
  }

  /** Shared slabs in existence, free or lent (at most maxSharedBytes). */
  get bytesShared(): number {
    return this.shared;
  }

  private armQuietTimer(): void {
    if (this.quietMs <= 0) return;
    clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => {
      if (this.beforeQuietClear?.() ?? true) this.clear();
      else this.armQuietTimer();
    }, this.quietMs);
    this.quietTimer.unref();
  }
}

interface SlabRecord {
  lent: boolean;
  /** The share it is lent under, if any. */
  share: PoolShare | null;
}

/**
 * One connection's part of the pool: at most `maxLent` of its attachments hold slabs at once. The
 * default 10 covers an upload's write window (4), the chunks its client keeps in flight (4) and
 * the one being read: at 6, bench uploads fell back to private memory (0.41 of their limit against
 * 0.63 at 10, 2026-12-03). Within a `parent` (every guest channel's shares in one), the parent's
 * limit holds too, so the guests together cannot take the slabs the root socket needs.
 */
export class PoolShare {
  lent = 0;
  constructor(
    readonly maxLent = 10,
    readonly parent: PoolShare | null = null,
  ) {}

  hasRoom(): boolean {
    return this.lent < this.maxLent && (this.parent?.hasRoom() ?? true);
  }

  add(n: number): void {
    this.lent += n;
    this.parent?.add(n);
  }
}

/** Every guest channel's share lies within this one: 12 of the pool's 16 slabs, 4 kept for root. */
export const guestShare = new PoolShare(12);

/**
 * The pool the control server's connections share: emptied a minute after the last give-back
 * (transfer/attachments.ts ends the idle hashing thread first).
 */
export const attachmentPool = new BufferPool(64 << 20, 4 << 20, { quietMs: 60_000 });
