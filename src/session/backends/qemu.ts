import { closeSync, constants, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { QemuConfig, VmConfig } from '../../config/schema.js';
import { QEMU_HOST_KEYS } from '../../input/chord.js';
import { BackendError, errnoName } from '../../util/errors.js';
import { type Logger, silentLogger } from '../../util/log.js';
import { QmpClient, type QmpEvent } from '../qmp.js';
import type { Backend, LaunchContext, VmExit, VmHandle, VmRecord } from './backend.js';
import { bootMemoryMiB, qemuArgv, qemuPaths, resolveAccel } from './qemu-argv.js';
import { goneWithin, kill, recordAlive, spawnDetached, watchAdopted } from './spawn.js';

/** QEMU gtk/SDL host keys: console switch (Ctrl+Alt+2 = monitor), grab, full-screen, quit, zoom. */
/** QEMU gtk/SDL host keys; the input guard swallows them while a QEMU VM is shown. */
export { QEMU_HOST_KEYS };

export interface QemuBackendOptions {
  /** Default: $KVMUX_QEMU, then qemu-system-x86_64 on PATH. */
  readonly binary?: string;
  /** Graceful stop: how long to wait for the guest after ACPI powerdown (default 30 s). */
  readonly powerdownTimeoutMs?: number;
  /** How long a new QEMU gets to open its QMP socket (default 15 s). */
  readonly qmpTimeoutMs?: number;
  readonly kvmUsable?: () => boolean;
  readonly log?: Logger;
}

export function kvmUsable(): boolean {
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

function qemuConfig(vm: VmConfig): QemuConfig {
  if (!vm.qemu) throw new BackendError(vm.name, 'backend "qemu" needs a "qemu" section');
  return vm.qemu;
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}

export function createQemuBackend(opts: QemuBackendOptions = {}): Backend {
  const log = opts.log ?? silentLogger;
  const binary = opts.binary ?? process.env['KVMUX_QEMU'] ?? 'qemu-system-x86_64';
  const timeouts = { powerdown: opts.powerdownTimeoutMs ?? 30_000, qmp: opts.qmpTimeoutMs ?? 15_000 };

  async function start(vm: VmConfig, ctx: LaunchContext): Promise<VmHandle> {
    const q = qemuConfig(vm);
    const { accel, warning } = resolveAccel(q.accel, (opts.kvmUsable ?? kvmUsable)());
    if (warning) log.warn({ vm: vm.name }, warning);
    const paths = qemuPaths(ctx.vmDir);
    for (const stale of [paths.qmp, paths.control]) rmSync(stale, { force: true });
    const argv = qemuArgv(vm, q, ctx, { binary, accel });
    const logFile = join(ctx.vmDir, 'qemu.log');
    log.info({ vm: vm.name, argv }, 'starting QEMU');
    const proc = await spawnDetached({
      vm: vm.name,
      argv,
      logFile,
      env: { ...process.env, DISPLAY: ctx.display },
      ...(ctx.cgroupProcs ? { cgroupProcs: ctx.cgroupProcs } : {}),
    });
    const target = ctx.memoryMiB ?? q.memoryMiB;
    const boot = bootMemoryMiB(q, target);
    const record: VmRecord = {
      name: vm.name,
      backend: 'qemu',
      pid: proc.pid,
      startTime: proc.startTime,
      display: ctx.display,
      sockets: { qmp: paths.qmp, ...(vm.guestChannel ? { control: paths.control } : {}) },
      // the boot size is the ceiling a balloon can grow back to
      memoryMiB: boot,
      startedAt: new Date().toISOString(),
    };
    ctx.onSpawned?.(record);
    const qmp = await Promise.race([
      QmpClient.connect(paths.qmp, { label: vm.name, timeoutMs: timeouts.qmp }),
      proc.exited.then((e) => {
        throw new BackendError(vm.name, `QEMU exited at start (code ${e.code}): ${logTail(logFile)}`);
      }),
    ]).catch(async (err: unknown) => {
      await kill(proc.pid, proc.startTime, proc.exited);
      throw err;
    });
    const handle = new QemuHandle(record, proc.exited, qmp, timeouts.powerdown, log, ctx.onGuestReset);
    if (target < boot && !ctx.incoming)
      await handle
        .setMemory(target)
        .catch((err: unknown) => log.warn({ vm: vm.name, err: errnoName(err) }, 'initial balloon failed'));
    return handle;
  }

  async function adopt(vm: VmConfig, record: VmRecord, ctx?: LaunchContext): Promise<VmHandle | null> {
    if (!recordAlive(record.pid, record.startTime)) return null;
    const exited = watchAdopted(record.pid, record.startTime);
    const qmpPath = record.sockets['qmp'] ?? '';
    const qmp = await QmpClient.connect(qmpPath, { label: vm.name, timeoutMs: 3000 }).catch(
      (err: unknown) => {
        log.warn(
          { vm: vm.name, err: errnoName(err) },
          'adopted QEMU without QMP: stop falls back to signals',
        );
        return null;
      },
    );
    return new QemuHandle(record, exited, qmp, timeouts.powerdown, log, ctx?.onGuestReset);
  }

  return { kind: 'qemu', hostKeys: QEMU_HOST_KEYS, start, adopt };
}

class QemuHandle implements VmHandle {
  readonly pid: number;
  readonly exited: Promise<VmExit>;
  private guestShutdown = false;
  private detached = false;

  constructor(
    readonly record: VmRecord,
    processExited: Promise<VmExit>,
    private client: QmpClient | null,
    private readonly powerdownTimeoutMs: number,
    private readonly log: Logger,
    private readonly onGuestReset?: () => void,
  ) {
    this.pid = record.pid;
    // An adopted QEMU's exit code is not ours to read: QMP's SHUTDOWN {guest: true} tells a clean end.
    this.exited = processExited.then((e) => (this.guestShutdown && !e.signal ? { ...e, clean: true } : e));
    client?.on('event', (ev) => this.onEvent(ev));
  }

  /** The QMP connection, reconnected when it dropped while QEMU still runs (null when it cannot be). */
  async qmp(): Promise<QmpClient | null> {
    if (this.client && !this.client.isClosed) return this.client;
    const { pid, startTime, name } = this.record;
    const path = this.record.sockets['qmp'];
    if (this.detached || !path || !recordAlive(pid, startTime)) return null;
    this.client = await QmpClient.connect(path, { label: name, timeoutMs: 2000 }).catch(() => null);
    this.client?.on('event', (ev) => this.onEvent(ev));
    return this.client;
  }

  private onEvent(ev: QmpEvent): void {
    // a guest poweroff, or kvmux's own quit once a save or migration moved the guest elsewhere
    if (ev.event === 'SHUTDOWN' && (ev.data?.['guest'] === true || ev.data?.['reason'] === 'host-qmp-quit'))
      this.guestShutdown = true;
    // a reboot inside the guest keeps QEMU (and the channel socket) alive: the session must still end
    if (ev.event === 'RESET') this.onGuestReset?.();
    this.log.info({ vm: this.record.name, event: ev.event, data: ev.data }, 'QMP event');
  }

  async stop(opts: { force: boolean; timeoutMs?: number }): Promise<void> {
    const { pid, startTime, name } = this.record;
    const qmp = opts.force ? null : await this.qmp();
    if (qmp) {
      await qmp.execute('system_powerdown').catch((err: unknown) => {
        this.log.warn({ vm: name, err: errnoName(err) }, 'system_powerdown failed');
      });
      if (await goneWithin(pid, startTime, this.exited, opts.timeoutMs ?? this.powerdownTimeoutMs)) return;
      this.log.warn({ vm: name }, 'guest ignored ACPI powerdown: killing QEMU');
    }
    await kill(pid, startTime, this.exited);
    this.detach();
  }

  async setMemory(memoryMiB: number): Promise<boolean> {
    const max = this.record.memoryMiB;
    if (max === undefined || memoryMiB > max) return false;
    const qmp = await this.qmp();
    if (!qmp) return false;
    await qmp.execute('balloon', { value: memoryMiB * 1024 * 1024 });
    return true;
  }

  async status(): Promise<string> {
    const qmp = await this.qmp();
    if (!qmp) return 'unknown';
    return (await qmp.execute<{ status: string }>('query-status')).status;
  }

  /** The QMP connection, for callers that need more than the handle offers (null when lost). */
  get qmpClient(): QmpClient | null {
    return this.client && !this.client.isClosed ? this.client : null;
  }

  detach(): void {
    this.detached = true;
    this.client?.close();
    this.client = null;
  }
}
