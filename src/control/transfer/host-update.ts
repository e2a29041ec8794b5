import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { errnoName, RpcCode, RpcError } from '../../util/errors.js';
import { execa } from '../../util/lazy-execa.js';
import { type Logger, silentLogger } from '../../util/log.js';
import { defineMethod, type RpcMethod } from '../rpc/method.js';
import { sha256Schema } from './chunked-file.js';
import { chunkedMethods } from './chunked-methods.js';

/**
 * Host image update with A/B slots. Layout under `hostUpdate.bootDir`:
 *
 *   slot-a/root.squashfs   slot-a/meta.json   {"version","sha256","size","installedAt"}
 *   slot-b/root.squashfs   slot-b/meta.json
 *   next                   one line: "a" or "b" — the slot the initrd mounts on the next boot
 *
 * `next` is replaced atomically (tmp + fsync + rename + fsync dir); an initrd reads it with
 * `read slot < $BOOT/next`. The running slot is `kvmux.slot=a|b` on /proc/cmdline, else the file
 * `current` in bootDir (written by the initrd), else "a". Updates stage into the other slot only.
 */
export type Slot = 'a' | 'b';
export const SLOTS: readonly Slot[] = ['a', 'b'];
export const other = (s: Slot): Slot => (s === 'a' ? 'b' : 'a');

const metaSchema = z.object({
  version: z.string().nullable(),
  sha256: z.string(),
  size: z.number(),
  installedAt: z.string(),
});
type SlotMeta = z.infer<typeof metaSchema>;

export interface SlotStatus {
  slot: Slot;
  version: string | null;
  sha256: string | null;
  size: number | null;
  valid: boolean;
  reason?: string;
}

export interface HostUpdateOptions {
  bootDir: () => string;
  /** The slot running now; default from /proc/cmdline, then `<bootDir>/current`, then "a". */
  currentSlot?: () => Promise<Slot>;
  maxImageBytes?: number;
  /** An open update untouched this long is aborted and the staging slot freed. */
  idleMs?: () => number;
  log?: Logger;
}

export const slotDir = (bootDir: string, s: Slot) => join(bootDir, `slot-${s}`);
export const slotImage = (bootDir: string, s: Slot) => join(slotDir(bootDir, s), 'root.squashfs');

/** `unsquashfs -s` reads only the superblock, so also demand the file holds the whole filesystem. */
export async function checkSquashfs(path: string): Promise<string | null> {
  const r = await execa('unsquashfs', ['-s', path], { reject: false, timeout: 60_000 });
  if (r.exitCode !== 0)
    return `not a squashfs image (${String(r.stderr).trim().split('\n').at(-1) ?? 'unsquashfs failed'})`;
  const m = /Filesystem size (\d+) bytes/.exec(String(r.stdout));
  const size = (await stat(path)).size;
  if (m && Number(m[1]) > size) return `truncated squashfs: needs ${m[1]} bytes, file has ${size}`;
  return null;
}

async function readSlotFile(path: string): Promise<Slot | null> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const s = text.trim();
  return s === 'a' || s === 'b' ? s : null;
}

async function defaultCurrent(bootDir: string): Promise<Slot> {
  const cmdline = await readFile('/proc/cmdline', 'utf8').catch(() => '');
  const m = /(?:^|\s)kvmux\.slot=([ab])(?:\s|$)/.exec(cmdline);
  return (m?.[1] as Slot | undefined) ?? (await readSlotFile(join(bootDir, 'current'))) ?? 'a';
}

export async function slotStatus(bootDir: string, slot: Slot): Promise<SlotStatus> {
  const meta = await readFile(join(slotDir(bootDir, slot), 'meta.json'), 'utf8')
    .then((t) => metaSchema.parse(JSON.parse(t)))
    .catch(() => null);
  const base = {
    slot,
    version: meta?.version ?? null,
    sha256: meta?.sha256 ?? null,
    size: meta?.size ?? null,
  };
  const img = slotImage(bootDir, slot);
  const st = await stat(img).catch(() => null);
  if (!st) return { ...base, valid: false, reason: 'no image' };
  if (!meta) return { ...base, valid: false, reason: 'no meta.json (install interrupted?)' };
  if (st.size !== meta.size)
    return { ...base, valid: false, reason: `size ${st.size} ≠ recorded ${meta.size}` };
  const bad = await checkSquashfs(img);
  return bad ? { ...base, valid: false, reason: bad } : { ...base, valid: true };
}

