import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { stringify } from 'yaml';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic-file.js';
import { ConfigError, errnoName } from '../util/errors.js';
import { checkSemantics, loadConfigFile, type ParsedYaml, parseYamlWith } from './config.js';
import { type Config, nameSchema, type Resources, type VmConfig, vmSchema } from './schema.js';

/**
 * Configuration as state: kvmux's own writable layer in `<stateDir>/config.yaml`, over the
 * read-only `--config` file. It holds whole VM entries made or changed at run time (an entry
 * replaces the read-only file's entry of the same name) and the names of VMs deleted at run time.
 * Every change is checked like the file itself (same zod schema, same semantic rules, errors with
 * the overlay's line numbers) before it is written, atomically.
 */
export const OVERLAY_FILE = 'config.yaml';

export const overlaySchema = z.strictObject({
  vms: z.array(vmSchema).default([]),
  /** VMs of the read-only config or found images that were deleted here. */
  removed: z.array(nameSchema).default([]),
});
export type Overlay = z.infer<typeof overlaySchema>;

export const emptyOverlay = (): Overlay => ({ vms: [], removed: [] });

export const overlayPath = (stateDir: string) => join(stateDir, OVERLAY_FILE);

const HEADER =
  '# Written by kvmux (vm.create, vm.update, vm.delete). Layered over the read-only --config file:\n' +
  '# an entry here replaces the entry of the same name there; `removed` hides VMs and found images.\n';

/** The overlay as it would be written: the text and its parse (so errors carry its lines). */
function parseOverlayText(text: string, source: string): ParsedYaml<Overlay> {
  return parseYamlWith(overlaySchema, text, source);
}

/** Fields written even when they equal today's default: what a person sized or chose. */
const ALWAYS_KEPT = new Set(['name', 'backend', 'disk', 'memoryMiB', 'cpus', 'command', 'virtualbox']);

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `value` without the keys that equal `defaults` (recursively), except the ALWAYS_KEPT ones. */
function withoutDefaults(value: Plain, defaults: Plain): Plain {
  const out: Plain = {};
  for (const [k, v] of Object.entries(value)) {
    const d = defaults[k];
    if (v === undefined) continue;
    if (ALWAYS_KEPT.has(k)) out[k] = v;
    else if (isPlain(v) && isPlain(d)) out[k] = withoutDefaults(v, d);
    else if (!isDeepStrictEqual(v, d)) out[k] = v;
  }
  return out;
}

/**
 * A VM entry as written: only what differs from the schema's defaults (and the sizes a person
 * chose), so a later kvmux's better defaults still reach VMs that were changed at run time, and a
 * key a later version renames does not sit in the file for ever.
 */
export function minimalVm(vm: VmConfig): Plain {
  const skeleton = vmSchema.safeParse({
    name: vm.name,
    backend: vm.backend,
    ...(vm.qemu ? { qemu: {} } : {}),
    ...(vm.virtualbox ? { virtualbox: {} } : {}),
    ...(vm.command ? { command: vm.command } : {}),
  });
  return skeleton.success ? withoutDefaults(vm as unknown as Plain, skeleton.data as unknown as Plain) : vm;
}

export function overlayText(overlay: Overlay): string {
  return HEADER + stringify({ vms: overlay.vms.map(minimalVm), removed: overlay.removed });
}

/** The overlay in stateDir; none yet is an empty one. */
export function loadOverlay(stateDir: string): Overlay {
  const path = overlayPath(stateDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoName(err) === 'ENOENT') return emptyOverlay();
    throw new ConfigError(`${path}: cannot read: ${errnoName(err)}`, undefined, { cause: err });
  }
  return parseOverlayText(text, path).value;
}

/** The read-only config's VMs with the overlay applied: replaced in place, deleted ones gone, new ones last. */
export function mergeVms(base: readonly VmConfig[], overlay: Overlay): VmConfig[] {
  const removed = new Set(overlay.removed);
  const mine = new Map(overlay.vms.map((v) => [v.name, v]));
  const out = base.filter((v) => !removed.has(v.name)).map((v) => mine.get(v.name) ?? v);
  const have = new Set(out.map((v) => v.name));
  return [...out, ...overlay.vms.filter((v) => !have.has(v.name) && !removed.has(v.name))];
}

/**
 * The effective config of `base` + `overlay`, checked: schema problems of the overlay and semantic
 * problems (unknown network, bad chord, duplicate name, …) name the overlay file and line when the
 * VM comes from the overlay.
 */
export function layerConfig(base: Config, overlay: Overlay, source: string): Config {
  const parsed = parseOverlayText(overlayText(overlay), source);
  const vms = mergeVms(base.vms, parsed.value);
  const cfg: Config = { ...base, vms };
  const indexInOverlay = new Map(parsed.value.vms.map((v, j) => [v.name, j]));
  const problems = checkSemantics(cfg).map((p) => {
    const [head, i, ...rest] = p.path;
    const vm = head === 'vms' && typeof i === 'number' ? vms[i] : undefined;
    const j = vm ? indexInOverlay.get(vm.name) : undefined;
    if (j !== undefined) return parsed.at(['vms', j, ...rest], p.message);
    return `${source}: ${p.path.join('.')}${vm ? ` (VM "${vm.name}")` : ''}: ${p.message}`;
  });
  if (problems.length > 0) throw new ConfigError(problems.join('\n'), problems);
  return cfg;
}

export async function saveOverlay(stateDir: string, overlay: Overlay): Promise<void> {
  await writeFileAtomic(overlayPath(stateDir), overlayText(overlay), 0o600);
}

