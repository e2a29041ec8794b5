/**
 * Pure text for the admin screen: tables and messages built from control-method results. The
 * results come over the wire, so every field is read defensively and unknown extras are ignored.
 */
export interface VmRow {
  readonly name: string;
  readonly backend: string;
  readonly state: string;
  readonly pid: number | null;
  readonly memoryMiB: number | null;
  readonly cpus: number | null;
  readonly cpuPercent: number | null;
  readonly autostart?: boolean;
  /** cgroup limits in short form (`cpu 0.3 set 0 mem 64M io 500`), '' when none. */
  readonly limits: string;
  /** The running or last save/restore/migrate job in short form, '' when none. */
  readonly job: string;
}

const str = (v: unknown, d = '-'): string => (typeof v === 'string' && v.length > 0 ? v : d);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const rec = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/** `vm.list` result → rows (contract: `[{name, backend, state, pid, memoryMiB}]`, cpu fields optional). */
export function vmRows(result: unknown): VmRow[] {
  if (!Array.isArray(result)) return [];
  return result.map((v) => {
    const r = rec(v);
    return {
      name: str(r['name'], '?'),
      backend: str(r['backend']),
      // the supervisor stopped restarting a crashing VM: say so, it needs a person
      state:
        r['gaveUp'] === true
          ? 'gave-up'
          : r['frozen'] === true
            ? 'frozen'
            : r['savedAt'] && r['state'] === 'stopped'
              ? 'saved'
              : str(r['state'], 'unknown'),
      pid: num(r['pid']),
      memoryMiB: num(r['memoryMiB']),
      cpus: num(r['cpus']),
      cpuPercent: num(r['cpuPercent']),
      ...(typeof r['autostart'] === 'boolean' ? { autostart: r['autostart'] } : {}),
      limits: limitsText(r['resources']),
      job: jobShort(r['job']),
    };
  });
}

/** blessed colour tag per VM state, so the state reads at a glance. */
const STATE_COLOUR: Readonly<Record<string, string>> = {
  running: 'green',
  starting: 'yellow',
  stopping: 'yellow',
  stopped: 'white',
  crashed: 'red',
  'gave-up': 'red',
  frozen: 'cyan',
  saved: 'cyan',
};

/** vm.list `resources` → `cpu 0.3 set 0 mem 64M io 500` ('' when no limits). */
export function limitsText(v: unknown): string {
  const r = rec(v);
  const parts = [
    num(r['cpuQuota']) === null ? '' : `cpu ${num(r['cpuQuota'])}`,
    typeof r['cpuset'] === 'string' ? `set ${r['cpuset']}` : '',
    num(r['memoryMaxMiB']) === null ? '' : `mem ${num(r['memoryMaxMiB'])}M`,
    num(r['ioWeight']) === null ? '' : `io ${num(r['ioWeight'])}`,
  ];
  return parts.filter(Boolean).join(' ');
}

/** vm.list `job` → `migrate 42%`, `save done`, `restore FAILED: why` ('' when none). */
export function jobShort(v: unknown): string {
  const j = rec(v);
  const kind = `${str(j['kind'], '')}${j['kind'] && j['keyed'] === true ? ' (keyed)' : ''}`;
  if (!kind) return '';
  if (j['status'] === 'completed') {
    const down = num(j['downtimeMs']);
    return `${kind} done${j['kind'] === 'migrate' && down !== null ? ` (downtime ${down} ms)` : ''}`;
  }
  if (j['status'] === 'failed') return `${kind} FAILED: ${str(j['error'], '?')}`;
  const pct = num(j['percent']);
  const done = num(j['transferredBytes']);
  const total = num(j['totalBytes']);
  const bar = done !== null && total ? ` ${progressBar(done, total, 10)}` : '';
  return `${kind} ${pct === null ? str(j['qemuStatus'], '…') : `${Math.floor(pct)}%`}${bar}`;
}

/**
 * The admin's limits prompt, `cpu=0.5 cpuset=0-1 mem=256 io=200` (any subset; `none` clears
 * them), → vm.setResources params, or an error naming the bad word.
 */
