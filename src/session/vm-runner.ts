import { setTimeout as sleep } from 'node:timers/promises';
import type { Resources, VmConfig } from '../config/schema.js';
import type { CgroupResources } from '../resources/cgroup.js';
import { BackendError, errnoName, errText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { markStart } from '../util/start-trace.js';
import type { Backend, LaunchContext, VmExit, VmHandle, VmRecord, VmState } from './backends/backend.js';
import { adoptJob } from './jobs/adopt-job.js';
import type { JobKind, JobRecord, JobView } from './jobs/job.js';
import { readSaved, type SavedMeta } from './jobs/saved-state.js';
import { type JobHost, migrateVm, saveVm, takeIncoming } from './jobs/vm-jobs.js';
import type { QmpClient } from './qmp.js';
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
  /** Configured limits (cgroup), or null when none. */
  readonly resources: Resources | null;
  /** The running or last save/restore/migrate/receive job of this VM (progress for the admin screen). */
  readonly job: JobView | null;
  /** When the VM was saved to disk (vm.save), while that saved state waits for vm.restore. */
  readonly savedAt: string | null;
  /** Hibernated in memory (cgroup freezer): every process stopped, mounts and netns kept. */
  readonly frozen: boolean;
}

/** A launch that takes a migration stream instead of booting. */
export interface Incoming {
  readonly kind: Extract<JobKind, 'restore' | 'receive'>;
  readonly uri: string;
  readonly target: string;
  /** receive: the owners' stream key; only a sender holding it is taken. */
  readonly key?: string | undefined;
}

export interface RunnerDeps {
  readonly backend: () => Backend;
  /** Launch context; `display` given = adoption (reuse what exists, create nothing). */
  readonly context: (
    vm: VmConfig,
    memoryMiB: number | null,
    display?: string,
    incoming?: boolean,
  ) => Promise<LaunchContext>;
  readonly records: VmRecordStore;
  readonly stateDir: string;
  /** Private folder for a migration's stream key while a job runs (in the VM's run dir). */
  readonly keyDir: string;
  /** Per-VM cgroups; null where the host has none usable. */
  readonly resources: CgroupResources | null;
  readonly log: Logger;
  readonly policy: RestartPolicy;
  readonly now: () => number;
  readonly stopTimeoutMs: number | undefined;
  readonly closed: () => boolean;
  readonly onState: (st: VmStatus) => void;
}

/** A QEMU adopted right after its launch may not listen on QMP yet (slow under TCG or a CPU quota). */
const ADOPTED_QMP_WAIT_MS = 120_000;

async function qmpWithin(handle: VmHandle, ms: number): Promise<QmpClient | null> {
  const end = Date.now() + ms;
  let gone = false;
  void handle.exited.then(() => {
    gone = true;
  });
  for (;;) {
    const qmp = await handle.qmp?.();
    if (qmp || gone || !handle.qmp || Date.now() > end) return qmp ?? null;
    await sleep(250);
  }
}

export class VmRunner {
  private life: VmLifecycle = INITIAL_LIFECYCLE;
  private handle: VmHandle | null = null;
  private launching: Promise<VmHandle | null> | null = null;
  private gen = 0;
  private timer: NodeJS.Timeout | null = null;
  private memoryMiB: number | null;
  private lastError: string | null = null;
  private job: JobView | null = null;
  private jobRecord: JobRecord | null = null;
  private incoming: Incoming | null = null;
  private incomingDone: Promise<JobView> | null = null;
  private listening: Promise<void> | null = null;
  private saved: SavedMeta | null;
  private frozen = false;
  private adoptedJob: Promise<JobView | null> | null = null;
  /** The last run's cgroup going away: the next launch waits for it, or it could lose its new cgroup. */
  private releasing: Promise<void> | null = null;

  private config: VmConfig;

