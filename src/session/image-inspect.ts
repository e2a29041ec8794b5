import { execFile, execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startUnpinned } from '../util/affinity.js';
import { diskFormat } from './backends/qemu-argv.js';

/**
 * Disk image inspection: a disk that names another file (qcow2 backing file or data-file, VMDK
 * extents, a VDI differencing or undo image) would let whoever wrote it make QEMU or VirtualBox
 * read and write that host file. Every image is inspected with the same explicit format QEMU is
 * later given (`diskFormat`), so what is checked is what runs.
 */
export interface InspectOptions {
  /** `imageDefaults.allowBackingFiles`: an admin may allow backing files (never data files or extents elsewhere). */
  allowBackingFiles?: boolean;
}

const execFileAsync = promisify(execFile);

/** Files the image header names, besides itself. Pure: the parsed `qemu-img info --output=json`. */
export function externalRefs(info: unknown, image: string): { backing: string[]; other: string[] } {
  const i = (info ?? {}) as Record<string, unknown>;
  const backing = ['backing-filename', 'full-backing-filename']
    .map((k) => i[k])
    .filter((v): v is string => typeof v === 'string' && v !== '');
  const spec = (i['format-specific'] ?? {}) as { type?: string; data?: Record<string, unknown> };
  const data = spec.data ?? {};
  const other: string[] = [];
  if (typeof data['data-file'] === 'string') other.push(data['data-file']);
  const extents = Array.isArray(data['extents']) ? (data['extents'] as Array<{ filename?: unknown }>) : [];
  for (const e of extents) {
    // a monolithic sparse VMDK lists itself as its one extent
    if (typeof e.filename !== 'string') continue;
    const self = [resolve(e.filename), resolve(dirname(image), e.filename)].includes(resolve(image));
    if (!self) other.push(e.filename);
  }
  const parentCid = data['parent-cid'];
  if (spec.type === 'vmdk' && typeof parentCid === 'number' && parentCid !== 0xffffffff)
    other.push(`parent CID ${parentCid}`);
  return { backing: [...new Set(backing)], other };
}

/** The verdict on one inspected image: null when safe, else why not. Pure. */
export function judgeImage(info: unknown, image: string, opts: InspectOptions = {}): string | null {
  const refs = externalRefs(info, image);
  if (refs.other.length > 0) return `names another file (${refs.other.join(', ')}): refused`;
  if (refs.backing.length > 0 && !opts.allowBackingFiles)
    return `has a backing file (${refs.backing[0]}): refused (imageDefaults.allowBackingFiles is off)`;
  return null;
}

/**
 * VDI header (VirtualBox opens .vdi itself, so qemu-img's view is not enough): image type at 0x4c,
 * 1 dynamic, 2 static; 3 undo and 4 differencing name a parent by UUID. Pure.
 */
export function vdiProblem(header: Buffer): string | null {
  if (header.length < 0x50 || header.readUInt32LE(0x40) !== 0xbeda107f) return 'not a VDI image';
  const type = header.readUInt32LE(0x4c);
  if (type === 1 || type === 2) return null;
  return `VDI image type ${type} (undo/differencing) names a parent image: refused`;
}

function readHead(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

function infoArgs(path: string, format: string): string[] {
  // -U: readable while a VM holds the image; info never opens backing files
  return ['info', '-U', '-f', format, '--output=json', path];
}

function verdictFrom(stdout: string, path: string, format: string, opts: InspectOptions): string | null {
  let info: unknown;
  try {
    info = JSON.parse(stdout);
  } catch {
    return `qemu-img info gave no JSON for format ${format}`;
  }
  const bad = judgeImage(info, path, opts);
  if (bad) return bad;
  return format === 'vdi' ? vdiProblem(readHead(path, 0x200)) : null;
}

function failure(err: unknown, format: string): string {
  const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
  const line = stderr.split('\n').at(-1) || (err as Error).message;
  return `not a usable ${format} image (${line.replace(/^qemu-img: /, '')})`;
}

/** Inspect `path` as QEMU would open it (format from `asName`, default its own name); null = safe. */
export async function inspectImage(
  path: string,
  opts: InspectOptions & { asName?: string } = {},
): Promise<string | null> {
  const format = diskFormat(opts.asName ?? path);
  try {
    const { stdout } = await execFileAsync('qemu-img', infoArgs(path, format), { timeout: 60_000 });
    return verdictFrom(stdout, path, format, opts);
  } catch (err) {
    return failure(err, format);
  }
}

const cache = new Map<string, { key: string; verdict: string | null }>();

function cacheKey(path: string, opts: InspectOptions): { real: string; key: string } | null {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return null;
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${opts.allowBackingFiles === true}`;
  return { real: realpathSync(path), key };
}

/**
 * Fill the cache without blocking the event loop (qemu-img runs as a child process), so that the
 * synchronous check in discovery only reads the cache: a rescan while someone types stays smooth.
 */
export async function prefetchInspections(
  paths: readonly string[],
  opts: InspectOptions = {},
): Promise<void> {
  for (const path of paths) {
    const k = cacheKey(path, opts);
    if (!k || cache.get(k.real)?.key === k.key) continue;
    const verdict = await inspectImage(path, opts);
    cache.set(k.real, { key: k.key, verdict });
  }
}

/**
 * Discovery's synchronous check, cached by (inode, size, mtime): an unchanged image is inspected
 * once, a rewritten one again. Misses (start-up) run qemu-img synchronously.
 */
export function inspectImageSync(path: string, opts: InspectOptions = {}): string | null {
  const k = cacheKey(path, opts);
  if (!k) return 'gone';
  const { real, key } = k;
  const hit = cache.get(real);
  if (hit && hit.key === key) return hit.verdict;
  const format = diskFormat(path);
  let verdict: string | null;
  try {
    // a synchronous spawn bypasses ChildProcess#spawn: unpinned by hand (see util/affinity.ts)
    const stdout = startUnpinned(() =>
      execFileSync('qemu-img', infoArgs(path, format), {
        timeout: 60_000,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    verdict = verdictFrom(stdout, path, format, opts);
  } catch (err) {
    verdict = failure(err, format);
  }
  cache.set(real, { key, verdict });
  return verdict;
}
