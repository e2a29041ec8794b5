import { stringify } from 'yaml';
import { resolveConfigPath } from '../config/config.js';
import { loadEffectiveConfig } from '../config/overlay.js';

export default async function check(opts: { config?: string; json?: boolean }): Promise<number> {
  const path = resolveConfigPath(opts.config);
  // effective: the file with kvmux's own layer from its stateDir (chords and key names checked too)
  const cfg = loadEffectiveConfig(path).config;
  process.stdout.write(opts.json ? `${JSON.stringify(cfg, null, 2)}\n` : stringify(cfg));
  process.stderr.write(`${path}: OK (${cfg.vms.length} VM(s), ${cfg.networks.length} network(s))\n`);
  return 0;
}
