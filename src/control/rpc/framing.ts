/**
 * Newline-delimited framing with a hard line limit, and a nesting-depth scan that runs before
 * JSON.parse so a hostile `[[[[…` never reaches the parser. No I/O.
 *
 * Binary attachment (contract extension): a line `#bin N` (N decimal, at most the line limit) is
 * followed by exactly N raw bytes, which ride on the next JSON line (request or reply). `#` never
 * starts JSON, so a peer that does not use it is unaffected; bulk data then skips base64.
 */
import type { BufferPool, PoolShare } from './buffer-pool.js';

export type FrameEvent =
  | { type: 'line'; line: Buffer; binary?: Buffer }
  | { type: 'overflow'; limit: number };

const NL = 0x0a;
/** An attachment rest worth reading in place (readTarget). */
const READ_IN_PLACE_MIN = 16 << 10;
const BIN_HEADER = /^#bin (\d{1,10})$/;

/** The header line that announces `n` raw bytes. */
export const binaryHeader = (n: number) => `#bin ${n}\n`;

/** Splits a byte stream into lines of at most `maxLine` bytes; a longer line is dropped whole. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  /** True while discarding the rest of an over-long line. */
  private skipping = false;
  /** Raw bytes still owed to an announced attachment (-1: none). */
  private binaryLeft = -1;
  /**
   * The attachment, allocated whole at its header (at most `maxLine` bytes) and filled in place:
   * one copy out of the socket's buffers, no per-piece Buffers for the GC. Null while dropping one.
   */
  private binaryBuf: Buffer | null = null;
  private binaryAt = 0;
  /** A complete attachment waiting for its JSON line. */
  private attachment: Buffer | undefined;

  /** `parts[0..owned)` are copies; the rest still view the caller's chunk. */
  private owned = 0;
  private readonly pool: BufferPool | undefined;
  private readonly share: PoolShare | undefined;
  private readonly reusedChunks: boolean;

  /**
   * @param opts.pool where attachment buffers come from (the receiver gives them back there)
   * @param opts.share this stream's part of the pool
   * @param opts.reusedChunks the caller overwrites each chunk after `push` returns (a socket's own
   *   read buffer): a line still open at the end of a chunk is then copied
   */
  constructor(
    readonly maxLine: number,
    opts: { pool?: BufferPool; share?: PoolShare; reusedChunks?: boolean } = {},
  ) {
    this.pool = opts.pool;
    this.share = opts.share;
    this.reusedChunks = opts.reusedChunks ?? false;
  }

  /** The stream has ended: an attachment being read, or waiting for its line, goes back to the pool. */
  dispose(): void {
    if (this.attachment) this.pool?.give(this.attachment);
    if (this.binaryBuf) this.pool?.give(this.binaryBuf);
    this.attachment = undefined;
    this.binaryBuf = null;
    this.binaryLeft = -1;
  }

  push(chunk: Buffer): FrameEvent[] {
    const out: FrameEvent[] = [];
    let start = 0;
    while (start <= chunk.length) {
      if (this.binaryLeft >= 0) {
        start = this.takeBinary(chunk, start);
        if (this.binaryLeft >= 0) break;
        continue;
      }
      const nl = chunk.indexOf(NL, start);
      const end = nl < 0 ? chunk.length : nl;
      this.take(chunk.subarray(start, end), out);
      if (nl < 0) break;
      this.finishLine(out);
      start = nl + 1;
    }
    if (this.reusedChunks) this.ownParts();
    return out;
  }

  private ownParts(): void {
    for (; this.owned < this.parts.length; this.owned++)
      this.parts[this.owned] = Buffer.from(this.parts[this.owned]!);
  }

  private take(piece: Buffer, out: FrameEvent[]): void {
    if (this.skipping || piece.length === 0) return;
    if (this.size + piece.length > this.maxLine) {
      this.parts = [];
      this.owned = 0;
      this.size = 0;
      this.skipping = true;
      out.push({ type: 'overflow', limit: this.maxLine });
      return;
    }
    this.parts.push(piece);
    this.size += piece.length;
  }

  private finishLine(out: FrameEvent[]): void {
    if (!this.skipping && this.size > 0) {
      const line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
      const header = line.length <= 16 && line[0] === 0x23 ? BIN_HEADER.exec(line.toString('latin1')) : null;
      if (header) this.startBinary(Number(header[1]), out);
      else {
        // copy: the piece is a view of a socket buffer that Node may reuse
        const ev: FrameEvent = { type: 'line', line: this.parts.length === 1 ? Buffer.from(line) : line };
        if (this.attachment) ev.binary = this.attachment;
        this.attachment = undefined;
        out.push(ev);
      }
    }
    this.parts = [];
    this.owned = 0;
    this.size = 0;
    this.skipping = false;
  }

  /** An attachment over the line limit is read past and dropped, and reported like a long line. */
  private startBinary(n: number, out: FrameEvent[]): void {
    this.binaryLeft = n;
    this.binaryAt = 0;
    // an attachment no line claimed is superseded
    if (this.attachment) this.pool?.give(this.attachment);
    this.attachment = undefined;
    const drop = n > this.maxLine;
    // allocUnsafeSlow: its own memory (not Node's shared pool); every byte is overwritten before use
    this.binaryBuf = drop ? null : (this.pool?.take(n, this.share) ?? Buffer.allocUnsafeSlow(n));
    if (drop) out.push({ type: 'overflow', limit: this.maxLine });
    if (n === 0) this.endBinary();
  }

  /**
   * The memory the next bytes of the stream belong in, when a reader can put them there itself:
   * the rest of an attachment being received, if at least `min` bytes (smaller rests are not worth
   * a read of their own). Null otherwise, and while an over-long attachment is being dropped.
   */
  readTarget(min = READ_IN_PLACE_MIN): Buffer | null {
    if (!this.binaryBuf || this.binaryLeft < min) return null;
    return this.binaryBuf.subarray(this.binaryAt, this.binaryAt + this.binaryLeft);
  }

  /** `n` bytes (at most what readTarget() offered) were read into its memory. */
  landed(n: number): void {
    if (!this.binaryBuf || n > this.binaryLeft)
      throw new Error(`landed ${n} bytes where ${this.binaryLeft} were owed`);
    this.binaryAt += n;
    this.binaryLeft -= n;
    if (this.binaryLeft === 0) this.endBinary();
  }

  private takeBinary(chunk: Buffer, start: number): number {
    const take = Math.min(this.binaryLeft, chunk.length - start);
    if (this.binaryBuf && take > 0) chunk.copy(this.binaryBuf, this.binaryAt, start, start + take);
    this.binaryAt += take;
    this.binaryLeft -= take;
    if (this.binaryLeft === 0) this.endBinary();
    return start + take;
  }

  private endBinary(): void {
    this.binaryLeft = -1;
    if (this.binaryBuf) this.attachment = this.binaryBuf;
    this.binaryBuf = null;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Deepest `[`/`{` nesting outside strings; stops early once `limit` is passed. One pass, plain
 * byte compares (no Set lookups): it runs on every line a guest sends, before JSON.parse.
 */
export function jsonDepth(buf: Buffer, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  const n = buf.length;
  for (let i = 0; i < n; i++) {
    const c = buf[i]!;
    if (c === QUOTE) {
      i = stringEnd(buf, i);
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return max;
}

/** Index of the closing quote of the string opening at `open`; jumps with indexOf (base64 chunks are long). */
function stringEnd(buf: Buffer, open: number): number {
  let i = open;
  for (;;) {
    const q = buf.indexOf(QUOTE, i + 1);
    if (q < 0) return buf.length;
    let bs = 0;
    while (buf[q - 1 - bs] === BACKSLASH) bs++;
    if (bs % 2 === 0) return q;
    i = q;
  }
}
