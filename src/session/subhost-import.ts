import { basename, join } from 'node:path';
import { ConfigError } from '../util/errors.js';

/**
 * `kvmux import-subhost DIR`: the seed's subhost layout (DIR/config, a bash include setting
 * DISKS=( dev:part:image … ) and BRIDGES=( bridge:MAC … ), and DIR/root) as a kvmux VM entry. Pure:
 * it reads the text it is given and evaluates no shell.
 */
export interface ImportedSubhost {
  readonly name: string;
  readonly backend: 'subhost';
  readonly nics: Array<{ network: string; mac?: string }>;
  readonly subhost: {
    root?: string;
    disks: Array<{ dev: string; part: number; image: string }>;
    importedFrom: string;
  };
}

/** The words of `NAME=( … )` (one or many lines), quotes removed; null when not set. */
export function bashArray(text: string, name: string): string[] | null {
  const m = new RegExp(`^\\s*(?:export\\s+)?${name}=\\(([^)]*)\\)`, 'm').exec(text);
  if (!m) return null;
  return (m[1] ?? '')
    .replace(/#[^\n]*/g, '')
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => w.replace(/^["']|["']$/g, ''));
}

export function parseSubhostConfig(
  text: string,
  source: string,
): { disks: ImportedSubhost['subhost']['disks']; bridges: Array<{ bridge: string; mac?: string }> } {
  const disks = (bashArray(text, 'DISKS') ?? []).map((w) => {
    const m = /^([a-z][a-z0-9]*):(\d+):(.+)$/.exec(w);
    if (!m) throw new ConfigError(`${source}: DISKS entry "${w}" is not dev:part:image`);
    return { dev: m[1]!, part: Number(m[2]), image: m[3]! };
  });
  const bridges = (bashArray(text, 'BRIDGES') ?? []).map((w) => {
    // the first ':' ends the bridge name; the MAC (optional) has five more
    const i = w.indexOf(':');
    const bridge = i < 0 ? w : w.slice(0, i);
    const mac = i < 0 ? undefined : w.slice(i + 1);
    if (mac !== undefined && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac))
      throw new ConfigError(`${source}: BRIDGES entry "${w}" has no valid MAC after "${bridge}:"`);
    return mac ? { bridge, mac: mac.toLowerCase() } : { bridge };
  });
  return { disks, bridges };
}

/** The VM entry for subhost folder `dir` with config text `text`. Bridge names become network names. */
export function importSubhost(dir: string, text: string, hasRootDir: boolean): ImportedSubhost {
  const source = join(dir, 'config');
  const { disks, bridges } = parseSubhostConfig(text, source);
  const name = basename(dir)
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 31);
  if (!hasRootDir && disks.length === 0)
    throw new ConfigError(`${source}: neither ${join(dir, 'root')} nor DISKS gives a root filesystem`);
  return {
    name,
    backend: 'subhost',
    nics: bridges.map((b) => (b.mac ? { network: b.bridge, mac: b.mac } : { network: b.bridge })),
    subhost: { ...(hasRootDir ? { root: join(dir, 'root') } : {}), disks, importedFrom: source },
  };
}
