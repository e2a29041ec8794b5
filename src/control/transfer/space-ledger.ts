/**
 * Space promised to open uploads. A begin declares its size; the ledger admits it only when the
 * filesystem's free space, less what other open uploads on it still have to write and a margin,
 * holds it, and (for a guest) when the VM's quota holds it on top of what it already stored and
 * has open. The decision is pure; the caller supplies free space and stored bytes.
 */
export interface Reservation {
  /** Filesystem identity (st_dev of the target folder): reservations on one disk add up. */
  readonly fs: string;
  /** The uploading VM, or null for the local (root) socket, which has no quota. */
  readonly owner: string | null;
  readonly size: number;
  /** Bytes already written (they are already gone from free space). */
  received(): number;
}

export interface AdmitRequest {
  readonly fs: string;
  readonly owner: string | null;
  readonly size: number;
  /** statfs: bavail * bsize, now. */
  readonly freeBytes: number;
  readonly marginBytes: number;
  /** Per-VM quota in bytes (guests only), and what the VM's uploaded images hold now. */
  readonly quotaBytes?: number;
  readonly storedBytes?: number;
}

/** Null when admitted, else why not (the message names the numbers). */
export function admit(open: Iterable<Reservation>, req: AdmitRequest): string | null {
  let pendingOnFs = 0;
  let ownerOpen = 0;
  for (const r of open) {
    if (r.fs === req.fs) pendingOnFs += Math.max(0, r.size - r.received());
    if (req.owner !== null && r.owner === req.owner) ownerOpen += r.size;
  }
  const usable = req.freeBytes - pendingOnFs - req.marginBytes;
  if (req.size > usable)
    return `not enough space: ${req.size} bytes declared, ${Math.max(0, usable)} available (${req.freeBytes} free, ${pendingOnFs} promised to open uploads, ${req.marginBytes} kept free)`;
  if (req.owner !== null && req.quotaBytes !== undefined) {
    const used = (req.storedBytes ?? 0) + ownerOpen;
    if (used + req.size > req.quotaBytes)
      return `quota of VM "${req.owner}" exceeded: ${req.size} bytes declared, ${used} of ${req.quotaBytes} already used or open (imageDefaults.guestQuotaMiB)`;
  }
  return null;
}

/** The open reservations, shared by every connection of one server. */
export class SpaceLedger {
  private readonly open = new Set<Reservation>();

  /** Admit and hold `r`, or throw the refusal from `refuse`. */
  reserve(
    r: Reservation,
    req: Omit<AdmitRequest, 'fs' | 'owner' | 'size'>,
    refuse: (why: string) => Error,
  ): void {
    const why = admit(this.open, { ...req, fs: r.fs, owner: r.owner, size: r.size });
    if (why) throw refuse(why);
    this.open.add(r);
  }

  release(r: Reservation): void {
    this.open.delete(r);
  }

  /** Held bytes, for tests and status. */
  get held(): number {
    let n = 0;
    for (const r of this.open) n += r.size;
    return n;
  }

  get count(): number {
    return this.open.size;
  }
}
