import { GLYPH_HEIGHT, GLYPH_WIDTH, glyphRows } from '../demo/demo-font.js';

/** A splash logo as the framebuffer wants it: raw BGRA rows, 4 bytes a pixel. */
export interface Splash {
  width: number;
  height: number;
  bgra: Buffer;
}

/** A binary PPM (P6, maxval 255), the format any image tool writes (`convert logo.png logo.ppm`). */
export function splashFromPpm(ppm: Buffer): Splash {
  const header = /^P6\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)\s/.exec(
    ppm.subarray(0, 200).toString('latin1'),
  );
  if (!header) throw new Error('splash: not a binary PPM (P6); convert it with `convert logo.png logo.ppm`');
  const [width, height, max] = [Number(header[1]), Number(header[2]), Number(header[3])];
  if (max !== 255) throw new Error(`splash: PPM maxval ${max}, expected 255`);
  if (width < 1 || height < 1 || width > 4096 || height > 4096)
    throw new Error(`splash: ${width}x${height} is outside 1..4096`);
  const data = ppm.subarray(header[0].length);
  if (data.length < width * height * 3)
    throw new Error(`splash: PPM holds ${data.length} bytes of pixels, needs ${width * height * 3}`);
  const bgra = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    bgra[i * 4] = data[i * 3 + 2] ?? 0;
    bgra[i * 4 + 1] = data[i * 3 + 1] ?? 0;
    bgra[i * 4 + 2] = data[i * 3] ?? 0;
    bgra[i * 4 + 3] = 0xff;
  }
  return { width, height, bgra };
}

/** The default logo: "KVMUX" in the demo's pixel font, light grey on black, 8x scaled. */
export function defaultSplash(text = 'KVMUX', scale = 8): Splash {
  const gap = 1;
  const width = (text.length * (GLYPH_WIDTH + gap) - gap) * scale;
  const height = GLYPH_HEIGHT * scale;
  const bgra = Buffer.alloc(width * height * 4);
  [...text].forEach((ch, k) => {
    glyphRows(ch).forEach((row, gy) => {
      row.forEach((on, gx) => {
        if (!on) return;
        for (let dy = 0; dy < scale; dy++)
          for (let dx = 0; dx < scale; dx++) {
            const x = (k * (GLYPH_WIDTH + gap) + gx) * scale + dx;
            const y = gy * scale + dy;
            bgra.writeUInt32LE(0xffd0d0d0, (y * width + x) * 4);
          }
      });
    });
  });
  return { width, height, bgra };
}
