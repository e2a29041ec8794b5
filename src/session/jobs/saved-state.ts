import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../util/atomic-file.js';

/**
 * A VM saved to disk: `<stateDir>/saved/<vm>.state.gz` (QEMU's migration stream, gzip) and
 * `<vm>.json` beside it with a stamp of each disk at save time. A disk written since (the VM was
 * booted fresh, or the image replaced) no longer matches the memory in the stream: restore refuses.
 */
export interface DiskStamp {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

export interface SavedMeta {
  readonly vm: string;
  readonly savedAt: string;
  readonly bytes: number;
  readonly memoryMiB: number | null;
  readonly disks: readonly DiskStamp[];
}

export interface SavePaths {
  readonly dir: string;
  readonly file: string;
  readonly partial: string;
  /** Made by the save's own shell once gzip has finished and the partial file is fsynced. */
  readonly done: string;
  readonly meta: string;
}

export function savePaths(stateDir: string, vm: string): SavePaths {
  const dir = join(stateDir, 'saved');
  const file = join(dir, `${vm}.state.gz`);
  return {
    dir,
    file,
    partial: `${file}.partial`,
    done: `${file}.partial.done`,
    meta: join(dir, `${vm}.json`),
  };
}

export function diskStamps(paths: readonly string[]): DiskStamp[] {
  return paths.map((path) => {
    const st = statSync(path, { throwIfNoEntry: false });
    return { path, size: st?.size ?? -1, mtimeMs: st?.mtimeMs ?? -1 };
  });
}

/** Why the disks now differ from the saved stamp, or null when they match (pure). */
export function stampMismatch(saved: readonly DiskStamp[], now: readonly DiskStamp[]): string | null {
  if (saved.length !== now.length)
    return `the VM had ${saved.length} disk(s) when saved, it has ${now.length} now`;
  for (const [i, s] of saved.entries()) {
    const n = now[i];
    if (!n || n.path !== s.path) return `disk ${i} was ${s.path}, it is ${n?.path ?? 'gone'} now`;
    if (n.size !== s.size || n.mtimeMs !== s.mtimeMs)
      return `disk ${s.path} changed since the save (size ${s.size} → ${n.size}, mtime ${new Date(s.mtimeMs).toISOString()} → ${n.mtimeMs < 0 ? 'gone' : new Date(n.mtimeMs).toISOString()})`;
  }
  return null;
}

/** Shell single-quoting for QEMU's exec: migration URIs (the path is kvmux's own, but may hold spaces). */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * QEMU's "completed" means it wrote the last byte into the pipe, not that gzip has written and the
 * disk holds it: the shell marks the end itself (fsynced file, then a `.done` file), and
 * commitSaved waits for that mark before the state replaces anything and QEMU quits.
 */
export const saveUri = (partial: string) =>
  `exec:gzip -1 -c > ${shellQuote(partial)} && sync ${shellQuote(partial)} && : > ${shellQuote(`${partial}.done`)}`;
export const restoreUri = (file: string) => `exec:gzip -dc < ${shellQuote(file)}`;

export function readSaved(stateDir: string, vm: string): SavedMeta | null {
  const p = savePaths(stateDir, vm);
  try {
    const meta = JSON.parse(readFileSync(p.meta, 'utf8')) as SavedMeta;
    if (meta.vm !== vm || !statSync(p.file, { throwIfNoEntry: false })?.isFile()) return null;
    return meta;
  } catch {
    return null;
  }
}

/**
 * The stream is complete: wait until gzip has finished and fsynced the partial file (its `.done`
 * mark), stamp the disks, then make the partial file the saved state. Throws when the mark does
 * not come within `waitMs` (the caller keeps the guest running).
 */
export async function commitSaved(
  stateDir: string,
  meta: Omit<SavedMeta, 'bytes' | 'savedAt'>,
  waitMs = 120_000,
): Promise<SavedMeta> {
  const p = savePaths(stateDir, meta.vm);
  for (const end = Date.now() + waitMs; !existsSync(p.done); ) {
    if (Date.now() > end) throw new Error(`the saved state was not finished in ${waitMs / 1000} s (gzip)`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const bytes = statSync(p.partial).size;
  const full: SavedMeta = { ...meta, bytes, savedAt: new Date().toISOString() };
  renameSync(p.partial, p.file);
  writeFileAtomicSync(p.meta, `${JSON.stringify(full, null, 2)}\n`);
  rmSync(p.done, { force: true });
  return full;
}

export function prepareSaveDir(stateDir: string, vm: string): SavePaths {
  const p = savePaths(stateDir, vm);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  rmSync(p.partial, { force: true });
  rmSync(p.done, { force: true });
  return p;
}

export function dropSaved(stateDir: string, vm: string): void {
  const p = savePaths(stateDir, vm);
  for (const f of [p.meta, p.file, p.partial, p.done]) rmSync(f, { force: true });
}
