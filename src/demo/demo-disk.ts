import { writeFileSync } from 'node:fs';
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyphRows } from './demo-font.js';

/**
 * A 1 MiB raw disk whose boot sector paints the VGA text screen in one colour, writes the VM's name
 * in big block letters, then idles in a hlt loop echoing typed keys (BIOS int 16h) on row 22.
 * Used by the demo and by the tests that must tell VMs apart on screenshots.
 */

export interface DemoColour {
  /** VGA background colour 0-7 (bit 3 would blink). */
  readonly bg: number;
  /** VGA foreground colour of the big letters, 0-15. */
  readonly fg: number;
  /** RGB of `bg` as QEMU's VGA renders it (6-bit DAC: 0x2a << 2 = 0xa8), for screenshot checks. */
  readonly rgb: readonly [number, number, number];
}

export const DEMO_PALETTE: readonly DemoColour[] = [
  { bg: 1, fg: 0xe, rgb: [0x00, 0x00, 0xa8] },
  { bg: 4, fg: 0xf, rgb: [0xa8, 0x00, 0x00] },
  { bg: 2, fg: 0xf, rgb: [0x00, 0xa8, 0x00] },
  { bg: 5, fg: 0xe, rgb: [0xa8, 0x00, 0xa8] },
  { bg: 3, fg: 0xf, rgb: [0x00, 0xa8, 0xa8] },
  { bg: 6, fg: 0xf, rgb: [0xa8, 0x54, 0x00] },
];

export interface DemoDiskOptions {
  /** Shown big (upper-cased) and as a caption; [a-z0-9 -], at most 13 characters are drawn big. */
  readonly text: string;
  /** Index into DEMO_PALETTE; default derived from the text. */
  readonly colour?: number;
}

const COLS = 80;
const TOP_ROW = 3;
const CAPTION_ROW = 19;
const ORIGIN = 0x7c00;

export function demoColourIndex(opts: DemoDiskOptions): number {
  if (opts.colour !== undefined) return opts.colour % DEMO_PALETTE.length;
  let h = 0;
  for (const ch of opts.text) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % DEMO_PALETTE.length;
}

/** Big-letter bitmap: one bit per text cell, 80 cells (10 bytes) per row, MSB = leftmost. */
export function bigTextBitmap(text: string): { bytes: Uint8Array; rows: number } {
  const chars = [...text.slice(0, 13)];
  const width = chars.length * (GLYPH_WIDTH + 1) - 1;
  const hscale = Math.max(1, Math.min(3, Math.floor(COLS / Math.max(1, width))));
  const vscale = 2;
  const left = Math.max(0, Math.floor((COLS - width * hscale) / 2));
  const rows = GLYPH_HEIGHT * vscale;
  const bytes = new Uint8Array(rows * (COLS / 8));
  chars.forEach((ch, i) => {
    glyphRows(ch).forEach((row, y) => {
      row.forEach((on, x) => {
        if (!on) return;
        for (let sy = 0; sy < vscale; sy++)
          for (let sx = 0; sx < hscale; sx++) {
            const col = left + (i * (GLYPH_WIDTH + 1) + x) * hscale + sx;
            const r = y * vscale + sy;
            if (col < COLS) bytes[r * (COLS / 8) + (col >> 3)]! |= 0x80 >> (col & 7);
          }
      });
    });
  });
  return { bytes, rows };
}

/** Tiny assembler: raw bytes, labels, rel8 jumps and absolute 16-bit addresses of labels. */
class Asm {
  readonly out: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string; kind: 'rel8' | 'abs16' }[] = [];
  b(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  w(value: number): this {
    return this.b(value & 0xff, (value >> 8) & 0xff);
  }
  label(name: string): this {
    this.labels.set(name, this.out.length);
    return this;
  }
  rel8(opcode: number, label: string): this {
    this.b(opcode);
    this.fixups.push({ at: this.out.length, label, kind: 'rel8' });
    return this.b(0);
  }
  abs16(label: string): this {
    this.fixups.push({ at: this.out.length, label, kind: 'abs16' });
    return this.b(0, 0);
  }
  link(): number[] {
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`demo boot sector: no label "${f.label}"`);
      if (f.kind === 'abs16') {
        this.out[f.at] = (ORIGIN + target) & 0xff;
        this.out[f.at + 1] = ((ORIGIN + target) >> 8) & 0xff;
      } else {
        const rel = target - (f.at + 1);
        if (rel < -128 || rel > 127) throw new Error(`demo boot sector: jump to "${f.label}" too far`);
        this.out[f.at] = rel & 0xff;
      }
    }
    return this.out;
  }
}

