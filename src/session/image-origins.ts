import { readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic-file.js';

/**
 * Which images a guest uploaded (stateDir/image-origins.json). Such an image never takes a
 * sidecar, `imageDefaults.autostart` or a guest channel from the folder: only an admin's
 * vm.create/vm.update (or the policy that allowed it) decides what it becomes. Keyed by real path
 * and pinned to the inode and its birth time (inode numbers are reused at once), so a file the
 * admin later copies over the name is the admin's again.
 */
type Ident = { ino: number; birthtimeMs: number };
const same = (st: Ident | undefined, o: { ino: number; born: number }) =>
  st !== undefined && st.ino === o.ino && st.birthtimeMs === o.born;
const originsSchema = z.record(
  z.string(),
  z.object({ by: z.string(), ino: z.number(), born: z.number().default(0), at: z.string() }),
);
export type ImageOrigins = z.infer<typeof originsSchema>;

export const originsPath = (stateDir: string) => join(stateDir, 'image-origins.json');

export function readOrigins(stateDir: string): ImageOrigins {
  try {
    return originsSchema.parse(JSON.parse(readFileSync(originsPath(stateDir), 'utf8')));
  } catch {
    return {};
  }
}

/** The VM that uploaded `image` (still the same inode), or null when an admin put it there. */
export function uploadedBy(origins: ImageOrigins, image: string): string | null {
  let real: string;
  try {
    real = realpathSync(image);
  } catch {
    return null;
  }
  const o = origins[real];
  if (!o) return null;
  return same(statSync(real, { throwIfNoEntry: false }), o) ? o.by : null;
}

/** Bytes each VM's uploaded images hold now (for the per-VM quota). */
export function bytesByVm(origins: ImageOrigins): Map<string, number> {
  const out = new Map<string, number>();
  for (const [path, o] of Object.entries(origins)) {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || !same(st, o)) continue;
    out.set(o.by, (out.get(o.by) ?? 0) + st.size);
  }
  return out;
}

/**
 * Record that VM `by` uploaded the file at `realPath` with identity `id` (`by` = null: the admin's
 * now). Entries whose file is gone or was replaced are dropped on the way.
 */
export async function recordOrigin(
  stateDir: string,
  realPath: string,
  id: Ident,
  by: string | null,
): Promise<void> {
  const origins = readOrigins(stateDir);
  for (const [p, o] of Object.entries(origins))
    if (!same(statSync(p, { throwIfNoEntry: false }), o)) delete origins[p];
  if (by === null && !(realPath in origins)) return;
  if (by === null) delete origins[realPath];
  else origins[realPath] = { by, ino: id.ino, born: id.birthtimeMs, at: new Date().toISOString() };
  await writeFileAtomic(originsPath(stateDir), `${JSON.stringify(origins, null, 1)}\n`);
}

export async function forgetOrigin(stateDir: string, realPath: string): Promise<void> {
  const origins = readOrigins(stateDir);
  if (!(realPath in origins)) return;
  delete origins[realPath];
  await writeFileAtomic(originsPath(stateDir), `${JSON.stringify(origins, null, 1)}\n`);
}
