import type { VmConfig } from '../config/schema.js';
import { errnoName, errText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { Backend, LaunchContext, VmExit, VmHandle, VmRecord, VmState } from './backends/backend.js';
import type { VmRecordStore } from './vm-records.js';
import {
  INITIAL_LIFECYCLE,
  type RestartPolicy,
  type VmEvent,
  type VmLifecycle,
  vmTransition,
} from './vm-state.js';

/**
 * One VM's thin I/O loop around the pure lifecycle (vm-state.ts): it feeds events in, performs the
 * launch/terminate actions through the backend, arms the restart timer and keeps the stateDir record.
 */

/** One row of `vm.list` (contract: name, backend, state, pid, memoryMiB; the rest are extensions). */
export interface VmStatus {
  readonly name: string;
  readonly backend: VmConfig['backend'];
  readonly state: VmState;
  readonly pid: number | null;
  /** What the VM runs with, or will at its next start when a change could not apply live. */
  readonly memoryMiB: number | null;
  readonly display: string | null;
  /** Crashes within the restart window. */
  readonly crashes: number;
  /** Too many crashes in the window: no more automatic restarts until someone starts it. */
  readonly gaveUp: boolean;
  readonly nextRestartAt: string | null;
  readonly lastError: string | null;
}

export interface RunnerDeps {
  readonly backend: () => Backend;
  /** Launch context; `display` given = adoption (reuse what exists, create nothing). */
  readonly context: (vm: VmConfig, memoryMiB: number | null, display?: string) => Promise<LaunchContext>;
  readonly records: VmRecordStore;
  readonly log: Logger;
  readonly policy: RestartPolicy;
  readonly now: () => number;
  readonly stopTimeoutMs: number | undefined;
  readonly closed: () => boolean;
  readonly onState: (st: VmStatus) => void;
}

export class VmRunner {
  private life: VmLifecycle = INITIAL_LIFECYCLE;
  private handle: VmHandle | null = null;
  private launching: Promise<VmHandle | null> | null = null;
  private gen = 0;
  private timer: NodeJS.Timeout | null = null;
  private memoryMiB: number | null;
  private lastError: string | null = null;

  private config: VmConfig;

  constructor(
    vm: VmConfig,
    private readonly deps: RunnerDeps,
  ) {
    this.config = vm;
    this.memoryMiB = vm.qemu?.memoryMiB ?? vm.virtualbox?.memoryMiB ?? null;
  }

  /** The entry the next launch uses. */
  get vm(): VmConfig {
    return this.config;
  }

  /** A changed entry; a changed memory size becomes the size to start with. */
  reconfigure(vm: VmConfig): void {
    const mem = (v: VmConfig) => v.qemu?.memoryMiB ?? v.virtualbox?.memoryMiB ?? null;
    if (mem(vm) !== mem(this.config)) this.memoryMiB = mem(vm);
    this.config = vm;
    this.deps.onState(this.status());
  }

  get state(): VmState {
    return this.life.state;
  }

  /** Something runs or is being launched: shutdown must stop it. */
  get busy(): boolean {
    return this.handle !== null || this.launching !== null;
  }

  current(): VmHandle | null {
    return this.handle;
  }

  status(): VmStatus {
    return {
      name: this.vm.name,
      backend: this.vm.backend,
      state: this.life.state,
      pid: this.handle?.pid ?? null,
      memoryMiB: this.memoryMiB,
      display: this.handle?.record.display ?? null,
      crashes: this.life.crashes.length,
      gaveUp: this.life.gaveUp,
      nextRestartAt: this.life.retryAtMs === null ? null : new Date(this.life.retryAtMs).toISOString(),
      lastError: this.lastError,
    };
  }

  dispatch(ev: VmEvent): void {
    const before = this.life.state;
    const step = vmTransition(this.life, ev, this.deps.now(), this.deps.policy);
    this.life = step.state;
    this.clearTimer();
    if (step.nextDeadlineMs !== null && !this.deps.closed()) {
      const delay = Math.max(0, step.nextDeadlineMs - this.deps.now());
      this.timer = setTimeout(() => this.dispatch({ type: 'tick' }), delay);
      this.timer.unref();
    }
    if (this.life.state !== before) {
      this.deps.log.info({ vm: this.vm.name, from: before, to: this.life.state, event: ev.type }, 'VM state');
      this.deps.onState(this.status());
    }
    for (const action of step.actions) {
      if (action.type === 'launch') this.launch();
      else void this.terminate(action.force);
    }
  }

  /** Live where the backend can; otherwise remembered for the next start. */
  async setMemory(memoryMiB: number): Promise<boolean> {
    this.memoryMiB = memoryMiB;
    const live = this.handle ? await this.handle.setMemory(memoryMiB) : false;
    this.deps.onState(this.status());
    return live;
  }

  /** Re-attach to the recorded process when it still runs; a dead one (or a zombie) drops the record. */
  async adopt(record: VmRecord): Promise<boolean> {
    const { log, records } = this.deps;
    const ctx = await this.deps.context(this.vm, this.memoryMiB, record.display);
    const handle = await this.deps
      .backend()
      .adopt(this.vm, record, ctx)
      .catch((err: unknown) => {
        log.warn({ vm: this.vm.name, err: errnoName(err) }, 'adoption failed');
        return null;
      });
    if (!handle) {
      log.info({ vm: this.vm.name, pid: record.pid }, 'recorded VM is gone: not adopted');
      records.remove(this.vm.name);
      return false;
    }
    if (record.memoryMiB !== undefined) this.memoryMiB ??= record.memoryMiB;
    this.attach(handle);
    log.info({ vm: this.vm.name, pid: handle.pid }, 'adopted running VM');
    this.dispatch({ type: 'adopted' });
    return true;
  }

  /** Drop connections and timers but leave the VM running (service shutdown for later adoption). */
  detach(): void {
    this.clearTimer();
    this.handle?.detach();
  }

  clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private launch(): void {
    const gen = ++this.gen;
    const { log } = this.deps;
    const attempt = (async () => {
      const ctx = await this.deps.context(this.vm, this.memoryMiB);
      const handle = await this.deps.backend().start(this.vm, ctx);
      if (gen !== this.gen || this.deps.closed()) {
        await handle.stop({ force: true });
        return null;
      }
      this.attach(handle);
      this.lastError = null;
      this.dispatch({ type: 'launched' });
      return handle;
    })().catch((err: unknown) => {
      this.lastError = errText(err);
      log.error({ vm: this.vm.name, err: this.lastError }, 'VM launch failed');
      if (gen === this.gen) this.dispatch({ type: 'launch-failed' });
      return null;
    });
    this.launching = attempt;
    void attempt.finally(() => {
      if (this.launching === attempt) this.launching = null;
    });
  }

  private attach(handle: VmHandle): void {
    this.handle = handle;
    this.deps.records.save(handle.record);
    void handle.exited.then((exit) => this.onExit(handle, exit));
  }

  private onExit(handle: VmHandle, exit: VmExit): void {
    if (this.handle !== handle) return;
    this.handle = null;
    handle.detach();
    this.deps.records.remove(this.vm.name);
    this.deps.log.info({ vm: this.vm.name, pid: handle.pid, ...exit }, 'VM process exited');
    if (!exit.clean && this.life.state !== 'stopping')
      this.lastError = `exited (code ${exit.code}, signal ${exit.signal})`;
    this.dispatch({ type: 'exited', clean: exit.clean });
  }

  private async terminate(force: boolean): Promise<void> {
    const handle = this.handle ?? (await this.launching);
    if (!handle) {
      this.dispatch({ type: 'exited', clean: true });
      return;
    }
    const timeout = this.deps.stopTimeoutMs;
    await handle
      .stop({ force, ...(timeout !== undefined ? { timeoutMs: timeout } : {}) })
      .catch((err: unknown) => this.deps.log.error({ vm: this.vm.name, err: errnoName(err) }, 'stop failed'));
  }
}
