import { type FileHandle, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { initialRate, type RateConfig, type RateState, takeToken } from '../rpc/rate.js';

/**
 * Append-only audit log of control calls: one JSON object per line in `<stateDir>/audit.log`.
 * Params are summarised and secrets redacted: no password (nor its length) or chunk data ever
 * reaches the disk. A guest decides what goes in here before it has logged in, so every entry is
 * capped, unauthenticated entries are rate-limited per caller, and the file rotates by size.
 */
export const AUDIT_FILE = 'audit.log';

export interface AuditEntry {
  time: string;
  /** VM name of a guest channel, or "local" for the root socket. */
  from: string;
  method: string;
  params: unknown;
  outcome: 'ok' | 'error';
  code?: number;
  message?: string;
}

// `old`/`new`: auth.passwd {old, new}
const SECRET_KEY = /pass|secret|token|key|data|^old$|^new$/i;
const MAX_STRING = 80;
const MAX_KEYS = 16;
/** One entry's JSON line never exceeds this; longer ones keep their shape and lose their values. */
export const MAX_ENTRY_BYTES = 2048;
const MAX_METHOD = 64;
const MAX_MESSAGE = 200;

/** A small, secret-free picture of the params for logs. */
export function summarizeParams(params: unknown, depth = 0): unknown {
  if (typeof params === 'string') return clip(params, MAX_STRING);
  if (params === null || typeof params !== 'object') return params;
  if (depth >= 2) return Array.isArray(params) ? `[array of ${params.length}]` : '{…}';
  if (Array.isArray(params)) return params.slice(0, MAX_KEYS).map((v) => summarizeParams(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params).slice(0, MAX_KEYS)) {
    out[clip(k, 32)] = SECRET_KEY.test(k) ? '[redacted]' : summarizeParams(v, depth + 1);
  }
  return out;
}

/** `params` with every secret replaced, nothing else cut: for the console's `ask` dialog. */
export function redactSecrets(params: unknown): unknown {
  if (params === null || typeof params !== 'object') return params;
  if (Array.isArray(params)) return params.map(redactSecrets);
  return Object.fromEntries(
    Object.entries(params).map(([k, v]) => [k, SECRET_KEY.test(k) ? '[redacted]' : redactSecrets(v)]),
  );
}

/** What an unauthenticated caller sent, as key names only: it has not earned more disk than that. */
export function keyNamesOnly(params: unknown): unknown {
  if (params === null || typeof params !== 'object') return typeof params;
  if (Array.isArray(params)) return `[array of ${params.length}]`;
  const keys = Object.keys(params);
  return {
    keys: keys.slice(0, MAX_KEYS).map((k) => clip(k, 32)),
    ...(keys.length > MAX_KEYS ? { more: keys.length - MAX_KEYS } : {}),
  };
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

/** The JSON line for `entry`, at most MAX_ENTRY_BYTES long (plus the newline). */
export function entryLine(entry: AuditEntry): string {
  const capped: AuditEntry = {
    ...entry,
    from: clip(entry.from, MAX_METHOD),
    method: clip(entry.method, MAX_METHOD),
    ...(entry.message === undefined ? {} : { message: clip(entry.message, MAX_MESSAGE) }),
  };
  let line = JSON.stringify(capped);
  if (Buffer.byteLength(line) <= MAX_ENTRY_BYTES) return line;
  line = JSON.stringify({ ...capped, params: keyNamesOnly(capped.params), truncated: true });
  if (Buffer.byteLength(line) <= MAX_ENTRY_BYTES) return line;
  return JSON.stringify({ ...capped, params: '{…}', truncated: true });
}

export interface AuditOptions {
  /** Rotate when the file would pass this size (config audit.maxFileMiB). */
  maxFileBytes?: number;
  /** Rotated files kept beside the live one: audit.log.1 … audit.log.N (config audit.keepFiles). */
  keepFiles?: number;
  /** Entries per second (and burst) one caller may write before logging in. */
  unauthenticatedRate?: RateConfig;
  now?: () => number;
}

export const defaultAuditOptions = {
  maxFileBytes: 16 << 20,
  keepFiles: 4,
  unauthenticatedRate: { perSecond: 2, burst: 20 },
} as const;

export interface AuditLog {
  readonly path: string;
  /** `unauthenticated`: the caller has not logged in; its entries are rate-limited per `from`. */
  append(entry: AuditEntry, opts?: { unauthenticated?: boolean }): Promise<void>;
  tail(lines: number): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

/** Last `lines` entries, reading backwards in blocks: memory is bounded by what is shown. */
async function readTail(path: string, lines: number, maxBytes: number): Promise<AuditEntry[]> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    let start = size;
    const parts: Buffer[] = [];
    let newlines = 0;
    while (start > 0 && newlines <= lines && size - start < maxBytes) {
      const len = Math.min(TAIL_BLOCK, start);
      start -= len;
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, start);
      parts.unshift(buf);
      for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) newlines++;
    }
    // decoded once, so a UTF-8 character split across blocks survives
    const text = Buffer.concat(parts).toString('utf8');
    const all = text.split('\n').filter(Boolean);
    // the first line may be cut in the middle unless the read reached the file start
    const whole = start > 0 ? all.slice(1) : all;
    return whole.slice(-lines).flatMap((l) => parseEntry(l));
  } finally {
    await fh.close();
  }
}