export function parseLimits(
  text: string,
): { ok: true; value: Record<string, number | string> } | { ok: false; error: string } {
  const value: Record<string, number | string> = {};
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (words.length === 1 && words[0] === 'none') return { ok: true, value };
  const KEYS: Record<string, string> = {
    cpu: 'cpuQuota',
    cpuset: 'cpuset',
    mem: 'memoryMaxMiB',
    io: 'ioWeight',
  };
  for (const w of words) {
    const [k, v] = w.split('=');
    const key = k ? KEYS[k] : undefined;
    if (!key || v === undefined || v === '')
      return { ok: false, error: `"${w}": use cpu=N cpuset=LIST mem=MiB io=N` };
    if (key === 'cpuset') value[key] = v;
    else if (!Number.isFinite(Number(v))) return { ok: false, error: `"${w}": ${k} must be a number` };
    else value[key] = Number(v);
  }
  return { ok: true, value };
}

const cell = (text: string, width: number): string =>
  text.length > width ? `${text.slice(0, width - 1)}~` : text.padEnd(width);

/** Column widths fit an 80-column terminal (a guest's console) beside the 22-column menu. */
const W = { name: 14, backend: 8, state: 9, pid: 7, mem: 9 } as const;

export const VM_HEADER = `${cell('NAME', W.name)} ${cell('BACKEND', W.backend)} ${cell('STATE', W.state)} ${cell('PID', W.pid)} ${cell('MEMORY', W.mem)} CPU`;

export function vmLine(r: VmRow): { text: string; colour: string } {
  const mem = r.memoryMiB === null ? '-' : `${r.memoryMiB} MiB`;
  const cpu = [
    r.cpus === null ? '' : `${r.cpus} vcpu`,
    r.cpuPercent === null ? '' : `${r.cpuPercent.toFixed(0)}%`,
  ]
    .filter(Boolean)
    .join(' ');
  const extra = [r.limits && `[${r.limits}]`, r.job && `<${r.job}>`].filter(Boolean).join(' ');
  const text = `${cell(r.name, W.name)} ${cell(r.backend, W.backend)} ${cell(r.state, W.state)} ${cell(r.pid === null ? '-' : String(r.pid), W.pid)} ${cell(mem, W.mem)} ${cpu || '-'}${extra ? ` ${extra}` : ''}`;
  return { text, colour: STATE_COLOUR[r.state] ?? 'white' };
}

/**
 * `vm.setMemory` result → a sentence that says plainly when the change takes effect. Accepts
 * `{live: bool}`, `{applied: 'live'|'next-start'}` or a bare boolean (the backend's own answer).
 */
