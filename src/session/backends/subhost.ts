import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { SubhostConfig, VmConfig } from '../../config/schema.js';
import type { NetworkManager } from '../../net/manager.js';
import type { CgroupResources } from '../../resources/cgroup.js';
import { BackendError, errText } from '../../util/errors.js';
import { execa } from '../../util/lazy-execa.js';
import { type Logger, silentLogger } from '../../util/log.js';
import { isAlive, readProcStat, signal } from '../../util/proc.js';
import type { Backend, LaunchContext, VmExit, VmHandle, VmRecord } from './backend.js';
import { goneWithin, recordAlive, spawnDetached, watchAdopted } from './spawn.js';
import {
  netnsName,
  nspawnArgv,
  type SubhostPaths,
  subhostPaths,
  tmuxStartArgv,
  upperOf,
  xtermArgv,
} from './subhost-argv.js';

/**
 * The `subhost` backend (seed 003) on systemd-nspawn: booted almost like a VM, with an overlay root,
 * its own netns cabled by kvmux's NetworkManager (so anti-spoofing applies), DISKS partitions
 * loop-mounted and bound in, and its console in tmux, shown by an xterm on its display. Everything
 * it set up (veths, netns, loop mounts, tmux) is taken down when it ends, however it ends.
 */
export interface SubhostBackendOptions {
  readonly stateDir: string;
  /** Bridges and anti-spoofing; null = the subhost gets a private network with no links. */
  readonly net: () => NetworkManager | null;
  readonly resources?: () => CgroupResources | null;
  /** Prefix of the netns kvmux makes per subhost (default "kvmux-"). */
  readonly netnsPrefix?: string;
  readonly nspawn?: string;
  readonly tmux?: string;
  readonly stopTimeoutMs?: number;
  readonly log?: Logger;
}

interface Setup {
  netns: string | null;
  nics: string[];
  mounts: string[];
  loops: string[];
}

const emptySetup = (): Setup => ({ netns: null, nics: [], mounts: [], loops: [] });

function subhostOf(vm: VmConfig): SubhostConfig {
  if (!vm.subhost) throw new BackendError(vm.name, 'backend "subhost" needs a "subhost" section');
  return vm.subhost;
}

/** The record keeps what teardown needs after a kvmux restart. */
function setupToSockets(paths: SubhostPaths, s: Setup): Record<string, string> {
  return {
    tmux: paths.tmux,
    ...(s.netns ? { netns: s.netns } : {}),
    nics: s.nics.join(','),
    mounts: s.mounts.join(','),
    loops: s.loops.join(','),
  };
}

function setupFromSockets(sockets: Readonly<Record<string, string>>): Setup {
  const list = (k: string) => (sockets[k] ?? '').split(',').filter(Boolean);
  return {
    netns: sockets['netns'] ?? null,
    nics: list('nics'),
    mounts: list('mounts'),
    loops: list('loops'),
  };
}

