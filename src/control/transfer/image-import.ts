import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, link, mkdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, normalize } from 'node:path';
import { z } from 'zod';
import type { Config } from '../../config/schema.js';
import { inspectImage } from '../../session/image-inspect.js';
import { errnoName, RpcCode, RpcError } from '../../util/errors.js';
import { execa } from '../../util/lazy-execa.js';
import { TEMP_PREFIX } from './chunked-file.js';
import { imageFileSchema } from './image-files.js';
import type { Reservation, SpaceLedger } from './space-ledger.js';

/**
 * `image.import {path, name?}`: bring a disk from a host path (a USB stick, another partition)
 * into the first image folder. Plain disks are copied (reflinked where the filesystem can), an
 * .ova is unpacked and its VMDK converted to qcow2 (with a sidecar carrying the OVF's memory and
 * CPUs), a .vbox comes with the disks it names beside it. Every disk is inspected first: one that
 * names another file is refused, as with uploads. Nothing appears in the folder until complete.
 */
export const importParams = z.strictObject({
  path: z
    .string()
    .min(2)
    .max(4096)
    .refine((p) => isAbsolute(p) && !p.split('/').includes('..'), 'must be an absolute path without ".."'),
  /** File name in the image folder (default: the source's name; .ova becomes NAME.qcow2). */
  name: imageFileSchema.optional(),
});

export interface ImportContext {
  dir: string;
  ledger: SpaceLedger;
  defaults: Partial<Config['imageDefaults']>;
}

const bad = (msg: string) => new RpcError(RpcCode.invalidParams, `invalid params: ${msg}`);
const tmpName = () => `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`;

async function refuseUnsafe(path: string, asName: string, defaults: ImportContext['defaults']) {
  const why = await inspectImage(path, { asName, allowBackingFiles: defaults.allowBackingFiles ?? false });
  if (why) throw bad(`path: ${basename(path)} ${why}`);
}

/** Hard-link `tmp` to `final` without clobbering (then drop the temp name). */
async function install(tmp: string, final: string): Promise<void> {
  try {
    await link(tmp, final);
  } catch (err) {
    if (errnoName(err) === 'EEXIST')
      throw new RpcError(
        RpcCode.conflict,
        `${final}: already exists (delete it or import under another name)`,
      );
    throw err;
  } finally {
    await rm(tmp, { force: true, recursive: true });
  }
}

async function withReservation<T>(ctx: ImportContext, bytes: number, fn: () => Promise<T>): Promise<T> {
  const [fs, st] = await Promise.all([statfs(ctx.dir), stat(ctx.dir)]);
  const r: Reservation = { fs: String(st.dev), owner: null, size: bytes, received: () => 0 };
  ctx.ledger.reserve(
    r,
    { freeBytes: fs.bavail * fs.bsize, marginBytes: (ctx.defaults.reserveMiB ?? 256) << 20 },
    (why) => bad(`path: ${why}`),
  );
  try {
    return await fn();
  } finally {
    ctx.ledger.release(r);
  }
}

