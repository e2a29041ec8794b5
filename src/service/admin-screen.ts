import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config, VmConfig } from '../config/schema.js';
import { createCommandBackend } from '../session/backends/command.js';
import { Supervisor } from '../session/supervisor.js';
import type { RestartPolicy } from '../session/vm-state.js';
import type { Logger } from '../util/log.js';
import type { Switcher } from './switcher.js';

export const ADMIN = 'admin';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');

/**
 * Any exit brings the admin screen back (xterm exits 0 whatever `kvmux admin` did, and quitting is
 * no reason to leave a no-shell appliance without it): at once, then slower if it keeps exiting.
 */
export const ADMIN_RESTART_POLICY: RestartPolicy = {
  baseMs: 500,
  maxMs: 10_000,
  maxCrashes: Number.POSITIVE_INFINITY,
  windowMs: 60_000,
  restartCleanExits: true,
};

/**
 * The admin screen: xterm running `kvmux admin` on its own display (listed last in the menu),
 * supervised like a VM so it comes back when someone quits it or it crashes.
 */
export function createAdminScreen(opts: {
  config: Pick<Config, 'runDir' | 'stateDir' | 'admin'>;
  log: Logger;
  switcher: Switcher;
}): Supervisor {
  const { config } = opts;
  const adminVm: VmConfig = {
    name: ADMIN,
    backend: 'command',
    command: [
      ...['xterm', '-fn', '10x20', '-bg', '#101820', '-fg', '#e0e0e0', '-T', 'kvmux admin', '-e'],
      ...[process.execPath, CLI, 'admin', '--socket', join(config.runDir, 'control.sock')],
      ...['--idle-lock', String(config.admin.idleLockSeconds)],
    ],
    nics: [],
    guestChannel: false,
    autostart: true,
    blockedKeys: [],
  };
  opts.switcher.add(ADMIN, 'admin');
  return new Supervisor({
    config: { runDir: config.runDir, stateDir: join(config.stateDir, 'admin-app'), vms: [adminVm] },
    backends: { command: createCommandBackend() },
    displayFor: () => opts.switcher.displayInfo(ADMIN),
    log: opts.log,
    policy: ADMIN_RESTART_POLICY,
  });
}
