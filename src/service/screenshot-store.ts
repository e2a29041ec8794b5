import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Screenshots kvmux names itself (stateDir/screenshots): a guest calling in a loop cannot fill the disk. */
export const SCREENSHOTS_KEPT = 20;

/** Remove all but the newest `keep` PNGs in `dir` (by mtime, then name). */
export async function pruneScreenshots(dir: string, keep = SCREENSHOTS_KEPT): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.png'));
  if (names.length <= keep) return [];
  const rows = await Promise.all(
    names.map(async (n) => ({ n, t: (await stat(join(dir, n)).catch(() => null))?.mtimeMs ?? 0 })),
  );
  rows.sort((a, b) => b.t - a.t || (a.n < b.n ? 1 : -1));
  const gone = rows.slice(keep).map((r) => r.n);
  await Promise.all(gone.map((n) => rm(join(dir, n), { force: true })));
  return gone;
}
