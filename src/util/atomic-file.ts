import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * The one way kvmux persists a file: write a temp file beside it, fsync it, rename it over the old
 * one, fsync the folder. A reader (or a restart after power loss) sees the old file or the new one,
 * never half of one.
 */

const tempBeside = (path: string) =>
  join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);

/** fsync a directory so a rename inside it survives power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = tempBeside(path);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** The same, synchronously (start-up and shutdown paths that must finish before going on). */
export function writeFileAtomicSync(path: string, data: string | Buffer, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = tempBeside(path);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

const pending = new Map<string, Promise<void>>();

/**
 * Off the hot path (a display switch must not wait for a disk): the write happens in the
 * background, writes to one path land in call order, a failure goes to `onError`.
 */
export function writeFileAtomicLater(
  path: string,
  data: string,
  onError: (err: unknown) => void,
  mode = 0o600,
): void {
  const prev = pending.get(path) ?? Promise.resolve();
  const next = prev.then(() => writeFileAtomic(path, data, mode)).catch(onError);
  pending.set(path, next);
  void next.then(() => {
    if (pending.get(path) === next) pending.delete(path);
  });
}

/** Resolves once every background write to `path` has landed (or failed). */
export function writesSettled(path: string): Promise<void> {
  return pending.get(path) ?? Promise.resolve();
}