/** Every descendant of `pid` (children files), deepest last: what a kill must reach without a cgroup. */
function tree(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    for (const t of readdirSafe(`/proc/${p}/task`)) {
      const kids = readSafe(`/proc/${p}/task/${t}/children`).split(/\s+/).filter(Boolean).map(Number);
      for (const k of kids) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

const readSafe = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
};
const readdirSafe = (p: string) => {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
};

/** `--offset`/`--sizelimit` of partition `part` (1-based) of a disk image, read with sfdisk. */
async function partitionRange(image: string, part: number): Promise<string[]> {
  const r = await execa('sfdisk', ['-J', image]);
  const table = (
    JSON.parse(r.stdout) as {
      partitiontable: { sectorsize?: number; partitions?: Array<{ start: number; size: number }> };
    }
  ).partitiontable;
  const p = table.partitions?.[part - 1];
  if (!p) throw new BackendError(image, `has no partition ${part}`);
  const sector = table.sectorsize ?? 512;
  return ['--offset', String(p.start * sector), '--sizelimit', String(p.size * sector)];
}

export function createSubhostBackend(opts: SubhostBackendOptions): Backend {
  const log = opts.log ?? silentLogger;
  const prefix = opts.netnsPrefix ?? 'kvmux-';
  const tmux = opts.tmux ?? 'tmux';
  const run = (argv: string[], env?: NodeJS.ProcessEnv) =>
    execa(argv[0]!, argv.slice(1), { ...(env ? { env } : {}), stdin: 'ignore' });

  /** DISKS: each partition loop-mounted under the VM dir; the first is the root when there is no `root`. */
  async function mountDisks(vm: VmConfig, sh: SubhostConfig, paths: SubhostPaths, s: Setup) {
    const binds: Array<{ host: string; inside: string }> = [];
    let root = sh.root;
    for (const d of sh.disks) {
      // a partition is looped by its byte range (from the image's own table): no partition
      // device nodes needed, which containers and udev-less hosts do not always get
      const range = d.part > 0 ? await partitionRange(d.image, d.part) : [];
      const dev = (await run(['losetup', '--find', '--show', ...range, d.image])).stdout.trim();
      s.loops.push(dev);
      const at = join(paths.disks, `${d.dev}${d.part || ''}`);
      mkdirSync(at, { recursive: true });
      await run(['mount', dev, at]);
      s.mounts.push(at);
      if (!root) root = at;
      else binds.push({ host: at, inside: `/mnt/${d.dev}${d.part || ''}` });
    }
    if (!root) throw new BackendError(vm.name, 'no root filesystem (subhost.root or DISKS)');
    return { root, binds };
  }

  async function network(vm: VmConfig, s: Setup): Promise<void> {
    const net = opts.net();
    if (!net || vm.nics.length === 0) return;
    const ns = netnsName(prefix, vm.name);
    await run(['ip', 'netns', 'del', ns]).catch(() => {});
    await run(['ip', 'netns', 'add', ns]);
    s.netns = ns;
    await run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    for (const [i, nic] of vm.nics.entries()) {
      const ifname = `eth${i}`;
      await net.attachNamespace(nic.network, ns, ifname, {
        ...(nic.mac ? { mac: nic.mac } : {}),
        ...(nic.ips ? { ips: nic.ips } : {}),
        ...(nic.allow ? { allow: nic.allow } : {}),
      });
      s.nics.push(ifname);
    }
  }

  /** Undo a setup, each step on its own: one failing step never leaves the others behind. */
  async function teardown(vm: string, paths: SubhostPaths, s: Setup): Promise<void> {
    const step = async (what: string, fn: () => Promise<unknown>) => {
      await fn().catch((err: unknown) =>
        log.warn({ vm, what, err: errText(err) }, 'subhost teardown step failed'),
      );
    };
    await step('tmux', () => run([tmux, '-S', paths.tmux, 'kill-server']).catch(() => {}));
    rmSync(paths.tmux, { force: true });
    const net = opts.net();
    if (s.netns) {
      for (const ifname of s.nics)
        await step(`veth ${ifname}`, async () => net?.detachNamespace(s.netns ?? '', ifname));
      await step('netns', () => run(['ip', 'netns', 'del', s.netns ?? '']));
    }
    for (const m of [...s.mounts].reverse()) await step(`umount ${m}`, () => run(['umount', m]));
    for (const l of s.loops) await step(`losetup -d ${l}`, () => run(['losetup', '-d', l]));
  }

  async function paneStatus(paths: SubhostPaths): Promise<number | null> {
    const r = await run([
      tmux,
      '-S',
      paths.tmux,
      'display-message',
      '-p',
      '-t',
      'console',
      '#{pane_dead_status}',
    ]).catch(() => null);
    const n = Number.parseInt(r?.stdout.trim() ?? '', 10);
    return Number.isFinite(n) ? n : null;
  }

  function handle(
    vm: VmConfig,
    record: VmRecord,
    paths: SubhostPaths,
    s: Setup,
    display: string,
  ): SubhostHandle {
    const exited = watchAdopted(record.pid, record.startTime).then(async (): Promise<VmExit> => {
      const code = await paneStatus(paths);
      await teardown(vm.name, paths, s);
      return { code, signal: null, clean: code === 0 };
    });
    return new SubhostHandle(record, exited, {
      timeoutMs: opts.stopTimeoutMs ?? 30_000,
      pids: () => opts.resources?.()?.pids(vm.name) ?? [],
      xterm: () => showConsole(vm, paths, display),
    });
  }

  async function showConsole(vm: VmConfig, paths: SubhostPaths, display: string): Promise<number | null> {
    const p = await spawnDetached({
      vm: vm.name,
      argv: xtermArgv(paths, vm.name, tmux),
      logFile: join(dirOf(paths), 'xterm.log'),
      env: { ...process.env, DISPLAY: display },
    }).catch((err: unknown) => {
      log.warn({ vm: vm.name, err: errText(err) }, 'no console terminal on the display');
      return null;
    });
    return p?.pid ?? null;
  }

  async function start(vm: VmConfig, ctx: LaunchContext): Promise<VmHandle> {
    const sh = subhostOf(vm);
    const paths = subhostPaths(ctx.vmDir);
    const s = emptySetup();
    try {
      const { root, binds } = await mountDisks(vm, sh, paths, s);
      const upper = upperOf(opts.stateDir, vm);
      if (sh.overlay) mkdirSync(upper, { recursive: true, mode: 0o755 });
      await network(vm, s);
      const nspawn = nspawnArgv({
        vm,
        sh,
        root,
        upper,
        netns: s.netns,
        binds,
        ...(opts.nspawn ? { binary: opts.nspawn } : {}),
      });
      log.info({ vm: vm.name, argv: nspawn }, 'starting subhost');
      rmSync(paths.tmux, { force: true });
      // the tmux server (and so nspawn and the whole subhost) starts inside the VM's cgroup
      const argv = tmuxStartArgv(paths, nspawn, tmux);
      const procs = ctx.cgroupProcs ?? [];
      await (procs.length
        ? run(
            [
              '/bin/sh',
              '-c',
              'IFS=:; for f in $P; do echo $$ > "$f"; done; exec "$@"',
              'kvmux-cgroup',
              ...argv,
            ],
            {
              ...process.env,
              P: procs.join(':'),
            },
          )
        : run(argv));
      const pane = await run([tmux, '-S', paths.tmux, 'list-panes', '-t', 'console', '-F', '#{pane_pid}']);
      const pid = Number.parseInt(pane.stdout.trim(), 10);
      const startTime = readProcStat(pid)?.startTime ?? 0;
      if (!isAlive(pid, startTime)) throw new BackendError(vm.name, 'systemd-nspawn exited at start');
      const record: VmRecord = {
        name: vm.name,
        backend: 'subhost',
        pid,
        startTime,
        display: ctx.display,
        sockets: setupToSockets(paths, s),
        startedAt: new Date().toISOString(),
      };
      const h = handle(vm, record, paths, s, ctx.display);
      await h.showConsole();
      return h;
    } catch (err) {
      await teardown(vm.name, paths, s);
      throw err instanceof BackendError
        ? err
        : new BackendError(vm.name, `start failed: ${errText(err)}`, { cause: err });
    }
  }

  async function adopt(vm: VmConfig, record: VmRecord, ctx: LaunchContext): Promise<VmHandle | null> {
    const paths = subhostPaths(ctx.vmDir);
    const s = setupFromSockets(record.sockets);
    if (!recordAlive(record.pid, record.startTime)) {
      await teardown(vm.name, paths, s);
      return null;
    }
    const h = handle(vm, record, paths, s, record.display);
    await h.showConsole();
    return h;
  }

  return { kind: 'subhost', hostKeys: [], start, adopt };
}

const dirOf = (paths: SubhostPaths) => join(paths.tmux, '..');

interface HandleDeps {
  readonly timeoutMs: number;
  /** Every process of the subhost (its cgroup); empty without one. */
  pids(): number[];
  xterm(): Promise<number | null>;
}

class SubhostHandle implements VmHandle {
  readonly pid: number;
  private xtermPid: number | null = null;

  constructor(
    readonly record: VmRecord,
    readonly exited: Promise<VmExit>,
    private readonly deps: HandleDeps,
  ) {
    this.pid = record.pid;
  }

  async showConsole(): Promise<void> {
    if (this.xtermPid && isAlive(this.xtermPid)) return;
    this.xtermPid = await this.deps.xterm();
  }

  /** nspawn turns SIGTERM into the subhost's kill-signal (its init shuts down); then everything is killed. */
  async stop(opts: { force: boolean; timeoutMs?: number }): Promise<void> {
    const { pid, startTime } = this.record;
    if (!opts.force && isAlive(pid, startTime)) {
      signal(pid, 'SIGTERM');
      if (await goneWithin(pid, startTime, this.exited, opts.timeoutMs ?? this.deps.timeoutMs))
        return this.finish();
    }
    // the whole tree at once: killing nspawn first would orphan the subhost's init
    const all = new Set([...this.deps.pids(), pid, ...tree(pid)]);
    for (const p of all) signal(p, 'SIGKILL');
    await this.finish();
  }

  private async finish(): Promise<void> {
    if (this.xtermPid) signal(this.xtermPid, 'SIGTERM');
    await this.exited;
  }

  async setMemory(): Promise<boolean> {
    return false;
  }

  async status(): Promise<string> {
    return recordAlive(this.record.pid, this.record.startTime) ? 'running' : 'gone';
  }

  detach(): void {}
}

export const subhostAvailable = (nspawn = '/usr/bin/systemd-nspawn') => existsSync(nspawn);
