import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * Append-only audit log of control calls: one JSON object per line in `<stateDir>/audit.log`.
 * Params are summarised and secrets redacted: no password or chunk data ever reaches the disk.
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

/** A small, secret-free picture of the params for logs and confirmation prompts. */
export function summarizeParams(params: unknown, depth = 0): unknown {
  if (typeof params === 'string') {
    return params.length > MAX_STRING ? `${params.slice(0, MAX_STRING)}…(${params.length} chars)` : params;
  }
  if (params === null || typeof params !== 'object') return params;
  if (depth >= 2) return Array.isArray(params) ? `[array of ${params.length}]` : '{…}';
  if (Array.isArray(params)) return params.slice(0, MAX_KEYS).map((v) => summarizeParams(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params).slice(0, MAX_KEYS)) {
    out[k] = SECRET_KEY.test(k) ? redacted(v) : summarizeParams(v, depth + 1);
  }
  return out;
}

function redacted(v: unknown): string {
  return typeof v === 'string' ? `[redacted ${v.length} chars]` : '[redacted]';
}

/** Last `lines` entries, reading backwards in blocks so a long log costs only what is shown. */
async function readTail(path: string, lines: number): Promise<AuditEntry[]> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    let start = size;
    const parts: Buffer[] = [];
    let newlines = 0;
    while (start > 0 && newlines <= lines) {
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
    return whole.slice(-lines).map((l) => JSON.parse(l) as AuditEntry);
  } finally {
    await fh.close();
  }
}

const TAIL_BLOCK = 64 << 10;

export interface AuditLog {
  readonly path: string;
  append(entry: AuditEntry): Promise<void>;
  tail(lines: number): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export async function openAuditLog(stateDir: string): Promise<AuditLog> {
  const path = join(stateDir, AUDIT_FILE);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const fh: FileHandle = await open(path, 'a', 0o600);
  await fh.chmod(0o600);
  let chain: Promise<void> = Promise.resolve();
  return {
    path,
    append(entry) {
      // serialised so concurrent calls never interleave inside one line
      chain = chain.then(() => fh.appendFile(`${JSON.stringify(entry)}\n`)).catch(() => undefined);
      return chain;
    },
    async tail(lines) {
      await chain;
      return readTail(path, lines);
    },
    async close() {
      await chain;
      await fh.close();
    },
  };
}
