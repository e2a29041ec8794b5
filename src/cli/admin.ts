import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AdminApp } from '../admin/app.js';
import { openAdminRpc } from '../admin/rpc.js';
import { type Config, configSchema, loadConfigFile, resolveConfigPath } from '../config/config.js';
import { ConfigError } from '../util/errors.js';

export interface AdminFlags {
  config?: string;
  socket?: string;
  remote?: string;
  idleLock?: string;
}

/**
 * `kvmux admin [--remote DEVICE] [--socket PATH] [--idle-lock SECONDS]`: the same TUI locally (the
 * control socket) and inside a guest (its channel device); only the transport differs. Inside a
 * guest there is usually no config file, so a missing default config is not an error.
 */
function config(flags: AdminFlags): Config {
  const path = resolveConfigPath(flags.config);
  if (flags.config === undefined && !existsSync(path)) return configSchema.parse({});
  return loadConfigFile(path);
}

function idleLockMs(flags: AdminFlags, cfg: Config): number {
  if (flags.idleLock === undefined) return cfg.admin.idleLockSeconds * 1000;
  const s = Number(flags.idleLock);
  if (!Number.isFinite(s) || s <= 0)
    throw new ConfigError(`--idle-lock: "${flags.idleLock}" is not a positive number of seconds`);
  return s * 1000;
}

export default async function admin(flags: AdminFlags = {}): Promise<number> {
  const cfg = config(flags);
  const target = flags.remote ?? flags.socket ?? join(cfg.runDir, 'control.sock');
  const idle = idleLockMs(flags, cfg);
  const rpc = await openAdminRpc(flags.remote ? { remote: flags.remote } : { socket: target });
  try {
    return await new AdminApp({ rpc, target, idleLockMs: idle, setup: !flags.remote }).run();
  } finally {
    rpc.close();
  }
}