  constructor(
    vm: VmConfig,
    private readonly deps: RunnerDeps,
  ) {
    this.config = vm;
    this.memoryMiB = vm.qemu?.memoryMiB ?? vm.virtualbox?.memoryMiB ?? null;
    this.saved = readSaved(deps.stateDir, vm.name);
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
      resources: this.vm.resources ?? null,
      job: this.job,
      savedAt: this.saved?.savedAt ?? null,
      frozen: this.frozen,
    };
  }

  /** The saved state waiting for vm.restore (re-read: a save or restore changes it). */
  savedState(): SavedMeta | null {
    this.saved = readSaved(this.deps.stateDir, this.vm.name);
    return this.saved;
  }

  /** Change the cgroup limits of the running VM; false when it has no cgroup (not running). */
  setResources(r: Resources): boolean {
    const live = this.handle !== null && (this.deps.resources?.update(this.vm.name, r) ?? false);
    this.deps.onState(this.status());
    return live;
  }

  /** Hibernate (freeze every process of the VM's cgroup) or wake it; false when not running. */
  freeze(frozen: boolean): boolean {
    const res = this.deps.resources;
    if (!this.handle || !res) return false;
    res.freeze(this.vm.name, frozen);
    this.frozen = frozen;
    this.deps.onState(this.status());
    return true;
  }

  /** vm.save: the state goes to stateDir/saved, the VM ends stopped. */
  async save(): Promise<SavedMeta> {
    this.needNoJob();
    const q = this.vm.qemu;
    const meta = await saveVm(this.jobHost(), {
      disks: q?.disk ? [q.disk] : [],
      memoryMiB: this.memoryMiB,
      bandwidthMiB: q?.migrationBandwidthMiB,
    });
    this.saved = meta;
    return meta;
  }

  /** vm.migrate: the guest moves to a kvmux receiving on `to` (with `key`: only one holding it). */
  migrate(to: string, key?: string): Promise<JobView> {
    this.needNoJob();
    return migrateVm(this.jobHost(), to, { bandwidthMiB: this.vm.qemu?.migrationBandwidthMiB, key });
  }

  /** Launch waiting for a stream (restore, receive); `incomingResult` follows it. */
  startIncoming(incoming: Incoming): void {
    if (this.busy || (this.state !== 'stopped' && this.state !== 'crashed'))
      throw new BackendError(this.vm.name, `is ${this.state}: stop it before a ${incoming.kind}`);
    this.incoming = incoming;
    this.incomingDone = null;
    this.dispatch({ type: 'start' });
  }

  /** Resolves once the incoming QEMU takes the stream (a receiver listens); throws when it failed first. */
  async incomingListening(): Promise<void> {
    if (!this.listening) throw new BackendError(this.vm.name, 'is not taking a stream');
    return this.listening;
  }

  /** The end of the stream a startIncoming launch takes; throws when it failed (the VM is stopped then). */
  async incomingResult(): Promise<JobView> {
    if (!this.incomingDone) throw new BackendError(this.vm.name, 'is not taking a stream');
    return this.incomingDone;
  }

  /** The job an adopted VM was in the middle of, finished or undone (see jobs/adopt-job.ts). */
  private async finishAdoptedJob(handle: VmHandle, job: JobRecord): Promise<JobView | null> {
    const { log } = this.deps;
    log.info({ vm: this.vm.name, job }, 'adopted VM was mid-job: finishing it');
    const qmp = await qmpWithin(handle, ADOPTED_QMP_WAIT_MS);
    if (!qmp) {
      log.warn({ vm: this.vm.name, job }, 'no QMP: the recorded job cannot be finished');
      return null;
    }
    const q = this.vm.qemu;
    const view = await adoptJob(this.jobHost(), qmp, job, {
      disks: q?.disk ? [q.disk] : [],
      memoryMiB: this.memoryMiB,
    }).catch((err: unknown) => {
      log.error({ vm: this.vm.name, err: errText(err) }, 'finishing the adopted job failed');
      return null;
    });
    this.savedState();
    log.info({ vm: this.vm.name, job: view }, 'adopted job ended');
    return view;
  }

  /** The adopted job's end (tests and the supervisor wait on it); null when there was none. */
  adoptedJobDone(): Promise<JobView | null> {
    return this.adoptedJob ?? Promise.resolve(null);
  }

  private needNoJob(): void {
    if (this.job?.status === 'active')
      throw new BackendError(this.vm.name, `a ${this.job.kind} is in progress`);
  }

  private jobHost(): JobHost {
    return {
      name: this.vm.name,
      stateDir: this.deps.stateDir,
      keyDir: this.deps.keyDir,
      handle: () => this.handle,
      setJob: (view, record) => {
        this.job = view;
        if (record === undefined) return;
        this.jobRecord = record;
        // a job's end may have committed or spent the saved state
        if (record === null) this.savedState();
        if (this.handle) this.deps.records.save(this.recordOf(this.handle));
        this.deps.onState(this.status());
      },
    };
  }

  private recordOf(handle: VmHandle): VmRecord {
    return this.recordWith(handle.record);
  }

  private recordWith(record: VmRecord): VmRecord {
    const { job: _old, ...rest } = record;
    return this.jobRecord ? { ...rest, job: this.jobRecord } : rest;
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
    this.jobRecord = record.job ?? null;
    this.attach(handle);
    log.info({ vm: this.vm.name, pid: handle.pid }, 'adopted running VM');
    this.dispatch({ type: 'adopted' });
    const job = this.jobRecord;
    if (job) this.adoptedJob = this.finishAdoptedJob(handle, job);
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
    const incoming = this.incoming;
    this.incoming = null;
    const name = this.vm.name;
    markStart(`vm-start:${name}`);
    const attempt = (async () => {
      await this.releasing;
      const ctx = await this.deps.context(this.vm, this.memoryMiB, undefined, incoming !== null);
      markStart(`vm-display:${name}`);
      // recorded with the process itself: a kvmux dying before migrate-incoming leaves a QEMU
      // waiting in `-incoming defer`, and the next one must know which stream it waits for (and
      // that only a keyed one may load)
      this.jobRecord = incoming
        ? {
            kind: incoming.kind,
            target: incoming.target,
            startedAt: new Date(this.deps.now()).toISOString(),
            ...(incoming.key !== undefined ? { keyed: true } : {}),
          }
        : null;
      const onSpawned = (rec: VmRecord) => {
        markStart(`vm-spawned:${name}`);
        if (gen === this.gen) this.deps.records.save(this.recordWith(rec));
      };
      const handle = await this.deps
        .backend()
        .start(this.vm, { ...ctx, onSpawned })
        .catch((err: unknown) => {
          // start() killed what it spawned: its early record goes too
          if (gen === this.gen && !this.handle) this.deps.records.remove(this.vm.name);
          throw err;
        });
      if (gen !== this.gen || this.deps.closed()) {
        await handle.stop({ force: true });
        if (gen === this.gen) this.deps.records.remove(this.vm.name);
        return null;
      }
      this.attach(handle);
      this.lastError = null;
      markStart(`vm-running:${name}`);
      this.dispatch({ type: 'launched' });
      if (incoming) this.incomingDone = this.follow(incoming);
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

  /** Follow an incoming stream; a failed one must not reboot the guest fresh: the VM is stopped. */
  private follow(incoming: Incoming): Promise<JobView> {
    let listening = () => {};
    const ready = new Promise<void>((resolve) => {
      listening = resolve;
    });
    const done = takeIncoming(this.jobHost(), incoming, listening);
    this.listening = Promise.race([ready, done.then(() => {})]);
    done.catch((err: unknown) => {
      this.lastError = errText(err);
      this.deps.log.error({ vm: this.vm.name, err: this.lastError }, `${incoming.kind} failed`);
      this.dispatch({ type: 'stop', force: true });
    });
    return done;
  }

  /** Resolves once the cgroup of the last run is gone (its leftovers killed, its folders removed). */
  async released(): Promise<void> {
    await this.releasing;
  }

  private attach(handle: VmHandle): void {
    this.handle = handle;
    this.deps.records.save(this.recordOf(handle));
    this.joinCgroup(handle.pid);
    // an adopted VM may have been hibernated by the kvmux before this one: the kernel knows
    this.frozen = this.kernelFrozen();
    void handle.exited.then((exit) => this.onExit(handle, exit));
  }

  /** Its cgroup is asked to be frozen (false without cgroups, or when unreadable). */
  private kernelFrozen(): boolean {
    try {
      return this.deps.resources?.frozen(this.vm.name) ?? false;
    } catch {
      return false;
    }
  }

  /** Launched processes joined before exec; this covers adoption and backends that could not. */
  private joinCgroup(pid: number): void {
    try {
      this.deps.resources?.apply(this.vm.name, pid, this.vm.resources ?? {});
    } catch (err) {
      this.lastError = errText(err);
      this.deps.log.warn({ vm: this.vm.name, err: this.lastError }, 'resources not applied');
    }
  }

  private onExit(handle: VmHandle, exit: VmExit): void {
    if (this.handle !== handle) return;
    this.handle = null;
    handle.detach();
    this.deps.records.remove(this.vm.name);
    this.releasing = this.deps.resources?.release(this.vm.name) ?? null;
    this.frozen = false;
    this.jobRecord = null;
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
    // a frozen process acts on no signal (cgroup v1: not even SIGKILL): wake it to stop it
    if (this.frozen || this.kernelFrozen()) this.freeze(false);
    const timeout = this.deps.stopTimeoutMs;
    await handle
      .stop({ force, ...(timeout !== undefined ? { timeoutMs: timeout } : {}) })
      .catch((err: unknown) => this.deps.log.error({ vm: this.vm.name, err: errnoName(err) }, 'stop failed'));
  }
}
