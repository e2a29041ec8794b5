import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Resources } from '../config/schema.js';
import { BackendError, errnoName } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/log.js';
import {
  type AppliedResources,
  type CgroupMode,
  type CpusetDefaults,
  cgroupWrites,
  parseApplied,
  V1_CONTROLLERS,
  V2_CONTROLLERS,
} from './limits.js';

/**
 * One cgroup per VM, `<root>/kvmux/<vm>` (v2) or `<root>/<controller>/kvmux/<vm>` (v1), holding
 * the VM's whole process tree: QEMU, the command, or the subhost's nspawn and everything inside.
 */
export interface CgroupLayout {
  readonly mode: CgroupMode;
  /** v2: the unified mount; v1: the folder holding one mount per controller. */
  readonly root: string;
}

const read = (path: string): string => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
};

/**
 * v2 when a unified hierarchy owns cpu and memory (pure v2, or a hybrid's unified mount if the
 * controllers were moved there); else v1 when its controller mounts exist; else null.
 */
export function detectCgroups(root = '/sys/fs/cgroup'): CgroupLayout | null {
  for (const dir of [root, join(root, 'unified')]) {
    const ctl = read(join(dir, 'cgroup.controllers')).split(' ');
    if (ctl.includes('cpu') && ctl.includes('memory')) return { mode: 'v2', root: dir };
  }
  if (existsSync(join(root, 'cpu', 'cgroup.procs')) && existsSync(join(root, 'memory', 'cgroup.procs')))
    return { mode: 'v1', root };
  return null;
}

/** The stateDir of a kvmux installed as the service (the config's default). */
const SERVICE_STATE_DIR = '/var/lib/kvmux';

/**
 * The parent cgroup of one kvmux's VMs: `kvmux` for the service's stateDir, else
 * `kvmux-<8 hex of the stateDir's path>`. A second kvmux on the machine (another config, a test)
 * then never shares a VM's cgroup with it, and never kills what the other runs there when its own
 * VM of the same name ends; a restart on the same stateDir finds its groups again (adoption).
 */
export function instanceGroup(stateDir: string): string {
  const dir = resolve(stateDir);
  if (dir === SERVICE_STATE_DIR) return 'kvmux';
  return `kvmux-${createHash('sha256').update(dir).digest('hex').slice(0, 8)}`;
}

export interface CgroupResourcesOptions {
  readonly layout: CgroupLayout;
  /** The parent group under each hierarchy (default "kvmux"; tests use their own). */
  readonly group?: string;
  readonly log?: Logger;
}

export class CgroupResources {
  readonly mode: CgroupMode;
  private readonly root: string;
  private readonly group: string;
  private readonly log: Logger;

  constructor(opts: CgroupResourcesOptions) {
    this.mode = opts.layout.mode;
    this.root = opts.layout.root;
    this.group = opts.group ?? 'kvmux';
    this.log = opts.log ?? silentLogger;
  }

  /** Folders of a VM's cgroup, keyed by v1 controller ('' on v2). */
  dirs(vm: string): Map<string, string> {
    if (this.mode === 'v2') return new Map([['', join(this.root, this.group, vm)]]);
    const out = new Map<string, string>();
    for (const c of V1_CONTROLLERS)
      if (existsSync(join(this.root, c, 'cgroup.procs'))) out.set(c, join(this.root, c, this.group, vm));
    return out;
  }

  /**
   * Create the VM's cgroup with its limits; returns the cgroup.procs files a process writes its pid
   * to (before exec) so nothing it forks escapes the limits.
   */
  prepare(vm: string, r: Resources): string[] {
    this.ensureParent();
    const dirs = this.dirs(vm);
    for (const dir of dirs.values()) mkdirSync(dir, { recursive: true });
    this.write(vm, r);
    return [...dirs.values()].map((d) => join(d, 'cgroup.procs'));
  }

  /** Put a running process (all its threads) in the VM's cgroup, with the limits. */
  apply(vm: string, pid: number, r: Resources): void {
    for (const procs of this.prepare(vm, r)) {
      try {
        writeFileSync(procs, String(pid));
      } catch (err) {
        throw new BackendError(vm, `${procs}: cannot move pid ${pid}: ${errnoName(err)}`, { cause: err });
      }
    }
  }

  /** Change the limits live (the VM's cgroup must exist: it runs). */
  update(vm: string, r: Resources): boolean {
    if (![...this.dirs(vm).values()].every((d) => existsSync(d))) return false;
    this.write(vm, r);
    return true;
  }

  /** What the kernel enforces now, or null when the VM has no cgroup (not running). */
  read(vm: string): AppliedResources | null {
    const dirs = this.dirs(vm);
    const first = [...dirs.values()][0];
    if (!first || !existsSync(first)) return null;
    const files: Record<string, string> = {};
    for (const w of cgroupWrites(this.mode, {}, { cpus: '', mems: '' })) {
      const dir = dirs.get(w.controller ?? '');
      if (dir) files[w.file] = read(join(dir, w.file));
    }
    return parseApplied(this.mode, files);
  }

  /** CPU time the VM's whole tree used, in µs (v2 cpu.stat usage_usec, v1 cpuacct.usage ns). */
  cpuUsageUs(vm: string): number | null {
    const dirs = this.dirs(vm);
    if (this.mode === 'v2') {
      const m = /usage_usec (\d+)/.exec(read(join(dirs.get('') ?? '', 'cpu.stat')));
      return m ? Number(m[1]) : null;
    }
    const ns = read(join(dirs.get('cpuacct') ?? '', 'cpuacct.usage'));
    return ns ? Math.round(Number(ns) / 1000) : null;
  }

