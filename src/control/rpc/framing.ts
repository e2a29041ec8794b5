/**
 * Newline-delimited framing with a hard line limit, and a nesting-depth scan that runs before
 * JSON.parse so a hostile `[[[[…` never reaches the parser. No I/O.
 *
 * Binary attachment (contract extension): a line `#bin N` (N decimal, at most the line limit) is
 * followed by exactly N raw bytes, which ride on the next JSON line (request or reply). `#` never
 * starts JSON, so a peer that does not use it is unaffected; bulk data then skips base64.
 */
export type FrameEvent =
  | { type: 'line'; line: Buffer; binary?: Buffer }
  | { type: 'overflow'; limit: number };

const NL = 0x0a;
const BIN_HEADER = /^#bin (\d{1,10})$/;

/** The header line that announces `n` raw bytes. */
export const binaryHeader = (n: number) => `#bin ${n}\n`;

/** Splits a byte stream into lines of at most `maxLine` bytes; a longer line is dropped whole. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  /** True while discarding the rest of an over-long line. */
  private skipping = false;
  /** Raw bytes still owed to an announced attachment (-1: none), and those received. */
  private binaryLeft = -1;
  private binaryParts: Buffer[] = [];
  private binaryDrop = false;
  /** A complete attachment waiting for its JSON line. */
  private attachment: Buffer | undefined;

  constructor(readonly maxLine: number) {}

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
    return out;
  }

  private take(piece: Buffer, out: FrameEvent[]): void {
    if (this.skipping || piece.length === 0) return;
    if (this.size + piece.length > this.maxLine) {
      this.parts = [];
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
    this.size = 0;
    this.skipping = false;
  }

  /** An attachment over the line limit is read past and dropped, and reported like a long line. */
  private startBinary(n: number, out: FrameEvent[]): void {
    this.binaryLeft = n;
    this.binaryParts = [];
    this.binaryDrop = n > this.maxLine;
    this.attachment = undefined;
    if (this.binaryDrop) out.push({ type: 'overflow', limit: this.maxLine });
    if (n === 0) this.endBinary();
  }

  private takeBinary(chunk: Buffer, start: number): number {
    const take = Math.min(this.binaryLeft, chunk.length - start);
    if (!this.binaryDrop && take > 0) this.binaryParts.push(Buffer.from(chunk.subarray(start, start + take)));
    this.binaryLeft -= take;
    if (this.binaryLeft === 0) this.endBinary();
    return start + take;
  }

  private endBinary(): void {
    this.binaryLeft = -1;
    if (!this.binaryDrop) this.attachment = Buffer.concat(this.binaryParts);
    this.binaryParts = [];
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