/** The newest lines of the initrd's `rollback.log` (a fallback to the other slot, a last-resort boot). */
export async function readRollbacks(bootDir: string, max = 10): Promise<string[]> {
  const text = await readFile(join(bootDir, 'rollback.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-max);
}

export async function writeNext(bootDir: string, slot: Slot): Promise<void> {
  await writeFileAtomic(join(bootDir, 'next'), `${slot}\n`, 0o644);
}

const beginParams = z.strictObject({
  size: z.number().int().min(1),
  sha256: sha256Schema,
  version: z.string().max(64).optional(),
});

interface Meta {
  bootDir: string;
  slot: Slot;
  version: string | null;
  /** Who holds the staging slot: a guest's hold ends on its idle/logout, and the local socket may take it over. */
  holder: Holder;
}

interface Holder {
  by: string;
  cancel: () => void;
}

/** Where the boot pointers stand: the running slot and the one the next boot takes. */
export interface HostUpdateView {
  pointers(): Promise<{ bootDir: string; current: Slot; next: Slot }>;
}

export function hostUpdateView(opts: HostUpdateOptions): HostUpdateView {
  return {
    async pointers() {
      const bootDir = opts.bootDir();
      const current = await (opts.currentSlot ? opts.currentSlot() : defaultCurrent(bootDir));
      const next = (await readSlotFile(join(bootDir, 'next'))) ?? current;
      return { bootDir, current, next };
    },
  };
}

export function hostUpdateMethods(opts: HostUpdateOptions): RpcMethod[] {
  const log = opts.log ?? silentLogger;
  const maxBytes = opts.maxImageBytes ?? 16 * 2 ** 30;
  const current = (bootDir: string) => (opts.currentSlot ? opts.currentSlot() : defaultCurrent(bootDir));
  /** The one transfer staging into the other slot, host-wide. */
  let staging: Holder | null = null;

  const status = async () => {
    const bootDir = opts.bootDir();
    const cur = await current(bootDir);
    const next = (await readSlotFile(join(bootDir, 'next'))) ?? cur;
    return {
      bootDir,
      current: cur,
      next,
      slots: await Promise.all(SLOTS.map((s) => slotStatus(bootDir, s))),
      // the initrd's fallbacks (a slot that never got ready, both used up): the owner must see them
      rollbacks: await readRollbacks(bootDir),
    };
  };

  const transfer = chunkedMethods<typeof beginParams, Meta>({
    prefix: 'host.update',
    beginParams,
    maxPerConnection: 1,
    ...(opts.idleMs ? { idleMs: opts.idleMs } : {}),
    async prepare(p, ctx) {
      if (p.size > maxBytes)
        throw new RpcError(RpcCode.invalidParams, `invalid params: size: above ${maxBytes}`);
      const by = ctx.caller.kind === 'guest' ? ctx.caller.vm : 'local';
      if (staging && !(by === 'local' && staging.by !== 'local'))
        throw new RpcError(RpcCode.conflict, `a host update is already being staged (by ${staging.by})`);
      // the root socket outranks a guest: a guest's staging never locks the admin out
      if (staging) {
        log.warn({ from: staging.by }, 'host update staging taken over by the local socket');
        staging.cancel();
      }
      const holder: Holder = { by, cancel: () => undefined };
      staging = holder;
      try {
        const bootDir = opts.bootDir();
        const slot = other(await current(bootDir));
        await mkdir(slotDir(bootDir, slot), { recursive: true, mode: 0o755 });
        return {
          dir: slotDir(bootDir, slot),
          size: p.size,
          sha256: p.sha256,
          meta: { bootDir, slot, version: p.version ?? null, holder },
        };
      } catch (err) {
        if (staging === holder) staging = null;
        throw err;
      }
    },
    opened(meta, _transfer, cancel) {
      meta.holder.cancel = cancel;
    },
    released(meta) {
      if (staging === meta.holder) staging = null;
    },
    async finish(t, meta) {
      await t.commit(slotImage(meta.bootDir, meta.slot), {
        replace: true,
        validate: async (tmp) => {
          const bad = await checkSquashfs(tmp);
          if (bad)
            throw new RpcError(RpcCode.invalidParams, `host image refused: ${bad}; boot pointer unchanged`);
          // from here the slot is being rewritten: never boot it, and mark it unverified until meta.json returns
          if ((await readSlotFile(join(meta.bootDir, 'next'))) === meta.slot) {
            await writeNext(meta.bootDir, other(meta.slot));
          }
          await rm(join(slotDir(meta.bootDir, meta.slot), 'meta.json'), { force: true });
        },
      });
      const record: SlotMeta = {
        version: meta.version,
        sha256: t.sha256,
        size: t.size,
        installedAt: new Date().toISOString(),
      };
      await writeFileAtomic(
        join(slotDir(meta.bootDir, meta.slot), 'meta.json'),
        `${JSON.stringify(record)}\n`,
        0o644,
      );
      // a fresh image in this slot: forget the old image's failed boots (the initrd's counter)
      await rm(join(meta.bootDir, `tries-${meta.slot}`), { force: true });
      await writeNext(meta.bootDir, meta.slot);
      log.info(
        { slot: meta.slot, version: meta.version, sha256: t.sha256 },
        'host update staged; boots next',
      );
      return { slot: meta.slot, next: meta.slot, version: meta.version, sha256: t.sha256 };
    },
  });

  return [
    ...transfer,
    defineMethod({
      name: 'host.update.status',
      params: z.strictObject({}),
      summary: 'A/B slots: version, sha256, size, validity; which runs now and which boots next',
      handler: status,
    }),
    defineMethod({
      name: 'host.update.rollback',
      params: z.strictObject({}),
      summary: 'point the next boot at the other slot (refused when that slot is not valid)',
      async handler() {
        const s = await status();
        const target = other(s.next);
        const st = s.slots.find((x) => x.slot === target)!;
        if (!st.valid) {
          throw new RpcError(
            RpcCode.conflict,
            `cannot roll back to slot ${target}: ${st.reason ?? 'invalid'}`,
          );
        }
        await writeNext(s.bootDir, target).catch((err) => {
          throw new RpcError(RpcCode.internal, `${s.bootDir}/next: cannot write: ${errnoName(err)}`);
        });
        log.warn({ from: s.next, to: target }, 'host update rolled back');
        return { next: target, previous: s.next };
      },
    }),
  ];
}