async function copyDisk(src: string, final: string, ctx: ImportContext): Promise<void> {
  await refuseUnsafe(src, final, ctx.defaults);
  const tmp = join(ctx.dir, tmpName());
  try {
    await copyFile(src, tmp, constants.COPYFILE_FICLONE);
    await refuseUnsafe(tmp, final, ctx.defaults); // what was copied, not what was looked at
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await install(tmp, final);
}

/** OVF memory (ResourceType 4, MB) and CPUs (ResourceType 3), when the descriptor says. */
export function ovfSettings(ovf: string): { memoryMiB?: number; cpus?: number } {
  const out: { memoryMiB?: number; cpus?: number } = {};
  for (const item of ovf.split(/<(?:ovf:)?Item>/).slice(1)) {
    const type = /<rasd:ResourceType>(\d+)</.exec(item)?.[1];
    const qty = Number(/<rasd:VirtualQuantity>(\d+)</.exec(item)?.[1]);
    if (!Number.isInteger(qty) || qty <= 0) continue;
    if (type === '4' && qty >= 16) out.memoryMiB = qty;
    if (type === '3' && qty <= 256) out.cpus = qty;
  }
  return out;
}

async function importOva(src: string, name: string, ctx: ImportContext): Promise<string[]> {
  const list = await execa('tar', ['-tf', src], { reject: false });
  if (list.exitCode !== 0) throw bad(`path: ${basename(src)} is not a readable .ova (tar) archive`);
  const entries = String(list.stdout).split('\n').filter(Boolean);
  if (entries.some((e) => e.includes('/') || e.startsWith('.') || e.includes('..')))
    throw bad(`path: ${basename(src)}: archive entries must be plain file names`);
  const vmdk = entries.find((e) => /\.vmdk$/i.test(e));
  if (!vmdk) throw bad(`path: ${basename(src)}: no .vmdk disk in the archive`);
  const work = join(ctx.dir, tmpName());
  await mkdir(work, { mode: 0o700 });
  const final = join(ctx.dir, name);
  try {
    await execa('tar', ['-xf', src, '-C', work, '--no-same-owner', '--no-same-permissions', vmdk]);
    const disk = join(work, vmdk);
    await refuseUnsafe(disk, disk, ctx.defaults);
    const out = join(work, 'disk.qcow2');
    const r = await execa('qemu-img', ['convert', '-f', 'vmdk', '-O', 'qcow2', disk, out], { reject: false });
    if (r.exitCode !== 0) throw bad(`path: ${vmdk}: qemu-img convert failed: ${String(r.stderr).trim()}`);
    const ovfName = entries.find((e) => /\.ovf$/i.test(e));
    let side: { memoryMiB?: number; cpus?: number } = {};
    if (ovfName) {
      await execa('tar', ['-xf', src, '-C', work, '--no-same-owner', ovfName]);
      side = ovfSettings(await readFile(join(work, ovfName), 'utf8'));
    }
    await install(out, final);
    if (Object.keys(side).length === 0) return [final];
    const yaml = `qemu:\n${Object.entries(side)
      .map(([k, v]) => `  ${k}: ${v}\n`)
      .join('')}`;
    const sidecar = `${final}.yaml`;
    const tmp = join(ctx.dir, tmpName());
    await writeFile(tmp, yaml, { mode: 0o644 });
    await install(tmp, sidecar);
    return [final, sidecar];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Disks a .vbox names: `location="…"` of HardDisk entries. */
export function vboxDisks(xml: string): string[] {
  return [...xml.matchAll(/<HardDisk\b[^>]*\blocation="([^"]+)"/g)].map((m) => m[1] as string);
}

async function importVbox(src: string, name: string, ctx: ImportContext): Promise<string[]> {
  const xml = await readFile(src, 'utf8');
  const disks = vboxDisks(xml);
  for (const d of disks)
    if (isAbsolute(d) || normalize(d) !== basename(d))
      throw bad(`path: ${basename(src)} names disk "${d}": only disks beside the .vbox can be imported`);
  const finals: string[] = [];
  for (const d of disks) {
    const final = join(ctx.dir, d);
    await copyDisk(join(dirname(src), d), final, ctx);
    finals.push(final);
  }
  const final = join(ctx.dir, name);
  const tmp = join(ctx.dir, tmpName());
  await copyFile(src, tmp);
  await install(tmp, final);
  return [...finals, final];
}

export async function importImage(
  p: z.infer<typeof importParams>,
  ctx: ImportContext,
): Promise<{ paths: string[] }> {
  const st = await stat(p.path).catch((err) => {
    throw new RpcError(RpcCode.notFound, `path: ${p.path}: ${errnoName(err)}`);
  });
  if (!st.isFile()) throw bad(`path: ${p.path} is not a regular file`);
  const ext = extname(p.path).toLowerCase();
  const stem = basename(p.path, extname(p.path));
  await stat(ctx.dir).catch(() => {
    throw new RpcError(RpcCode.notFound, `${ctx.dir}: cannot use image folder`);
  });
  if (ext === '.ova') {
    const name = imageFileSchema.parse(p.name ?? `${stem}.qcow2`);
    return { paths: await withReservation(ctx, st.size * 2, () => importOva(p.path, name, ctx)) };
  }
  if (!['.qcow2', '.raw', '.img', '.vdi', '.iso', '.vbox'].includes(ext))
    throw bad(`path: ${basename(p.path)}: import takes .qcow2, .raw, .img, .vdi, .iso, .ova or .vbox`);
  const name = p.name ?? basename(p.path);
  if (!imageFileSchema.safeParse(name).success) throw bad(`name: "${name}" is not a plain image file name`);
  if (ext === '.vbox') {
    const disks = vboxDisks(await readFile(p.path, 'utf8'));
    const sizes = await Promise.all(
      disks.map((d) =>
        stat(join(dirname(p.path), basename(d))).then(
          (s) => s.size,
          () => 0,
        ),
      ),
    );
    const total = sizes.reduce((a, b) => a + b, st.size);
    return { paths: await withReservation(ctx, total, () => importVbox(p.path, name, ctx)) };
  }
  const final = join(ctx.dir, name);
  await withReservation(ctx, st.size, () => copyDisk(p.path, final, ctx));
  return { paths: [final] };
}