export interface EffectiveConfig {
  config: Config;
  base: Config;
  overlay: Overlay;
  /** `kvmux run` only: kvmux's layer did not load or no longer fits the file; moved here and ignored. */
  quarantined?: { path: string; error: string };
}

/**
 * `kvmux run` and `kvmux check`: the --config file, then kvmux's own layer from its stateDir.
 * `check` reports a bad layer as an error. `run` must not brick an appliance nobody has a shell on
 * (a layer naming a network the new read-only file dropped, say): with `quarantine` the layer is
 * renamed to `config.yaml.bad-<time>` and the service starts from the read-only file alone.
 */
export function loadEffectiveConfig(path: string, opts: { quarantine?: boolean } = {}): EffectiveConfig {
  const base = loadConfigFile(path);
  try {
    const overlay = loadOverlay(base.stateDir);
    return { config: layerConfig(base, overlay, overlayPath(base.stateDir)), base, overlay };
  } catch (err) {
    if (!opts.quarantine || !(err instanceof ConfigError)) throw err;
    const bad = `${overlayPath(base.stateDir)}.bad-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(overlayPath(base.stateDir), bad);
    return { config: base, base, overlay: emptyOverlay(), quarantined: { path: bad, error: err.message } };
  }
}

// ---- changes: pure functions from (overlay, request) to the next overlay ---------------------

export interface VmCreate {
  readonly name: string;
  readonly disk: string;
  readonly backend?: 'qemu' | 'virtualbox' | undefined;
  readonly memoryMiB?: number | undefined;
  readonly cpus?: number | undefined;
  readonly nics?: VmConfig['nics'] | undefined;
  readonly guestChannel?: boolean | undefined;
  readonly autostart?: boolean | undefined;
}

export interface VmPatch {
  readonly memoryMiB?: number | undefined;
  readonly cpus?: number | undefined;
  readonly disk?: string | undefined;
  readonly nics?: VmConfig['nics'] | undefined;
  readonly autostart?: boolean | undefined;
  readonly guestChannel?: boolean | undefined;
  readonly blockedKeys?: string[] | undefined;
  /** Replaces the VM's limits; an empty object removes them. */
  readonly resources?: Resources | undefined;
}

type Defined<T> = { [K in keyof T]?: Exclude<T[K], undefined> };
const defined = <T extends object>(o: T): Defined<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Defined<T>;

/** A VM entry from a vm.create request (`disk` already resolved to an absolute path). */
export function vmFromCreate(req: VmCreate): VmConfig {
  const backend = req.backend ?? (/\.vbox$/i.test(req.disk) ? 'virtualbox' : 'qemu');
  const sizes = defined({ memoryMiB: req.memoryMiB, cpus: req.cpus });
  const machine =
    backend === 'qemu'
      ? { qemu: { disk: req.disk, ...sizes } }
      : {
          virtualbox: {
            vmName: req.name,
            ...(/\.vbox$/i.test(req.disk) ? { settingsFile: req.disk } : { disk: req.disk }),
            ...sizes,
          },
        };
  return vmSchema.parse({
    name: req.name,
    backend,
    ...machine,
    ...defined({ nics: req.nics, guestChannel: req.guestChannel, autostart: req.autostart }),
  });
}

export function withVm(overlay: Overlay, vm: VmConfig): Overlay {
  const exists = overlay.vms.some((v) => v.name === vm.name);
  return {
    vms: exists ? overlay.vms.map((v) => (v.name === vm.name ? vm : v)) : [...overlay.vms, vm],
    removed: overlay.removed.filter((n) => n !== vm.name),
  };
}

/** The changed entry: fields of `patch` applied to `vm` (memory and CPUs go to its backend block). */
export function patchVm(vm: VmConfig, patch: VmPatch): VmConfig {
  const sizes = defined({ memoryMiB: patch.memoryMiB, cpus: patch.cpus });
  const next: VmConfig = { ...vm, ...defined({ nics: patch.nics, autostart: patch.autostart }) };
  if (patch.guestChannel !== undefined) next.guestChannel = patch.guestChannel;
  if (patch.blockedKeys !== undefined) next.blockedKeys = patch.blockedKeys;
  if (patch.resources !== undefined) {
    if (Object.keys(patch.resources).length === 0) delete next.resources;
    else next.resources = patch.resources;
  }
  if (vm.backend === 'qemu') {
    const q = vm.qemu ?? vmSchema.shape.qemu.unwrap().parse({});
    next.qemu = { ...q, ...sizes, ...(patch.disk !== undefined ? { disk: patch.disk } : {}) };
    // more memory than the balloon ceiling: the VM boots with it next time (the ceiling follows)
    const max = next.qemu.maxMemoryMiB;
    if (max !== undefined && next.qemu.memoryMiB > max) next.qemu.maxMemoryMiB = next.qemu.memoryMiB;
  } else if (vm.backend === 'virtualbox') {
    const v = vm.virtualbox ?? {};
    next.virtualbox = { ...v, ...sizes, ...(patch.disk !== undefined ? { disk: patch.disk } : {}) };
  }
  return vmSchema.parse(next);
}

/** Delete `name`: drop its overlay entry, and hide it when the read-only config or an image defines it. */
export function withoutVm(overlay: Overlay, name: string, hide: boolean): Overlay {
  return {
    vms: overlay.vms.filter((v) => v.name !== name),
    removed: hide && !overlay.removed.includes(name) ? [...overlay.removed, name] : overlay.removed,
  };
}
