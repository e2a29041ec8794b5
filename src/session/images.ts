import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type Config, nameSchema, type VmConfig, vmSchema } from '../config/schema.js';
import { inspectImageSync } from './image-inspect.js';
import { type ImageOrigins, readOrigins, uploadedBy } from './image-origins.js';

/**
 * Image discovery: every disk image in `imageDirs` becomes a VM (stopped unless its sidecar or
 * `imageDefaults.autostart` says autostart), with an optional sidecar `<image>.yaml` (or
 * `<stem>.yaml`) holding its settings. Images a guest uploaded take neither; disks that name other
 * files (backing, data file, extents) are refused.
 * Explicit `vms` entries win over images with the same name or disk.
 */
export const IMAGE_PATTERN = /\.(qcow2|raw|img|vdi|vbox)$/i;

/** A sidecar is a VM entry whose name and backend may be left out. */
export const sidecarSchema = vmSchema.extend({
  name: nameSchema.optional(),
  backend: vmSchema.shape.backend.optional(),
  autostart: z.boolean().default(false),
});

/** What discovery needs besides the folders: who uploaded what, and the admin's defaults. */
export interface DiscoveryOptions {
  /** stateDir/image-origins.json: images a guest uploaded get no sidecar and no autostart. */
  readonly stateDir?: string;
  readonly imageDefaults?: Partial<Pick<Config['imageDefaults'], 'autostart' | 'allowBackingFiles'>>;
  /** Inspect disks for backing/data files (default on; pure-logic tests turn it off). */
  readonly inspect?: boolean;
}

export interface DiscoveryResult {
  readonly vms: VmConfig[];
  /** One line per skipped image or bad sidecar, naming the file and the key. */
  readonly problems: string[];
}

/** A safe VM name from a file name: lower-case [a-z0-9-], at most 31 characters. */
export function nameFromFile(file: string): string {
  const stem = basename(file).replace(IMAGE_PATTERN, '');
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 31)
    .replace(/-+$/, '');
  return name === '' || name === 'admin' ? `image-${name || 'x'}`.slice(0, 31) : name;
}

function uniqueName(base: string, taken: Set<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) {
    const candidate = `${base.slice(0, 31 - String(i).length - 1)}-${i}`;
    if (!taken.has(candidate)) return candidate;
  }
}

function sidecarPath(image: string): string | null {
  const candidates = [`${image}.yaml`, image.replace(IMAGE_PATTERN, '.yaml')];
  return candidates.find((p) => p !== image && existsSync(p)) ?? null;
}

function readSidecar(path: string): { value?: z.infer<typeof sidecarSchema>; problems: string[] } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8')) ?? {};
  } catch (err) {
    return { problems: [`${path}: YAML ${(err as Error).message.split('\n')[0]}`] };
  }
  const parsed = sidecarSchema.safeParse(raw);
  if (parsed.success) return { value: parsed.data, problems: [] };
  return {
    problems: parsed.error.issues.map((i) => `${path}: ${i.path.join('.') || '(top level)'}: ${i.message}`),
  };
}

function vmFromImage(
  image: string,
  name: string,
  side: z.infer<typeof sidecarSchema> | undefined,
  autostart: boolean,
): VmConfig {
  const isVbox = /\.vbox$/i.test(image);
  const backend = side?.backend ?? (isVbox ? 'virtualbox' : 'qemu');
  const base = {
    ...(side ?? {}),
    name: side?.name ?? name,
    backend,
    autostart: side?.autostart ?? autostart,
  };
  if (backend === 'qemu') return vmSchema.parse({ ...base, qemu: { ...(side?.qemu ?? {}), disk: image } });
  if (backend === 'virtualbox')
    return vmSchema.parse({ ...base, virtualbox: { vmName: name, ...(side?.virtualbox ?? {}) } });
  return vmSchema.parse(base);
}

/** A found disk as it will be opened: refused when it names another file. .vbox files are XML, not disks. */
function imageProblem(image: string, opts: DiscoveryOptions): string | null {
  if (opts.inspect === false || /\.vbox$/i.test(image)) return null;
  const bad = inspectImageSync(image, { allowBackingFiles: opts.imageDefaults?.allowBackingFiles ?? false });
  return bad ? `${image}: ${bad}` : null;
}

function listImages(dir: string, problems: string[]): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => IMAGE_PATTERN.test(f))
      .sort()
      .map((f) => join(resolve(dir), f))
      .filter((p) => statSync(p, { throwIfNoEntry: false })?.isFile() ?? false);
  } catch (err) {
    problems.push(`${dir}: cannot scan image dir: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return [];
  }
}

/** The disks discovery will inspect, for prefetchInspections (a rescan then never blocks on qemu-img). */
export function imageFilesIn(imageDirs: readonly string[]): string[] {
  return imageDirs.flatMap((d) => listImages(d, [])).filter((p) => !/\.vbox$/i.test(p));
}

export function discoverImages(
  imageDirs: readonly string[],
  explicit: readonly VmConfig[] = [],
  opts: DiscoveryOptions = {},
): DiscoveryResult {
  const problems: string[] = [];
  const taken = new Set(explicit.map((v) => v.name));
  const explicitDisks = new Set(explicit.flatMap((v) => (v.qemu?.disk ? [resolve(v.qemu.disk)] : [])));
  const origins: ImageOrigins = opts.stateDir ? readOrigins(opts.stateDir) : {};
  const vms: VmConfig[] = [];
  for (const dir of imageDirs) {
    for (const image of listImages(dir, problems)) {
      if (explicitDisks.has(image)) continue;
      const bad = imageProblem(image, opts);
      if (bad) {
        problems.push(bad);
        continue;
      }
      // a guest's upload never inherits a sidecar (matched by name, it could be another image's)
      const byGuest = uploadedBy(origins, image) !== null;
      const side = byGuest ? null : sidecarPath(image);
      const sidecar = side ? readSidecar(side) : { problems: [] };
      if (sidecar.problems.length > 0) {
        problems.push(...sidecar.problems);
        continue;
      }
      const derived = sidecar.value?.name ?? nameFromFile(image);
      if (explicit.some((v) => v.name === derived)) continue;
      const name = uniqueName(derived, taken);
      const autostart = !byGuest && (opts.imageDefaults?.autostart ?? false);
      try {
        vms.push(vmFromImage(image, name, sidecar.value ? { ...sidecar.value, name } : undefined, autostart));
        taken.add(name);
      } catch (err) {
        problems.push(`${image}: cannot make a VM of it: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  return { vms, problems };
}

/** The config's VMs followed by those discovered in its imageDirs. */
export function allVms(
  config: Pick<Config, 'imageDirs' | 'vms'> & Partial<Pick<Config, 'stateDir' | 'imageDefaults'>>,
  opts: Pick<DiscoveryOptions, 'inspect'> = {},
): DiscoveryResult {
  const found = discoverImages(config.imageDirs, config.vms, {
    ...opts,
    ...(config.stateDir ? { stateDir: config.stateDir } : {}),
    ...(config.imageDefaults ? { imageDefaults: config.imageDefaults } : {}),
  });
  return { vms: [...config.vms, ...found.vms], problems: found.problems };
}
