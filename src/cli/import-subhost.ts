import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { vmSchema } from '../config/schema.js';
import { importSubhost } from '../session/subhost-import.js';
import { ConfigError, errnoName } from '../util/errors.js';

/**
 * `kvmux import-subhost DIR [--base BASE]`: reads the seed's subhost folder (DIR/config with
 * DISKS and BRIDGES, DIR/root) and prints the kvmux VM entry for it, checked, ready for `vms:`.
 * With --base, DIR/root is the subhost's own layer over the common read-only BASE.
 */
export default async function importSubhostCommand(dir: string, opts: { base?: string }): Promise<number> {
  const abs = resolve(dir);
  const cfg = `${abs}/config`;
  let text: string;
  try {
    text = readFileSync(cfg, 'utf8');
  } catch (err) {
    throw new ConfigError(`${cfg}: cannot read: ${errnoName(err)}`);
  }
  const hasRoot = existsSync(`${abs}/root`) && statSync(`${abs}/root`).isDirectory();
  const entry = importSubhost(abs, text, hasRoot);
  const subhost = opts.base
    ? { ...entry.subhost, root: resolve(opts.base), upper: `${abs}/root` }
    : { ...entry.subhost, overlay: false };
  const vm = vmSchema.parse({ ...entry, subhost });
  process.stdout.write(stringify({ vms: [vm] }));
  return 0;
}
