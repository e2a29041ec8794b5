/**
 * Reusable buffers for `#bin` attachments. A fresh multi-MiB buffer costs a page fault per 4 KiB
 * on first touch (on these VMs that took longer than hashing the bytes: 0.3–0.5 s per 256 MiB);
 * a recycled one is already mapped. Whoever ends up holding an attachment may `give` it back once
 * nothing reads it any more; one never given back is simply collected. No I/O.
 */
export class BufferPool {
  /** Free slabs by capacity (powers of two), newest last. */
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
  /** Slabs lent out (by their memory): `give` takes back only these, and each only once. */
  private readonly lent = new WeakSet<ArrayBufferLike>();

  /**
   * @param maxFreeBytes free slabs kept beyond this are let go (the pool's own memory bound)
   * @param minSlab smallest slab: small attachments share a size class instead of one each
   */
  constructor(
    readonly maxFreeBytes = 32 << 20,
    readonly minSlab = 64 << 10,
  ) {}

  /** `n` bytes (contents undefined: the caller overwrites every byte before use). */
  take(n: number): Buffer {
    const cap = slabSize(n, this.minSlab);
    const slab = this.free.get(cap)?.pop();
    if (slab) this.freeBytes -= cap;
    // shared memory: the hashing thread reads it without a copy (and it is never Node's small-buffer pool)
    const s = slab ?? Buffer.from(new SharedArrayBuffer(cap));
    this.lent.add(s.buffer);
    return s.subarray(0, n);
  }

  /** Return a buffer from `take` once nothing reads it; anything else (or a second give) is ignored. */
  give(buf: Buffer): void {
    const mem = buf.buffer;
    if (!this.lent.has(mem)) return;
    this.lent.delete(mem);
    const cap = mem.byteLength;
    if (this.freeBytes + cap > this.maxFreeBytes) return;
    let list = this.free.get(cap);
    if (!list) {
      list = [];
      this.free.set(cap, list);
    }
    list.push(Buffer.from(mem, 0, cap));
    this.freeBytes += cap;
  }

  /** Drop every free slab (an idle service need not keep tens of MiB mapped). */
  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }

  get bytesFree(): number {
    return this.freeBytes;
  }
}

const slabSize = (n: number, min: number) => Math.max(min, 2 ** Math.ceil(Math.log2(Math.max(1, n))));

/**
 * The pool the control server's connections share. Emptied after a quiet minute, so the memory of
 * a finished upload goes back to the system.
 */
export const attachmentPool = new BufferPool();
let idleTimer: NodeJS.Timeout | undefined;

/** Give back to the shared pool, and empty it after a minute without returns. */
export function giveAttachment(buf: Buffer): void {
  attachmentPool.give(buf);
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => attachmentPool.clear(), 60_000);
  idleTimer.unref();
}
