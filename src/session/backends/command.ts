import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { VmConfig } from '../../config/schema.js';
import { BackendError } from '../../util/errors.js';
import type { Backend, LaunchContext, VmExit, VmHandle, VmRecord } from './backend.js';
import { recordAlive, spawnDetached, terminate, watchAdopted } from './spawn.js';

/** Any X program (kiosk browser, remote-desktop client, xterm) full-screen on its display. */
export interface CommandBackendOptions {
  /** Graceful stop: SIGTERM, then SIGKILL after this long (default 5 s). */
  readonly termTimeoutMs?: number;
}

export function createCommandBackend(opts: CommandBackendOptions = {}): Backend {
  const termTimeoutMs = opts.termTimeoutMs ?? 5000;

  async function start(vm: VmConfig, ctx: LaunchContext): Promise<VmHandle> {
    if (!vm.command) throw new BackendError(vm.name, 'backend "command" needs "command"');
    // the program's temp files in a folder of the VM's own, emptied at each start: xterm, for one,
    // leaves a /tmp/xtermXXXXXX folder behind every time it is killed
    const tmp = join(ctx.vmDir, 'tmp');
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { mode: 0o700 });
    const proc = await spawnDetached({
      vm: vm.name,
      argv: vm.command,
      logFile: join(ctx.vmDir, 'command.log'),
      env: { ...process.env, DISPLAY: ctx.display, KVMUX_VM: vm.name, KVMUX_VM_DIR: ctx.vmDir, TMPDIR: tmp },
      cwd: ctx.vmDir,
      ...(ctx.cgroupProcs ? { cgroupProcs: ctx.cgroupProcs } : {}),
    });
    const record: VmRecord = {
      name: vm.name,
      backend: 'command',
      pid: proc.pid,
      startTime: proc.startTime,
      display: ctx.display,
      sockets: {},
      startedAt: new Date().toISOString(),
    };
    return new CommandHandle(record, proc.exited, termTimeoutMs);
  }

  async function adopt(_vm: VmConfig, record: VmRecord): Promise<VmHandle | null> {
    if (!recordAlive(record.pid, record.startTime)) return null;
    return new CommandHandle(record, watchAdopted(record.pid, record.startTime), termTimeoutMs);
  }

  return { kind: 'command', hostKeys: [], start, adopt };
}

class CommandHandle implements VmHandle {
  readonly pid: number;
  constructor(
    readonly record: VmRecord,
    readonly exited: Promise<VmExit>,
    private readonly termTimeoutMs: number,
  ) {
    this.pid = record.pid;
  }

  stop(opts: { force: boolean; timeoutMs?: number }): Promise<void> {
    const { pid, startTime } = this.record;
    return terminate(pid, startTime, this.exited, {
      force: opts.force,
      timeoutMs: opts.timeoutMs ?? this.termTimeoutMs,
    });
  }

  async setMemory(): Promise<boolean> {
    return false;
  }

  async status(): Promise<string> {
    return recordAlive(this.record.pid, this.record.startTime) ? 'running' : 'gone';
  }

  detach(): void {}
}