/** The 512-byte boot sector for `opts`. */
export function bootSector(opts: DemoDiskOptions): Uint8Array {
  const { bg, fg } = DEMO_PALETTE[demoColourIndex(opts)]!;
  const bgAttr = (bg << 4) | 0x0f;
  const big = bigTextBitmap(opts.text);
  const caption = `kvmux demo VM "${opts.text}"`.slice(0, COLS);
  const a = new Asm();
  a.b(0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xd0) // xor ax,ax; mov ds,ax; mov ss,ax
    .b(0xbc)
    .w(ORIGIN) // mov sp,0x7c00
    .b(0xb8, 0x00, 0xb8, 0x8e, 0xc0, 0xfc) // mov ax,0xb800; mov es,ax; cld
    .b(0xb4, 0x01, 0xb9, 0x00, 0x20, 0xcd, 0x10) // hide the cursor (int 10h ah=1, cx=0x2000)
    .b(0x31, 0xff, 0xb9)
    .w(COLS * 25) // xor di,di; mov cx,2000
    .b(0xb8, 0x20, bgAttr, 0xf3, 0xab) // mov ax,attr:' '; rep stosw
    .b(0xbe)
    .abs16('bitmap') // mov si,bitmap
    .b(0xbf)
    .w(TOP_ROW * COLS * 2) // mov di,row offset
    .b(0xba)
    .w(big.rows) // mov dx,rows
    .label('row')
    .b(0xbb)
    .w(COLS / 8) // mov bx,10
    .label('byte')
    .b(0xac, 0xb1, 0x08) // lodsb; mov cl,8
    .label('bit')
    .b(0xd0, 0xe0) // shl al,1
    .rel8(0x73, 'skip') // jnc skip
    .b(0x26, 0xc7, 0x05, 0xdb, (bg << 4) | fg) // mov word [es:di], attr:0xdb (full block)
    .label('skip')
    .b(0x47, 0x47, 0xfe, 0xc9) // inc di; inc di; dec cl
    .rel8(0x75, 'bit')
    .b(0x4b)
    .rel8(0x75, 'byte') // dec bx; jnz byte
    .b(0x4a)
    .rel8(0x75, 'row') // dec dx; jnz row
    .b(0xbe)
    .abs16('caption') // mov si,caption
    .b(0xbf)
    .w((CAPTION_ROW * COLS + Math.floor((COLS - caption.length) / 2)) * 2)
    .b(0xb9)
    .w(caption.length) // mov cx,len
    .b(0xb4, bgAttr) // mov ah,attr
    .label('cap')
    .b(0xac, 0xab) // lodsb; stosw
    .rel8(0xe2, 'cap') // loop cap
    .b(0xb4, 0x02, 0x30, 0xff, 0xba, 0x02, 0x16, 0xcd, 0x10) // cursor to row 22, col 2
    .label('idle')
    .b(0xfb, 0xf4, 0xb4, 0x01, 0xcd, 0x16) // sti; hlt; mov ah,1; int 16h (key waiting?)
    .rel8(0x74, 'idle') // jz idle
    .b(0x30, 0xe4, 0xcd, 0x16) // xor ah,ah; int 16h (read key)
    .b(0xb4, 0x0e, 0x30, 0xff, 0xcd, 0x10) // mov ah,0eh; xor bh,bh; int 10h (teletype echo)
    .rel8(0xeb, 'idle')
    .label('bitmap')
    .b(...big.bytes)
    .label('caption')
    .b(...Buffer.from(caption, 'latin1'));
  const code = a.link();
  if (code.length > 510) throw new Error(`demo boot sector: ${code.length} bytes do not fit in 510`);
  const sector = new Uint8Array(512);
  sector.set(code);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

export const DEMO_DISK_BYTES = 1 << 20;

/** The whole 1 MiB raw disk image. */
export function demoDisk(opts: DemoDiskOptions): Buffer {
  const disk = Buffer.alloc(DEMO_DISK_BYTES);
  disk.set(bootSector(opts), 0);
  return disk;
}

export function writeDemoDisk(path: string, opts: DemoDiskOptions): string {
  writeFileSync(path, demoDisk(opts));
  return path;
}
