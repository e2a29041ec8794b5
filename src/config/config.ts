import { readFileSync } from 'node:fs';
import { type Document, isNode, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { parseChord } from '../input/chord.js';
import { keyCode } from '../input/codes.js';
import { networkProblems } from '../net/config-check.js';
import { ConfigError, errnoName } from '../util/errors.js';
import { type Config, configSchema } from './schema.js';

export * from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/kvmux/kvmux.yaml';

/** `--config`, then $KVMUX_CONFIG, then /etc/kvmux/kvmux.yaml (the contract's order). */
export function resolveConfigPath(flag?: string): string {
  return flag ?? process.env['KVMUX_CONFIG'] ?? DEFAULT_CONFIG_PATH;
}

export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: cannot read config: ${errnoName(err)}`, undefined, { cause: err });
  }
  return parseConfigText(text, path);
}

/** Parse YAML text into a validated config; every problem is collected with its key and line. */
export function parseConfigText(text: string, source = '<config>'): Config {
  const { value, at } = parseYamlWith(configSchema, text, source);
  const semantic = checkSemantics(value).map((p) => at(p.path, p.message));
  if (semantic.length > 0) throw new ConfigError(semantic.join('\n'), semantic);
  return value;
}

/** A YAML document parsed with `schema`; `at` formats a later problem with its key and line. */
export interface ParsedYaml<T> {
  readonly value: T;
  readonly at: (path: (string | number)[], message: string) => string;
}

export function parseYamlWith<S extends z.ZodType>(
  schema: S,
  text: string,
  source: string,
): ParsedYaml<z.output<S>> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      return `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: YAML ${e.message.split('\n')[0]}`;
    });
    throw new ConfigError(issues.join('\n'), issues);
  }
  const raw = (doc.toJS() ?? {}) as unknown;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => formatIssue(i, doc, lineCounter, source));
    throw new ConfigError(issues.join('\n'), issues);
  }
  return { value: parsed.data, at: (path, message) => formatAt(path, message, doc, lineCounter, source) };
}

function formatIssue(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, source: string): string {
  let path = issue.path as (string | number)[];
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path = [...path, issue.keys[0] ?? ''];
    message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  return formatAt(path, message, doc, lc, source);
}

function formatAt(
  path: (string | number)[],
  message: string,
  doc: Document,
  lc: LineCounter,
  source: string,
): string {
  const key = path.length > 0 ? path.join('.') : '(top level)';
  const line = lineOf(doc, lc, path);
  return `${source}${line ? `:${line}` : ''}: ${key}: ${message}`;
}

function lineOf(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

export interface Problem {
  path: (string | number)[];
  message: string;
}

/** Chords and key names are parsed here, so a bad one is a config error with its line, not a crash later. */
function checkKeys(cfg: Config, problems: Problem[]): void {
  const chord = (path: (string | number)[], text: string) => {
    try {
      parseChord(text);
    } catch (err) {
      problems.push({ path, message: (err as Error).message });
    }
  };
  const hk = cfg.input.hotkey;
  for (const k of ['key', 'next', 'previous'] as const)
    if (keyCode(hk[k]) === undefined)
      problems.push({ path: ['input', 'hotkey', k], message: `unknown key name "${hk[k]}"` });
  if (hk.next === hk.previous || hk.next === hk.key || hk.previous === hk.key)
    problems.push({
      path: ['input', 'hotkey'],
      message: 'key, next and previous must be three different keys',
    });
  for (const [i, c] of (cfg.input.blocked ?? []).entries()) chord(['input', 'blocked', i], c);
  for (const [i, vm] of cfg.vms.entries())
    for (const [j, c] of vm.blockedKeys.entries()) chord(['vms', i, 'blockedKeys', j], c);
}

/** Cross-field rules zod cannot express per field. */
export function checkSemantics(cfg: Config): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  cfg.vms.forEach((vm, i) => {
    if (vm.name === 'admin')
      problems.push({ path: ['vms', i, 'name'], message: '"admin" is reserved for the host admin screen' });
    if (seen.has(vm.name))
      problems.push({ path: ['vms', i, 'name'], message: `duplicate VM name "${vm.name}"` });
    seen.add(vm.name);
    if (vm.backend === 'subhost' && !vm.subhost?.root && !vm.subhost?.disks[0])
      problems.push({
        path: ['vms', i, 'subhost'],
        message: 'backend "subhost" needs subhost.root or a DISKS root',
      });
    if (vm.backend === 'command' && !vm.command)
      problems.push({ path: ['vms', i, 'command'], message: 'required for backend "command"' });
    if (vm.backend === 'qemu' && !vm.qemu?.disk && !vm.qemu?.kernel)
      problems.push({ path: ['vms', i, 'qemu'], message: 'backend "qemu" needs qemu.disk or qemu.kernel' });
    const q = vm.qemu;
    if (q?.maxMemoryMiB !== undefined && q.maxMemoryMiB < q.memoryMiB)
      problems.push({
        path: ['vms', i, 'qemu', 'maxMemoryMiB'],
        message: `must be at least memoryMiB (${q.memoryMiB})`,
      });
  });
  problems.push(...networkProblems(cfg));
  checkKeys(cfg, problems);
  const netSeen = new Set<string>();
  cfg.networks.forEach((n, i) => {
    if (netSeen.has(n.name))
      problems.push({ path: ['networks', i, 'name'], message: `duplicate network "${n.name}"` });
    netSeen.add(n.name);
  });
  return problems;
}