/** A line from an older kvmux (uncapped) or a torn write is skipped, not fatal to the reader. */
function parseEntry(line: string): AuditEntry[] {
  if (line.length > MAX_ENTRY_BYTES * 4) return [];
  try {
    return [JSON.parse(line) as AuditEntry];
  } catch {
    return [];
  }
}

const TAIL_BLOCK = 64 << 10;

async function rotate(path: string, keep: number): Promise<void> {
  await rm(`${path}.${keep}`, { force: true });
  for (let i = keep - 1; i >= 1; i--) {
    await rename(`${path}.${i}`, `${path}.${i + 1}`).catch(() => undefined);
  }
  if (keep >= 1) await rename(path, `${path}.1`);
  else await rm(path, { force: true });
}

interface Throttle {
  rate: RateState;
  suppressed: number;
}

export async function openAuditLog(stateDir: string, opts: AuditOptions = {}): Promise<AuditLog> {
  const maxFileBytes = opts.maxFileBytes ?? defaultAuditOptions.maxFileBytes;
  const keepFiles = opts.keepFiles ?? defaultAuditOptions.keepFiles;
  const unauthRate = opts.unauthenticatedRate ?? defaultAuditOptions.unauthenticatedRate;
  const now = opts.now ?? Date.now;
  const path = join(stateDir, AUDIT_FILE);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const openFile = async () => {
    const h = await open(path, 'a', 0o600);
    await h.chmod(0o600);
    return h;
  };
  let fh: FileHandle = await openFile();
  let size = (await stat(path)).size;
  let chain: Promise<void> = Promise.resolve();
  const throttles = new Map<string, Throttle>();

  const write = async (text: string) => {
    const bytes = Buffer.byteLength(text);
    if (size > 0 && size + bytes > maxFileBytes) {
      await fh.close();
      await rotate(path, keepFiles);
      fh = await openFile();
      size = 0;
    }
    await fh.appendFile(text);
    size += bytes;
  };

  /** Null: drop it (counted). Otherwise the lines to write: a pending suppression summary first. */
  const admit = (entry: AuditEntry): string[] | null => {
    const t = throttles.get(entry.from) ?? { rate: initialRate(unauthRate, now()), suppressed: 0 };
    throttles.set(entry.from, t);
    const step = takeToken(unauthRate, t.rate, now());
    t.rate = step.state;
    if (!step.allowed) {
      t.suppressed++;
      return null;
    }
    const out: string[] = [];
    if (t.suppressed > 0) out.push(entryLine(suppressedEntry(entry.from, t.suppressed)));
    t.suppressed = 0;
    return out;
  };

  const suppressedEntry = (from: string, n: number): AuditEntry => ({
    time: new Date(now()).toISOString(),
    from,
    method: 'audit.suppressed',
    params: { count: n },
    outcome: 'error',
    message: `${n} entries suppressed`,
  });

  const flushSuppressed = () =>
    [...throttles.entries()]
      .filter(([, t]) => t.suppressed > 0)
      .map(([from, t]) => {
        const line = entryLine(suppressedEntry(from, t.suppressed));
        t.suppressed = 0;
        return line;
      });

  const enqueue = (lines: string[]) => {
    if (lines.length === 0) return chain;
    const text = lines.map((l) => `${l}\n`).join('');
    // serialised so concurrent calls never interleave inside one line
    chain = chain.then(() => write(text)).catch(() => undefined);
    return chain;
  };

  return {
    path,
    append(entry, o = {}) {
      const lead = o.unauthenticated ? admit(entry) : [];
      if (lead === null) return chain;
      return enqueue([...lead, entryLine(entry)]);
    },
    async tail(lines) {
      await chain;
      return readTail(path, lines, lines * (MAX_ENTRY_BYTES + 1) + TAIL_BLOCK);
    },
    async close() {
      await enqueue(flushSuppressed());
      await chain;
      await fh.close();
    },
  };
}