  /** OOM kills inside the VM's cgroup so far (v2 memory.events, v1 memory.oom_control). */
  oomKills(vm: string): number {
    const dirs = this.dirs(vm);
    const text =
      this.mode === 'v2'
        ? read(join(dirs.get('') ?? '', 'memory.events'))
        : read(join(dirs.get('memory') ?? '', 'memory.oom_control'));
    const m = /oom_kill (\d+)/.exec(text);
    return m ? Number(m[1]) : 0;
  }

  /** Every pid in the VM's cgroup (the whole tree, for freezing and tests). */
  pids(vm: string): number[] {
    const dir = this.dirs(vm).get(this.mode === 'v2' ? '' : 'cpu');
    if (!dir) return [];
    return read(join(dir, 'cgroup.procs')).split('\n').filter(Boolean).map(Number);
  }

  /** Freeze (hibernate in memory) or thaw every process of the VM. */
  freeze(vm: string, frozen: boolean): void {
    const dirs = this.dirs(vm);
    const [dir, file, value] =
      this.mode === 'v2'
        ? [dirs.get(''), 'cgroup.freeze', frozen ? '1' : '0']
        : [dirs.get('freezer'), 'freezer.state', frozen ? 'FROZEN' : 'THAWED'];
    if (!dir) throw new BackendError(vm, 'no freezer cgroup on this host');
    writeFileSync(join(dir, file), value);
  }

  /**
   * Asked to be frozen (hibernating). The kernel stops the processes a moment later (v1 shows
   * FREEZING meanwhile): `stopped` tells when every one is.
   */
  frozen(vm: string): boolean {
    const dirs = this.dirs(vm);
    if (this.mode === 'v2') return read(join(dirs.get('') ?? '', 'cgroup.freeze')) === '1';
    return read(join(dirs.get('freezer') ?? '', 'freezer.self_freezing')) === '1';
  }

  /** Every process of the VM is frozen now (the freeze asked for has completed). */
  stopped(vm: string): boolean {
    const dirs = this.dirs(vm);
    if (this.mode === 'v2') return /^frozen 1$/m.test(read(join(dirs.get('') ?? '', 'cgroup.events')));
    return read(join(dirs.get('freezer') ?? '', 'freezer.state')) === 'FROZEN';
  }

  /**
   * Remove the VM's cgroup once its main process ended. Whatever it left running inside (a shell's
   * orphaned child, a subhost daemon) belongs to the VM and is killed; then rmdir, retried while the
   * kernel still counts the dying tasks.
   */
  async release(vm: string): Promise<void> {
    for (const pid of this.pids(vm)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    const dirs = [...this.dirs(vm).values()];
    for (const dir of dirs) {
      for (let attempt = 0; ; attempt++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          const code = errnoName(err);
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || attempt >= 40) {
            this.log.warn({ vm, dir, err: code }, 'cgroup not removed (still in use?)');
            break;
          }
          await sleep(50);
        }
      }
    }
    // the instance's parent group goes with its last VM (a test's kvmux leaves no empty group
    // behind in the host's hierarchy); while another VM of it has a group there, the kernel refuses
    for (const parent of dirs.map((d) => dirname(d))) {
      try {
        rmdirSync(parent);
      } catch {
        // EBUSY / ENOTEMPTY: another VM of this kvmux runs; ENOENT: gone already
      }
    }
  }

  private write(vm: string, r: Resources): void {
    const dirs = this.dirs(vm);
    for (const w of cgroupWrites(this.mode, r, this.defaults())) {
      const dir = dirs.get(w.controller ?? '');
      if (!dir) continue;
      const path = join(dir, w.file);
      try {
        writeFileSync(path, w.value);
      } catch (err) {
        if (w.optional) continue;
        throw new BackendError(vm, `${path}: cannot write "${w.value}": ${errnoName(err)}`, { cause: err });
      }
    }
  }

  /** The parent's CPUs and memory nodes: what "no cpuset" means. */
  private defaults(): CpusetDefaults {
    const base = this.mode === 'v2' ? this.root : join(this.root, 'cpuset');
    const eff = (f: string) => read(join(base, `${f}.effective`)) || read(join(base, f));
    return { cpus: eff('cpuset.cpus'), mems: eff('cpuset.mems') };
  }

  /** kvmux's own parent group: controllers delegated (v2), or cpuset filled in (v1 starts empty). */
  private ensureParent(): void {
    if (this.mode === 'v2') {
      const parent = join(this.root, this.group);
      mkdirSync(parent, { recursive: true });
      const enable = V2_CONTROLLERS.map((c) => `+${c}`).join(' ');
      for (const dir of [this.root, parent]) {
        try {
          writeFileSync(join(dir, 'cgroup.subtree_control'), enable);
        } catch (err) {
          this.log.warn({ dir, err: errnoName(err) }, 'cannot enable cgroup controllers');
        }
      }
      return;
    }
    for (const c of V1_CONTROLLERS) {
      const parent = join(this.root, c, this.group);
      if (!existsSync(join(this.root, c, 'cgroup.procs'))) continue;
      mkdirSync(parent, { recursive: true });
      if (c !== 'cpuset') continue;
      const d = this.defaults();
      if (!read(join(parent, 'cpuset.cpus'))) writeFileSync(join(parent, 'cpuset.cpus'), d.cpus);
      if (!read(join(parent, 'cpuset.mems'))) writeFileSync(join(parent, 'cpuset.mems'), d.mems);
    }
  }
}
