import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { BackendError, errnoName } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/log.js';
import type { Backend, LaunchContext, VmExit, VmHandle, VmState } from './backends/backend.js';
import type { Config, VmConfig } from './config-schema.js';
import { vmDirOf } from './vm-paths.js';
import { VmRecordStore } from './vm-records.js';
import {
  DEFAULT_RESTART_POLICY,
  INITIAL_LIFECYCLE,
  type RestartPolicy,
  type VmEvent,
  type VmLifecycle,
  vmTransition,
} from './vm-state.js';

/**
 * Owns the VMs: runs the pure lifecycle (vm-state.ts) and performs its actions through the backends.
 * VM records in stateDir let a restarted kvmux re-adopt VMs that outlived it (same pids).
 */
export interface DisplayInfo {
  readonly display: string;
  readonly width: number;
  readonly height: number;
}

/** One row of `vm.list` (contract: name, backend, state, pid, memoryMiB; the rest are extensions). */
export interface VmStatus {
  readonly name: string;
  readonly backend: VmConfig['backend'];
  readonly state: VmState;
  readonly pid: number | null;
  readonly memoryMiB: number | null;
  readonly display: string | null;
  /** Crashes within the restart window. */
  readonly crashes: number;
  /** Too many crashes in the window: no more automatic restarts until someone starts it. */
  readonly gaveUp: boolean;
  readonly nextRestartAt: string | null;
  readonly lastError: string | null;
}

export interface SupervisorOptions {
  readonly config: Pick<Config, 'runDir' | 'stateDir' | 'vms'>;
  readonly backends: Partial<Record<VmConfig['backend'], Backend>>;
  readonly displayFor: (vm: VmConfig) => DisplayInfo | Promise<DisplayInfo>;
  /** Taps for the VM's NICs (networking); default none. */
  readonly tapsFor?: (vm: VmConfig) => LaunchContext['taps'] | Promise<LaunchContext['taps']>;
  readonly log?: Logger;
  readonly policy?: RestartPolicy;
  /** Graceful stop timeout handed to the backend (default: the backend's own). */
  readonly stopTimeoutMs?: number;
  readonly now?: () => number;
}

interface Entry {
  vm: VmConfig;
  life: VmLifecycle;
  handle: VmHandle | null;
  launching: Promise<VmHandle | null> | null;
  gen: number;
  timer: NodeJS.Timeout | null;
  memoryMiB: number | null;
  lastError: string | null;
}

const SETTLED: ReadonlySet<VmState> = new Set(['running', 'stopped', 'crashed']);