export function memoryMessage(name: string, mib: number, result: unknown): string {
  const r = rec(result);
  const applied = typeof result === 'boolean' ? result : (r['live'] ?? r['applied'] ?? r['appliedLive']);
  if (applied === true || applied === 'live') return `${name}: memory set to ${mib} MiB, applied live`;
  if (applied === false || applied === 'next-start' || applied === 'nextStart' || applied === 'restart') {
    return `${name}: memory set to ${mib} MiB, takes effect on the next start`;
  }
  return `${name}: memory set to ${mib} MiB (the service did not say whether it applied live)`;
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** `[#########.........]  45%  12.0 MiB / 26.7 MiB` */
export function progressBar(done: number, total: number, width = 30): string {
  const frac = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const fill = Math.round(frac * width);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct}  ${bytes(done)} / ${bytes(total)}`;
}

/** `net.list` → lines: one per bridge (addresses must be none), one per member with drop counters. */
export function netLines(result: unknown): Array<{ text: string; colour: string }> {
  if (!Array.isArray(result) || result.length === 0)
    return [{ text: 'no networks configured', colour: 'white' }];
  const out: Array<{ text: string; colour: string }> = [];
  for (const n of result.map(rec)) {
    const addrs = Array.isArray(n['addresses']) ? (n['addresses'] as unknown[]).map(String) : [];
    const uplink = str(n['uplink'], 'none');
    out.push({
      text: `${str(n['name'], '?')}  bridge ${str(n['bridge'])}  uplink ${uplink}`,
      colour: 'cyan',
    });
    out.push(
      addrs.length === 0
        ? { text: '  host addresses: none (anonymous)', colour: 'green' }
        : { text: `  host addresses: ${addrs.join(', ')}  <- SHOULD BE NONE`, colour: 'red' },
    );
    const members = Array.isArray(n['members']) ? (n['members'] as unknown[]).map(rec) : [];
    if (members.length === 0) out.push({ text: '  (no members)', colour: 'white' });
    for (const m of members) {
      const who = str(m['vm'], '') || `ns ${str(m['namespace'])}`;
      const drops = rec(m['drops']);
      const dropped = num(drops['packets']) ?? 0;
      out.push({
        text: `  ${cell(str(m['tap']), 15)} ${cell(who, 16)} ${cell(str(m['mac']), 18)} drops ${dropped} pkts / ${bytes(num(drops['bytes']) ?? 0)}`,
        colour: dropped > 0 ? 'yellow' : 'white',
      });
    }
  }
  return out;
}

/** Any JSON result as indented `key: value` lines (host.update.status, service.status). */
export function kvLines(value: unknown, indent = ''): string[] {
  if (Array.isArray(value))
    return value.flatMap((v, i) => [`${indent}- [${i}]`, ...kvLines(v, `${indent}    `)]);
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
      v && typeof v === 'object'
        ? [`${indent}${k}:`, ...kvLines(v, `${indent}  `)]
        : [`${indent}${k}: ${String(v)}`],
    );
  }
  return [`${indent}${String(value)}`];
}

/** Log/audit results: an array of strings or of objects (one JSON line each), or `{lines: [...]}`. */
export function logLines(result: unknown): string[] {
  const arr = Array.isArray(result) ? result : (rec(result)['lines'] ?? rec(result)['entries']);
  if (!Array.isArray(arr)) return kvLines(result);
  return arr.map((l) => (typeof l === 'string' ? l : JSON.stringify(l)));
}

/** blessed tags in server-provided text must not be interpreted. */
export function escapeTags(text: string): string {
  return text.replace(/[{}]/g, (c) => (c === '{' ? '{open}' : '{close}'));
}

/** After vm.update: applied live, or "applies at next start" (the VM must (re)start for it). */
export function changeMessage(name: string, what: string, result: unknown): string {
  const r = rec(result);
  const later = Array.isArray(r['nextStart']) && r['nextStart'].length > 0;
  return `${name}: ${what}, ${later ? 'applies at next start' : 'applied live'}`;
}

/**
 * Key hints on as few lines of `width` columns as they take (at most `maxLines`): broken only
 * between hints (two spaces apart), so no key is ever cut from what it does. Each line starts
 * with a space; a single hint wider than the line is cut. When they need more than `maxLines`,
 * the last line ends in "…" (in place of the hints that do not fit), so none goes missing unsaid.
 */
export function wrapHints(text: string, width: number, maxLines = 3): string[] {
  const room = Math.max(1, width - 1);
  const hints = text.split(/ {2,}/).filter(Boolean);
  const lines: string[][] = [];
  let cur: string[] = [];
  let len = 0;
  for (const hint of hints) {
    const next = cur.length ? len + 2 + hint.length : hint.length;
    if (next <= room || cur.length === 0) {
      cur.push(hint);
      len = next;
    } else {
      lines.push(cur);
      cur = [hint];
      len = hint.length;
    }
  }
  if (cur.length) lines.push(cur);
  if (lines.length > maxLines) {
    const last = lines[maxLines - 1]!;
    while (last.length > 1 && `${last.join('  ')}  …`.length > room) last.pop();
    const shown = `${last.join('  ')}  …`;
    // a lone hint too wide for it is cut to make room for the "…"
    lines[maxLines - 1] = [shown.length <= room ? shown : `${last.join('  ').slice(0, room - 1)}…`];
  }
  return lines.slice(0, maxLines).map((l) => ` ${l.join('  ').slice(0, room)}`);
}
