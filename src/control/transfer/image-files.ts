import { readdir, realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { RpcCode, RpcError } from '../../util/errors.js';

/**
 * The image files kvmux manages: plain names in the image folders. A name is never a path: no
 * "/", no "..", no leading dot (temp files and hidden files stay invisible).
 */
export const IMAGE_FILE = /\.(qcow2|raw|img|vdi|vbox|iso)$/i;

export const imageFileSchema = z
  .string()
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._ ()+-]*$/, 'must be a plain file name (no "/" or leading ".")')
  .refine((n) => !n.includes('..'), 'must not contain ".."')
  .refine((n) => IMAGE_FILE.test(n), 'must end in .qcow2, .raw, .img, .vdi, .vbox or .iso');

/** Who uses an image (its real path): VM name, state, and whether the config names it. */
export interface ImageUser {
  name: string;
  state: string;
  /** In the config file or kvmux's own layer (not just found in the folder). */
  configured: boolean;
}

export interface ImageCatalogueHooks {
  users?: (realPath: string) => ImageUser[] | Promise<ImageUser[]>;
}

export interface ImageFile {
  name: string;
  dir: string;
  path: string;
  real: string;
  size: number;
}

/** Every image file in the folders, first folder first (a name in an earlier folder shadows later ones). */
export async function listImageFiles(dirs: readonly string[]): Promise<ImageFile[]> {
  const out: ImageFile[] = [];
  const seen = new Set<string>();
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      if (!IMAGE_FILE.test(name) || name.startsWith('.') || seen.has(name)) continue;
      const path = join(resolve(dir), name);
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) continue;
      seen.add(name);
      out.push({ name, dir: resolve(dir), path, real: await realpath(path), size: st.size });
    }
  }
  return out;
}

export async function findImage(dirs: readonly string[], name: string): Promise<ImageFile> {
  const img = (await listImageFiles(dirs)).find((f) => f.name === name);
  if (!img) throw new RpcError(RpcCode.notFound, `no image named "${name}" in the image folders`);
  return img;
}
