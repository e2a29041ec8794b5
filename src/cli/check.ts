import { stringify } from 'yaml';
import { loadConfigFile, resolveConfigPath } from '../session/config.js';

export default async function check(opts: { config?: string; json?: boolean }): Promise<number> {
  const path = resolveConfigPath(opts.config);
  const cfg = loadConfigFile(path);
  process.stdout.write(opts.json ? `${JSON.stringify(cfg, null, 2)}\n` : stringify(cfg));
  process.stderr.write(`${path}: OK (${cfg.vms.length} VM(s), ${cfg.networks.length} network(s))\n`);
  return 0;
}
