import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import type { Config, Resources, VmConfig } from '../config/schema.js';
import type { CgroupResources } from '../resources/cgroup.js';
import type { AppliedResources } from '../resources/limits.js';
import { BackendError, errnoName, errText } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/log.js';
import { autostartPlan } from './autostart-plan.js';
import type { Backend, LaunchContext, VmState } from './backends/backend.js';
import type { JobView } from './jobs/job.js';
import {
  diskStamps,
  dropSaved,
  restoreUri,
  type SavedMeta,
  savePaths,
  stampMismatch,
} from './jobs/saved-state.js';
import { keyDirOf } from './jobs/stream-key.js';
import { vmDirOf } from './vm-paths.js';
import { VmRecordStore } from './vm-records.js';
import { VmRunner, type VmStatus } from './vm-runner.js';
import { DEFAULT_RESTART_POLICY, type RestartPolicy } from './vm-state.js';

export type { VmStatus } from './vm-runner.js';

/**
 * Owns the VMs, one VmRunner each, in config order. VM records in stateDir let a restarted kvmux
 * re-adopt VMs that outlived it (same pids) instead of starting duplicates.
 */
export interface DisplayInfo {
  readonly display: string;
  readonly width: number;
  readonly height: number;
}

export interface SupervisorOptions {
  readonly config: Pick<Config, 'runDir' | 'stateDir' | 'vms'>;
  readonly backends: Partial<Record<VmConfig['backend'], Backend>>;
  /** The display a VM runs on; called at every (re)launch, so return the existing one. */
  readonly displayFor: (vm: VmConfig) => DisplayInfo | Promise<DisplayInfo>;
  /** Taps for the VM's NICs (networking); default none. Not called on adoption. */
  readonly tapsFor?: (vm: VmConfig) => LaunchContext['taps'] | Promise<LaunchContext['taps']>;
  readonly log?: Logger;
  readonly policy?: RestartPolicy;
  /** Graceful stop timeout handed to the backend (default: the backend's own). */
  readonly stopTimeoutMs?: number;
  readonly now?: () => number;
  /** Per-VM cgroups (resources, freezer); absent = no limits. */
  readonly resources?: CgroupResources | null;
}

const SETTLED: ReadonlySet<VmState> = new Set(['running', 'stopped', 'crashed']);
/** How long the lead VM has the start to itself; a slow one (VirtualBox, a busy host) then shares it. */
const LEAD_MS = 10_000;

/** Resolves when `p` settles or after `ms`, whichever comes first; never rejects. */
function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([p.then(noop, noop), late]).finally(() => clearTimeout(timer));
}
const noop = () => {};

