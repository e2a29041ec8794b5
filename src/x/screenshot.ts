import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type x11 from 'x11';
import { XError } from '../util/errors.js';
import { connectDisplay, type XConnection } from './connection.js';

/**
 * Screenshots and pixel probes of a display's root window via core GetImage (ZPixmap), PNG
 * encoded with node's zlib: no ImageMagick process per shot. What a display shows, not what is
 * physically on the monitor (an inactive VT's Xorg still renders).
 */
export interface Rgb {
  r: number;
  g: number;
  b: number;
}

export interface RgbImage {
  width: number;
  height: number;
  /** Packed RGB, 3 bytes per pixel, row-major. */
  rgb: Buffer;
}

const ZPixmap = 2;
const allPlanes = 0xffffffff;

/** Read a rectangle of the root as RGB; assumes a 24/32-bit TrueColor BGRX (little-endian) layout. */
export async function grab(
  conn: XConnection,
  x = 0,
  y = 0,
  width = conn.width,
  height = conn.height,
): Promise<RgbImage> {
  const depth = conn.screen.root_depth;
  if (depth !== 24 && depth !== 32) throw new XError(conn.display, `unsupported root depth ${depth}`);
  const img = await conn.call<x11.Image>((cb) =>
    conn.client.GetImage(ZPixmap, conn.root, x, y, width, height, allPlanes, cb),
  );
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0, o = 0; o < rgb.length; i += 4, o += 3) {
    rgb[o] = img.data[i + 2]!;
    rgb[o + 1] = img.data[i + 1]!;
    rgb[o + 2] = img.data[i]!;
  }
  return { width, height, rgb };
}

/** The colour at (x, y) of an image. */
export function pixel(img: RgbImage, x: number, y: number): Rgb {
  const o = (y * img.width + x) * 3;
  return { r: img.rgb[o]!, g: img.rgb[o + 1]!, b: img.rgb[o + 2]! };
}

/** Colours of a few root points, one small GetImage each. */
export async function probe(conn: XConnection, points: ReadonlyArray<[number, number]>): Promise<Rgb[]> {
  return Promise.all(points.map(async ([x, y]) => pixel(await grab(conn, x, y, 1, 1), 0, 0)));
}

/** Number of distinct colours on a grid of samples: 1 means a blank (single-colour) screen. */
export function distinctColours(img: RgbImage, step = 8): number {
  const seen = new Set<number>();
  for (let y = 0; y < img.height; y += step) {
    for (let x = 0; x < img.width; x += step) {
      const o = (y * img.width + x) * 3;
      seen.add((img.rgb[o]! << 16) | (img.rgb[o + 1]! << 8) | img.rgb[o + 2]!);
    }
  }
  return seen.size;
}

/**
 * True while the display shows a single colour (sampled every `step` pixels): nothing drawn yet.
 * Only the sampled rows are read (1/step of a full grab): pollers (the start bench) must not take
 * the CPU from what they wait for.
 */
export async function screenIsBlank(conn: XConnection, step = 16): Promise<boolean> {
  const ys = Array.from({ length: Math.ceil(conn.height / step) }, (_, i) => i * step);
  const rows = await Promise.all(ys.map((y) => grab(conn, 0, y, conn.width, 1)));
  const seen = new Set<number>();
  for (const row of rows) {
    for (let x = 0; x < row.width; x += step) {
      const { r, g, b } = pixel(row, x, 0);
      seen.add((r << 16) | (g << 8) | b);
    }
  }
  return seen.size <= 1;
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

const deflate = promisify(zlib.deflate);

function crc32(buf: Buffer): number {
  // zlib's native crc32 (Node >= 20.15): the JS loop below costs ms on a screen's worth of bytes
  const native = (zlib as { crc32?: (b: Buffer) => number }).crc32;
  if (native) return native(buf) >>> 0;
  let c = 0xffffffff;
  for (const byte of buf) c = crcTable[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

function pngParts(img: RgbImage): { raw: Buffer; ihdr: Buffer } {
  const row = img.width * 3;
  const raw = Buffer.alloc((row + 1) * img.height);
  for (let y = 0; y < img.height; y++) img.rgb.copy(raw, y * (row + 1) + 1, y * row, (y + 1) * row);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(img.width, 0);
  ihdr.writeUInt32BE(img.height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return { raw, ihdr };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function png(ihdr: Buffer, idat: Buffer): Buffer {
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An 8-bit RGB PNG, compressed on libuv's thread pool: the event loop (and the keyboard) keeps going. */
export async function encodePngAsync(img: RgbImage): Promise<Buffer> {
  const { raw, ihdr } = pngParts(img);
  return png(ihdr, await deflate(raw, { level: 3 }));
}

/** Pure: an 8-bit RGB PNG (synchronous; tests and tools). */
export function encodePng(img: RgbImage): Buffer {
  const { raw, ihdr } = pngParts(img);
  return png(ihdr, zlib.deflateSync(raw, { level: 3 }));
}

/** Write a PNG of the whole display to `path`; opens its own short connection unless given one. */
export async function screenshot(display: string | XConnection, path: string): Promise<RgbImage> {
  const conn = typeof display === 'string' ? await connectDisplay(display) : display;
  try {
    const img = await grab(conn);
    await writeFile(path, await encodePngAsync(img), { mode: 0o600 });
    return img;
  } finally {
    if (typeof display === 'string') await conn.close();
  }
}
