import { join } from 'node:path';
import type { VmConfig } from '../../config/schema.js';
import { BackendError } from '../../util/errors.js';
import { execa } from '../../util/lazy-execa.js';
import { type Logger, silentLogger } from '../../util/log.js';
import type { Backend, LaunchContext, VmExit, VmHandle, VmRecord } from './backend.js';
import { goneWithin, recordAlive, spawnDetached, terminate, watchAdopted } from './spawn.js';
import {
  type VboxBinaries,
  vboxBinaries,
  vboxControlPath,
  vboxRegisterCommands,
  vboxSetupCommands,
  vboxShowArgs,
  vboxStartArgs,
  vboxStopArgs,
} from './virtualbox-argv.js';

export interface VirtualboxBackendOptions {
  /** Graceful stop: wait this long after acpipowerbutton before poweroff (default 30 s). */
  readonly powerdownTimeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: Logger;
}

async function vboxManage(
  vm: VmConfig,
  bins: VboxBinaries,
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: { tolerate?: boolean } = {},
): Promise<boolean> {
  const r = await execa(bins.vboxManage, args, { reject: false, timeout: 60_000, env, extendEnv: false });
  if (r.exitCode === 0) return true;
  if (opts.tolerate) return false;
  if (r.exitCode !== 0)
    throw new BackendError(
      vm.name,
      `${bins.vboxManage} ${args.join(' ')} failed: ${r.stderr || r.shortMessage}`,
    );
  return true;
}

/** Register the VM from its .vbox file (or make one around its disk) unless VirtualBox knows it. */
async function ensureRegistered(vm: VmConfig, bins: VboxBinaries, env: NodeJS.ProcessEnv, log: Logger) {
  const register = vboxRegisterCommands(vm);
  if (register.length === 0) return;
  if (await vboxManage(vm, bins, vboxShowArgs(vm), env, { tolerate: true })) return;
  log.info({ vm: vm.name, steps: register.map((a) => a[0]) }, 'registering the VM with VirtualBox');
  for (const args of register) await vboxManage(vm, bins, args, env);
}

export function createVirtualboxBackend(opts: VirtualboxBackendOptions = {}): Backend {
  const log = opts.log ?? silentLogger;
  const env = opts.env ?? process.env;
  const powerdownTimeoutMs = opts.powerdownTimeoutMs ?? 30_000;

  async function start(vm: VmConfig, ctx: LaunchContext): Promise<VmHandle> {
    const bins = vboxBinaries(vm, env);
    await ensureRegistered(vm, bins, env, log);
    // the controller may exist already (registered earlier, or made by createvm)
    for (const args of vboxSetupCommands(vm, ctx.vmDir, ctx.memoryMiB, ctx.taps))
      await vboxManage(vm, bins, args, env, { tolerate: args[0] === 'storagectl' });
    const proc = await spawnDetached({
      vm: vm.name,
      argv: [bins.virtualBoxVm, ...vboxStartArgs(vm)],
      logFile: join(ctx.vmDir, 'virtualbox.log'),
      env: { ...env, DISPLAY: ctx.display },
      ...(ctx.cgroupProcs ? { cgroupProcs: ctx.cgroupProcs } : {}),
    });
    const record: VmRecord = {
      name: vm.name,
      backend: 'virtualbox',
      pid: proc.pid,
      startTime: proc.startTime,
      display: ctx.display,
      sockets: vm.guestChannel ? { control: vboxControlPath(ctx.vmDir) } : {},
      ...(vm.virtualbox?.memoryMiB !== undefined
        ? { memoryMiB: ctx.memoryMiB ?? vm.virtualbox.memoryMiB }
        : {}),
      startedAt: new Date().toISOString(),
    };
    log.info({ vm: vm.name, pid: proc.pid }, 'started VirtualBoxVM');
    return new VboxHandle(vm, bins, env, record, proc.exited, powerdownTimeoutMs, log);
  }

  async function adopt(vm: VmConfig, record: VmRecord): Promise<VmHandle | null> {
    if (!recordAlive(record.pid, record.startTime)) return null;
    const exited = watchAdopted(record.pid, record.startTime);
    return new VboxHandle(vm, vboxBinaries(vm, env), env, record, exited, powerdownTimeoutMs, log);
  }

  // VirtualBox's own host key is disabled at start; nothing else in its window reacts to chords.
  return { kind: 'virtualbox', hostKeys: [], start, adopt };
}

class VboxHandle implements VmHandle {
  readonly pid: number;
  constructor(
    private readonly vm: VmConfig,
    private readonly bins: VboxBinaries,
    private readonly env: NodeJS.ProcessEnv,
    readonly record: VmRecord,
    readonly exited: Promise<VmExit>,
    private readonly powerdownTimeoutMs: number,
    private readonly log: Logger,
  ) {
    this.pid = record.pid;
  }

  async stop(opts: { force: boolean; timeoutMs?: number }): Promise<void> {
    const { pid, startTime } = this.record;
    if (!opts.force) {
      await this.control(false);
      if (await goneWithin(pid, startTime, this.exited, opts.timeoutMs ?? this.powerdownTimeoutMs)) return;
      this.log.warn({ vm: this.vm.name }, 'guest ignored acpipowerbutton: powering off');
    }
    await this.control(true);
    if (await goneWithin(pid, startTime, this.exited, 10_000)) return;
    await terminate(pid, startTime, this.exited, { force: true, timeoutMs: 0 });
  }

  private async control(force: boolean): Promise<void> {
    await vboxManage(this.vm, this.bins, vboxStopArgs(this.vm, force), this.env).catch((err: unknown) => {
      this.log.warn({ vm: this.vm.name, err: (err as Error).message }, 'VBoxManage controlvm failed');
    });
  }

  /** VirtualBox cannot change RAM of a running VM: modifyvm --memory applies on next start. */
  async setMemory(): Promise<boolean> {
    return false;
  }

  async status(): Promise<string> {
    return recordAlive(this.record.pid, this.record.startTime) ? 'running' : 'gone';
  }

  detach(): void {}
}