/** `reset`: a VM rebooted from inside (QMP RESET); its process, and its channel, live on. */
export class Supervisor extends EventEmitter<{ state: [VmStatus]; reset: [string] }> {
  private readonly runners = new Map<string, VmRunner>();
  private readonly records: VmRecordStore;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.log = opts.log ?? silentLogger;
    this.records = new VmRecordStore(opts.config.stateDir);
    for (const vm of opts.config.vms) this.addVm(vm);
  }

  /** Add a VM (e.g. an image discovered or uploaded after start); it starts stopped. */
  addVm(vm: VmConfig): void {
    if (this.runners.has(vm.name)) throw new BackendError(vm.name, 'a VM with this name exists already');
    this.runners.set(
      vm.name,
      new VmRunner(vm, {
        backend: () => this.backend(vm),
        context: (v, memoryMiB, display, incoming) => this.context(v, memoryMiB, display, incoming),
        records: this.records,
        stateDir: this.opts.config.stateDir,
        keyDir: keyDirOf(vmDirOf(this.opts.config.runDir, vm.name)),
        resources: this.opts.resources ?? null,
        log: this.log,
        policy: this.opts.policy ?? DEFAULT_RESTART_POLICY,
        now: this.opts.now ?? Date.now,
        stopTimeoutMs: this.opts.stopTimeoutMs,
        closed: () => this.closed,
        onState: (st) => this.emit('state', st),
      }),
    );
  }

  /** Nothing runs or launches: the VM may leave (a crashed one waiting to relaunch counts). */
  removable(name: string): boolean {
    const r = this.runner(name);
    return !r.busy && (r.state === 'stopped' || r.state === 'crashed');
  }

  /** Forget a stopped or crashed VM (deleted); its record goes too. */
  removeVm(name: string): void {
    const r = this.runner(name);
    if (!this.removable(name))
      throw new BackendError(name, `cannot remove a VM that is ${r.state}: stop it first`);
    // a crashed VM's relaunch timer must not fire for a VM that is gone
    if (r.state === 'crashed') r.dispatch({ type: 'stop', force: false });
    r.clearTimer();
    this.runners.delete(name);
    this.records.remove(name);
  }

  /** A changed config entry: used from the next launch on (what can change live is the caller's). */
  updateVm(vm: VmConfig): void {
    this.runner(vm.name).reconfigure(vm);
  }

  has(name: string): boolean {
    return this.runners.has(name);
  }

  list(): VmStatus[] {
    return [...this.runners.values()].map((r) => r.status());
  }

  get(name: string): VmStatus {
    return this.runner(name).status();
  }

  /** The live handle (null when not running): for callers that need the pid or QMP. */
  handle(name: string): ReturnType<VmRunner['current']> {
    return this.runner(name).current();
  }

  /** Chords to swallow while this VM's display is active: its backend's host keys + its blockedKeys. */
  hostKeys(name: string): string[] {
    const { vm } = this.runner(name);
    return [...(this.opts.backends[vm.backend]?.hostKeys ?? []), ...vm.blockedKeys];
  }

  /** Start and wait until it runs; throws when the launch fails. */
  async start(name: string): Promise<VmStatus> {
    const r = this.runner(name);
    // start wakes a hibernated VM
    if (r.status().frozen) r.freeze(false);
    r.dispatch({ type: 'start' });
    const st = await this.settle(name);
    if (st.state !== 'running') throw new BackendError(name, `did not start: ${st.lastError ?? st.state}`);
    return st;
  }

  /** Graceful (ACPI powerdown, then kill after the timeout) or forced stop; resolves when stopped. */
  async stop(name: string, opts: { force?: boolean } = {}): Promise<VmStatus> {
    // a hibernated VM is woken first (VmRunner.terminate): a frozen process takes no signal
    this.runner(name).dispatch({ type: 'stop', force: opts.force ?? false });
    return this.settle(name);
  }

  async restart(name: string): Promise<VmStatus> {
    this.runner(name).dispatch({ type: 'restart' });
    const st = await this.settle(name);
    if (st.state !== 'running') throw new BackendError(name, `did not restart: ${st.lastError ?? st.state}`);
    return st;
  }

  /** Live where the backend can (QEMU balloon up to the boot size); otherwise on next start. */
  async setMemory(name: string, memoryMiB: number): Promise<{ live: boolean; memoryMiB: number }> {
    return { live: await this.runner(name).setMemory(memoryMiB), memoryMiB };
  }

  /** Hibernate in memory: every process of the VM frozen (cgroup freezer); `start` thaws it. */
  hibernate(name: string): VmStatus {
    const r = this.runner(name);
    if (!r.freeze(true))
      throw new BackendError(
        name,
        `cannot hibernate: it is ${r.state}${this.opts.resources ? '' : ' (no cgroups on this host)'}`,
      );
    return r.status();
  }

  /** Limits of a running VM changed live (cgroup); false when it is not running. */
  setResources(name: string, r: Resources): boolean {
    return this.runner(name).setResources(r);
  }

  /** What the kernel enforces for the VM now (read back from its cgroup); null when none. */
  appliedResources(name: string): AppliedResources | null {
    this.runner(name);
    return this.opts.resources?.read(name) ?? null;
  }

  get cgroupMode(): string | null {
    return this.opts.resources?.mode ?? null;
  }

  /** Save a running QEMU VM to stateDir/saved (paused, streamed, disks stamped); it ends stopped. */
  async save(name: string): Promise<SavedMeta> {
    const meta = await this.runner(name).save();
    await this.settle(name);
    return meta;
  }

  /** Start a saved VM from its saved state; refused when its disks changed since the save. */
  async restore(name: string): Promise<{ status: VmStatus; job: JobView; saved: SavedMeta }> {
    const r = this.runner(name);
    const saved = r.savedState();
    if (!saved) throw new BackendError(name, 'has no saved state (vm.save first)');
    const disks = r.vm.qemu?.disk ? [r.vm.qemu.disk] : [];
    const why = stampMismatch(saved.disks, diskStamps(disks));
    if (why) throw new BackendError(name, `saved state does not match its disk: ${why}`);
    const { file } = savePaths(this.opts.config.stateDir, name);
    r.startIncoming({ kind: 'restore', uri: restoreUri(file), target: file });
    const st = await this.settle(name);
    if (st.state !== 'running') throw new BackendError(name, `did not start: ${st.lastError ?? st.state}`);
    const job = await r.incomingResult();
    // the guest runs on from the stream and writes its disk: the saved state is spent
    dropSaved(this.opts.config.stateDir, name);
    r.savedState();
    return { status: this.get(name), job, saved };
  }

  /** Send a running QEMU VM to a kvmux that receives on `to` (with the same `key`); here it ends stopped. */
  async migrate(name: string, to: string, key?: string): Promise<{ status: VmStatus; job: JobView }> {
    const job = await this.runner(name).migrate(to, key);
    return { status: await this.settle(name), job };
  }

  /**
   * Start this VM listening for a migration on `from` (tcp:HOST:PORT or unix:PATH); resolves once
   * listening. With `key`, only a sender holding the same key is taken; without, whoever connects.
   */
  async receive(name: string, from: string, key?: string): Promise<VmStatus> {
    const r = this.runner(name);
    if (key === undefined && from.startsWith('tcp:'))
      this.log.warn(
        { vm: name, from },
        'receiving a migration without a key: whoever reaches this port first can load a VM state here',
      );
    r.startIncoming({ kind: 'receive', uri: from, target: from, key });
    const st = await this.settle(name);
    if (st.state !== 'running') throw new BackendError(name, `did not start: ${st.lastError ?? st.state}`);
    await r.incomingListening();
    void r
      .incomingResult()
      .catch((err: unknown) => this.log.warn({ vm: name, err: errText(err) }, 'receive failed'));
    return st;
  }

  /** The end of a receive started with `receive` (throws when it failed). */
  incomingOf(name: string): Promise<JobView> {
    return this.runner(name).incomingResult();
  }

  /** Re-attach to VMs recorded in stateDir that still run; returns the adopted names. */
  async adoptAll(): Promise<string[]> {
    const adopted: string[] = [];
    for (const name of this.records.names()) {
      const r = this.runners.get(name);
      const record = r ? this.records.load(name) : null;
      if (!r) this.log.warn({ vm: name }, 'record of a VM that is no longer configured: left alone');
      if (!r || !record || r.busy || r.state !== 'stopped') continue;
      if (await r.adopt(record)) adopted.push(name);
    }
    return adopted;
  }

  /**
   * Adopt what still runs, then start every autostart VM in config order; `lead` (the VM on the
   * display shown first) first and alone, for at most `leadMs`, then `afterLead` (start the other
   * displays) and the rest one by one.
   */
  async autostart(
    opts: { lead?: string | null; leadMs?: number; afterLead?: () => void } = {},
  ): Promise<void> {
    await this.adoptAll();
    const candidates = [...this.runners.values()].map((r) => ({
      name: r.vm.name,
      autostart: r.vm.autostart,
      state: r.state,
    }));
    const plan = autostartPlan(candidates, opts.lead ?? null);
    const start = (name: string) =>
      this.start(name).then(
        () => {},
        (err: unknown) => this.log.error({ vm: name, err: errnoName(err) }, 'autostart failed'),
      );
    const lead = plan.lead ? start(plan.lead) : null;
    if (lead) await settledWithin(lead, opts.leadMs ?? LEAD_MS);
    opts.afterLead?.();
    for (const name of plan.rest) {
      // started meanwhile (vm.start) or gone (vm.delete): not ours to start
      if (this.runners.get(name)?.state !== 'stopped') continue;
      await start(name);
    }
    await lead;
  }

  /** Stop everything (graceful unless forced), or leave the VMs running for a later kvmux to adopt. */
  async shutdown(opts: { leaveRunning?: boolean; force?: boolean } = {}): Promise<void> {
    this.closed = true;
    const all = [...this.runners.values()];
    for (const r of all) r.clearTimer();
    if (opts.leaveRunning) {
      for (const r of all) r.detach();
      return;
    }
    const live = all.filter((r) => r.busy);
    await Promise.all(live.map((r) => this.stop(r.vm.name, { force: opts.force ?? false })));
    // a VM's cgroup goes once its tasks are gone (retried while the kernel still counts them):
    // the process must not exit before, or the folders stay behind
    await Promise.all(all.map((r) => r.released()));
  }

  private runner(name: string): VmRunner {
    const r = this.runners.get(name);
    if (!r) throw new BackendError(name, 'no such VM');
    return r;
  }

  private backend(vm: VmConfig): Backend {
    const b = this.opts.backends[vm.backend];
    if (!b) throw new BackendError(vm.name, `backend "${vm.backend}" is not available`);
    return b;
  }

  private async context(
    vm: VmConfig,
    memoryMiB: number | null,
    adoptOn?: string,
    incoming?: boolean,
  ): Promise<LaunchContext> {
    const vmDir = vmDirOf(this.opts.config.runDir, vm.name);
    mkdirSync(vmDir, { recursive: true, mode: 0o700 });
    const d = adoptOn ? { display: adoptOn, width: 0, height: 0 } : await this.opts.displayFor(vm);
    // Adoption reuses what exists: the taps are there already, so none are created.
    const taps = adoptOn ? [] : ((await this.opts.tapsFor?.(vm)) ?? []);
    const configured = vm.qemu?.memoryMiB ?? vm.virtualbox?.memoryMiB ?? null;
    const changed = memoryMiB !== null && memoryMiB !== configured;
    const cgroupProcs = adoptOn ? undefined : this.cgroupFor(vm);
    return {
      ...(cgroupProcs ? { cgroupProcs } : {}),
      ...(incoming ? { incoming } : {}),
      display: d.display,
      width: d.width,
      height: d.height,
      onGuestReset: () => this.emit('reset', vm.name),
      vmDir,
      taps,
      ...(changed ? { memoryMiB } : {}),
    };
  }

  /** The VM's cgroup, made with its limits before launch; a host without cgroups runs it unlimited. */
  private cgroupFor(vm: VmConfig): string[] | undefined {
    try {
      return this.opts.resources?.prepare(vm.name, vm.resources ?? {});
    } catch (err) {
      this.log.warn({ vm: vm.name, err: errText(err) }, 'cgroup not prepared: the VM runs without limits');
      return undefined;
    }
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
}