export class Supervisor extends EventEmitter<{ state: [VmStatus] }> {
  private readonly entries = new Map<string, Entry>();
  private readonly records: VmRecordStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.log = opts.log ?? silentLogger;
    this.now = opts.now ?? Date.now;
    this.records = new VmRecordStore(opts.config.stateDir);
    for (const vm of opts.config.vms) this.addVm(vm);
  }

  /** Add a VM (e.g. an image discovered after start); it starts stopped. */
  addVm(vm: VmConfig): void {
    if (this.entries.has(vm.name)) throw new BackendError(vm.name, 'a VM with this name exists already');
    const memoryMiB = vm.qemu?.memoryMiB ?? vm.virtualbox?.memoryMiB ?? null;
    this.entries.set(vm.name, {
      vm,
      life: INITIAL_LIFECYCLE,
      handle: null,
      launching: null,
      gen: 0,
      timer: null,
      memoryMiB,
      lastError: null,
    });
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  list(): VmStatus[] {
    return [...this.entries.values()].map((e) => this.status(e));
  }

  get(name: string): VmStatus {
    return this.status(this.entry(name));
  }

  /** The live handle (null when not running): for callers that need the pid or QMP. */
  handle(name: string): VmHandle | null {
    return this.entry(name).handle;
  }

  /** Chords to swallow while this VM's display is active: its backend's host keys + its blockedKeys. */
  hostKeys(name: string): string[] {
    const e = this.entry(name);
    return [...(this.opts.backends[e.vm.backend]?.hostKeys ?? []), ...e.vm.blockedKeys];
  }

  /** Start and wait until it runs; throws when the launch fails. */
  async start(name: string): Promise<VmStatus> {
    this.dispatch(this.entry(name), { type: 'start' });
    const st = await this.settle(name);
    if (st.state !== 'running') throw new BackendError(name, `did not start: ${st.lastError ?? st.state}`);
    return st;
  }

  /** Graceful (ACPI powerdown, then kill after the timeout) or forced stop; resolves when stopped. */
  async stop(name: string, opts: { force?: boolean } = {}): Promise<VmStatus> {
    this.dispatch(this.entry(name), { type: 'stop', force: opts.force ?? false });
    return this.settle(name);
  }

  async restart(name: string): Promise<VmStatus> {
    this.dispatch(this.entry(name), { type: 'restart' });
    const st = await this.settle(name);
    if (st.state !== 'running') throw new BackendError(name, `did not restart: ${st.lastError ?? st.state}`);
    return st;
  }

  /** Live where the backend can (QEMU balloon up to the boot size); otherwise on next start. */
  async setMemory(name: string, memoryMiB: number): Promise<{ live: boolean; memoryMiB: number }> {
    const e = this.entry(name);
    e.memoryMiB = memoryMiB;
    const live = e.handle ? await e.handle.setMemory(memoryMiB) : false;
    this.emit('state', this.status(e));
    return { live, memoryMiB };
  }

  /** Re-attach to VMs recorded in stateDir that still run; returns the adopted names. */
  async adoptAll(): Promise<string[]> {
    const adopted: string[] = [];
    for (const name of this.records.names()) {
      const e = this.entries.get(name);
      if (!e) {
        this.log.warn({ vm: name }, 'record of a VM that is no longer configured: left alone');
        continue;
      }
      if (e.handle || e.life.state !== 'stopped') continue;
      if (await this.adoptOne(e)) adopted.push(name);
    }
    return adopted;
  }

  /** Adopt what still runs, then start every autostart VM in config order. */
  async autostart(): Promise<void> {
    await this.adoptAll();
    for (const e of this.entries.values()) {
      if (!e.vm.autostart || e.life.state !== 'stopped') continue;
      await this.start(e.vm.name).catch((err: unknown) =>
        this.log.error({ vm: e.vm.name, err: errnoName(err) }, 'autostart failed'),
      );
    }
  }

  /** Stop everything (graceful), or leave the VMs running for a later kvmux to adopt. */
  async shutdown(opts: { leaveRunning?: boolean; force?: boolean } = {}): Promise<void> {
    this.closed = true;
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    if (opts.leaveRunning) {
      for (const e of this.entries.values()) e.handle?.detach();
      return;
    }
    const live = [...this.entries.values()].filter((e) => e.handle || e.launching);
    await Promise.all(live.map((e) => this.stop(e.vm.name, { force: opts.force ?? false })));
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new BackendError(name, 'no such VM');
    return e;
  }

  private status(e: Entry): VmStatus {
    return {
      name: e.vm.name,
      backend: e.vm.backend,
      state: e.life.state,
      pid: e.handle?.pid ?? null,
      memoryMiB: e.memoryMiB,
      display: e.handle?.record.display ?? null,
      crashes: e.life.crashes.length,
      gaveUp: e.life.gaveUp,
      nextRestartAt: e.life.retryAtMs === null ? null : new Date(e.life.retryAtMs).toISOString(),
      lastError: e.lastError,
    };
  }

  /** Resolves with the status once the VM is running, stopped or crashed. */
  private settle(name: string): Promise<VmStatus> {
    const now = this.get(name);
    if (SETTLED.has(now.state)) return Promise.resolve(now);
    return new Promise((resolve) => {
      const onState = (st: VmStatus) => {
        if (st.name !== name || !SETTLED.has(st.state)) return;
        this.off('state', onState);
        resolve(st);
      };
      this.on('state', onState);
    });
  }

  private dispatch(e: Entry, ev: VmEvent): void {
    const before = e.life.state;
    const step = vmTransition(e.life, ev, this.now(), this.opts.policy ?? DEFAULT_RESTART_POLICY);
    e.life = step.state;
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    if (step.nextDeadlineMs !== null && !this.closed) {
      e.timer = setTimeout(
        () => this.dispatch(e, { type: 'tick' }),
        Math.max(0, step.nextDeadlineMs - this.now()),
      );
      e.timer.unref();
    }
    if (e.life.state !== before) {
      this.log.info({ vm: e.vm.name, from: before, to: e.life.state, event: ev.type }, 'VM state');
      this.emit('state', this.status(e));
    }
    for (const action of step.actions) {
      if (action.type === 'launch') this.launch(e);
      else void this.terminate(e, action.force);
    }
  }

  private async context(e: Entry, display?: DisplayInfo): Promise<LaunchContext> {
    const vmDir = vmDirOf(this.opts.config.runDir, e.vm.name);
    mkdirSync(vmDir, { recursive: true, mode: 0o700 });
    const d = display ?? (await this.opts.displayFor(e.vm));
    // Adoption passes the recorded display: the taps already exist, so none are created.
    const taps = display ? [] : ((await this.opts.tapsFor?.(e.vm)) ?? []);
    const configured = e.vm.qemu?.memoryMiB ?? e.vm.virtualbox?.memoryMiB ?? null;
    return {
      display: d.display,
      width: d.width,
      height: d.height,
      vmDir,
      taps,
      ...(e.memoryMiB !== null && e.memoryMiB !== configured ? { memoryMiB: e.memoryMiB } : {}),
    };
  }

  private backend(e: Entry): Backend {
    const b = this.opts.backends[e.vm.backend];
    if (!b) throw new BackendError(e.vm.name, `backend "${e.vm.backend}" is not available`);
    return b;
  }

  private launch(e: Entry): void {
    const gen = ++e.gen;
    e.launching = (async () => {
      const handle = await this.backend(e).start(e.vm, await this.context(e));
      if (gen !== e.gen || this.closed) {
        await handle.stop({ force: true });
        return null;
      }
      this.attach(e, handle);
      e.lastError = null;
      this.dispatch(e, { type: 'launched' });
      return handle;
    })().catch((err: unknown) => {
      e.lastError = err instanceof Error ? err.message : String(err);
      this.log.error({ vm: e.vm.name, err: e.lastError }, 'VM launch failed');
      if (gen === e.gen) this.dispatch(e, { type: 'launch-failed' });
      return null;
    });
    void e.launching.finally(() => {
      if (gen === e.gen) e.launching = null;
    });
  }

  private attach(e: Entry, handle: VmHandle): void {
    e.handle = handle;
    this.records.save(handle.record);
    void handle.exited.then((exit) => this.onExit(e, handle, exit));
  }

  private onExit(e: Entry, handle: VmHandle, exit: VmExit): void {
    if (e.handle !== handle) return;
    e.handle = null;
    handle.detach();
    this.records.remove(e.vm.name);
    this.log.info({ vm: e.vm.name, pid: handle.pid, ...exit }, 'VM process exited');
    if (!exit.clean && e.life.state !== 'stopping')
      e.lastError = `exited (code ${exit.code}, signal ${exit.signal})`;
    this.dispatch(e, { type: 'exited', clean: exit.clean });
  }

  private async terminate(e: Entry, force: boolean): Promise<void> {
    const handle = e.handle ?? (await e.launching);
    if (!handle) {
      this.dispatch(e, { type: 'exited', clean: true });
      return;
    }
    await handle
      .stop({
        force,
        ...(this.opts.stopTimeoutMs !== undefined ? { timeoutMs: this.opts.stopTimeoutMs } : {}),
      })
      .catch((err: unknown) => this.log.error({ vm: e.vm.name, err: errnoName(err) }, 'stop failed'));
  }

  private async adoptOne(e: Entry): Promise<boolean> {
    const record = this.records.load(e.vm.name);
    if (!record) return false;
    const backend = this.backend(e);
    const ctx = await this.context(e, { display: record.display, width: 0, height: 0 });
    const handle = await backend.adopt(e.vm, record, ctx).catch((err: unknown) => {
      this.log.warn({ vm: e.vm.name, err: errnoName(err) }, 'adoption failed');
      return null;
    });
    if (!handle) {
      this.log.info({ vm: e.vm.name, pid: record.pid }, 'recorded VM is gone: not adopted');
      this.records.remove(e.vm.name);
      return false;
    }
    if (record.memoryMiB !== undefined) e.memoryMiB = e.memoryMiB ?? record.memoryMiB;
    this.attach(e, handle);
    this.log.info({ vm: e.vm.name, pid: handle.pid }, 'adopted running VM');
    this.dispatch(e, { type: 'adopted' });
    return true;
  }
}
