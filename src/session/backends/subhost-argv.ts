import { join } from 'node:path';
import type { SubhostConfig, VmConfig } from '../../config/schema.js';
import { NETNS_NAME_MAX } from '../../net/names.js';

/**
 * systemd-nspawn and tmux command lines for a subhost, pure. Where pid 1 is not systemd there is
 * no machined: `--register=no --keep-unit` (the cgroup kvmux made is the unit), and networking
 * joins a namespace kvmux made and cabled itself (`--network-namespace-path`, not
 * `--network-bridge`, which needs machined's helpers).
 */
export interface SubhostPaths {
  /** tmux server socket holding the console. */
  readonly tmux: string;
  /** Where DISKS partitions are mounted on the host before they are bound in. */
  readonly disks: string;
}

export function subhostPaths(vmDir: string): SubhostPaths {
  return { tmux: join(vmDir, 'console.tmux'), disks: join(vmDir, 'disks') };
}

export const netnsName = (prefix: string, vm: string) => `${prefix}${vm}`.slice(0, NETNS_NAME_MAX);

export const upperOf = (stateDir: string, vm: VmConfig) =>
  vm.subhost?.upper ?? join(stateDir, 'subhost', vm.name, 'upper');

export interface NspawnInput {
  readonly vm: VmConfig;
  readonly sh: SubhostConfig;
  /** The root directory (sh.root or the mounted DISKS root). */
  readonly root: string;
  readonly upper: string;
  readonly netns: string | null;
  /** host mount point → path inside, for DISKS beyond the root. */
  readonly binds: ReadonlyArray<{ host: string; inside: string }>;
  readonly binary?: string;
}

export function nspawnArgv(i: NspawnInput): string[] {
  return [
    i.binary ?? 'systemd-nspawn',
    '--quiet',
    '--keep-unit',
    '--register=no',
    `--machine=${i.vm.name}`,
    `--directory=${i.root}`,
    // the base stays read-only; everything the subhost writes lands in its own upper layer
    ...(i.sh.overlay ? [`--overlay=${i.root}:${i.upper}:/`] : []),
    // its own network universe: it configures its links itself (the host side still filters them)
    ...(i.netns
      ? [`--network-namespace-path=/run/netns/${i.netns}`, '--capability=CAP_NET_ADMIN']
      : ['--private-network']),
    ...i.binds.map((b) => `--bind=${b.host}:${b.inside}`),
    `--kill-signal=${i.sh.killSignal}`,
    '--console=interactive',
    '--boot',
  ];
}

/** The console: a detached tmux session whose one pane *is* nspawn (exec), kept after it ends for its exit status. */
export function tmuxStartArgv(paths: SubhostPaths, nspawn: readonly string[], tmux = 'tmux'): string[] {
  const cmd = `exec ${nspawn.map(shq).join(' ')}`;
  return [
    tmux,
    '-S',
    paths.tmux,
    '-f',
    '/dev/null',
    'new-session',
    '-d',
    '-s',
    'console',
    '-x',
    '132',
    '-y',
    '43',
    cmd,
    ';',
    'set-option',
    '-g',
    'remain-on-exit',
    'on',
    ';',
    'set-option',
    '-g',
    'status',
    'off',
  ];
}

/** The terminal on the subhost's display: attaches to the console session (many may, none owns it). */
export function xtermArgv(paths: SubhostPaths, vm: string, tmux = 'tmux'): string[] {
  return ['xterm', '-title', `kvmux ${vm}`, '-e', tmux, '-S', paths.tmux, 'attach', '-t', 'console'];
}

function shq(s: string): string {
  return /^[A-Za-z0-9_/.:=+,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
