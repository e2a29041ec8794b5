import { EventEmitter } from 'node:events';
import { type FSWatcher, realpathSync, watch } from 'node:fs';
import { resolve } from 'node:path';
import { checkSemantics } from '../config/config.js';
import {
  layerConfig,
  type Overlay,
  overlayPath,
  patchVm,
  saveOverlay,
  type VmCreate,
  type VmPatch,
  vmFromCreate,
  withoutVm,
  withVm,
} from '../config/overlay.js';
import type { Config, VmConfig } from '../config/schema.js';
import type { NetworkManager } from '../net/manager.js';
import { prefetchInspections } from '../session/image-inspect.js';
import { allVms, imageFilesIn } from '../session/images.js';
import type { Supervisor } from '../session/supervisor.js';
import { vboxMachineName, withVboxSettings } from '../session/vbox-settings.js';
import { ConfigError, errnoName, RpcCode, RpcError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { ConsoleInput } from './console-input.js';
import type { Switcher } from './switcher.js';

export interface VmCatalogueOptions {
  /** The read-only --config file's config, and kvmux's own layer from stateDir. */
  readonly base: Config;
  readonly overlay: Overlay;
  readonly log: Logger;
  readonly supervisor: Supervisor;
  readonly switcher: Switcher;
  readonly input: ConsoleInput;
  readonly net: NetworkManager | null;
}

/** What a change did: applied now, or waiting for the VM's next start. */
export interface ChangeResult {
  readonly vm: VmConfig;
  readonly live: string[];
  readonly nextStart: string[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The VM catalogue: which VMs exist (the config, kvmux's own layer, found images) and the one way
 * a VM joins or leaves the running service. Every change is validated first (schema, semantics,
 * chords, sidecars) and written, then attached: supervisor, blocked keys, display, and (through
 * the `added`/`removed` events) the guest channel; so a bad entry never leaves a half-added VM.
 */
export class VmCatalogue extends EventEmitter<{
  added: [VmConfig];
  removed: [name: string];
  /** guestChannel switched on or off for a VM that stays. */
  channel: [name: string, on: boolean];
}> {
  private overlay: Overlay;
  private vmList: VmConfig[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private watchers: FSWatcher[] = [];
  private rescanTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** After start-up a joining VM's display is started at once (before, startAll does it). */
  private live = false;

  constructor(private readonly opts: VmCatalogueOptions) {
    super();
    this.overlay = opts.overlay;
  }

  get vms(): readonly VmConfig[] {
    return this.vmList;
  }

  get config(): Config {
    return { ...this.opts.base, vms: this.vmList };
  }

  find(name: string): VmConfig | undefined {
    return this.vmList.find((v) => v.name === name);
  }

  /** At start: every VM joins (stopped); autostart is the supervisor's. */
  attachInitial(): void {
    const { vms, problems } = this.resolveAll(this.overlay);
    for (const p of problems) this.opts.log.warn({ problem: p }, 'image discovery');
    for (const vm of vms) this.attach(vm);
    this.vmList = vms;
    this.live = true;
  }

  /** Watch the image folders (inotify): a disk copied in becomes a VM, a removed one goes. */
  watchImages(): void {
    for (const dir of this.opts.base.imageDirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.scheduleRescan());
        w.on('error', (err) => this.opts.log.warn({ dir, err: errnoName(err) }, 'image folder watch failed'));
        this.watchers.push(w);
      } catch (err) {
        this.opts.log.warn({ dir, err: errnoName(err) }, 'cannot watch image folder');
      }
    }
  }

  /** Coalesce a burst of inotify events (a copy writes many times) into one rescan. */
  private scheduleRescan(): void {
    if (this.closed) return;
    clearTimeout(this.rescanTimer);
    this.rescanTimer = setTimeout(() => void this.rescan().catch(() => {}), 300);
    this.rescanTimer.unref();
  }

  /** Found images that appeared or went away since the last look. */
  rescan(): Promise<void> {
    return this.serial(async () => {
      await this.reconcile(this.overlay, false);
    });
  }

  /** An image upload must never replace the disk of a VM that is not stopped (real paths: image folders may be symlinks). */
  imageInUse(path: string): boolean {
    return this.imageUsers(path).some((u) => u.state !== 'stopped');
  }

  /** The VMs whose disk (or .vbox) is `path`, compared by real path, with their state. */
  imageUsers(path: string): Array<{ name: string; state: string; configured: boolean }> {
    const target = realOrResolved(path);
    return this.vmList
      .filter((vm) => diskOf(vm) !== undefined && realOrResolved(diskOf(vm) ?? '') === target)
      .map((vm) => ({
        name: vm.name,
        state: this.opts.supervisor.has(vm.name) ? this.opts.supervisor.get(vm.name).state : 'stopped',
        configured: this.isConfigured(vm.name),
      }));
  }

  create(req: VmCreate): Promise<ChangeResult> {
    return this.serial(async () => {
      if (this.find(req.name))
        throw new RpcError(RpcCode.conflict, `a VM named "${req.name}" exists already`);
      const owner = this.vmList.find((v) => diskOf(v) !== undefined && resolve(diskOf(v) ?? '') === req.disk);
      // a found image becomes the new VM; a disk another configured VM uses is refused
      if (owner && this.isConfigured(owner.name))
        throw new RpcError(RpcCode.conflict, `disk ${req.disk} is used by VM "${owner.name}"`);
      const made = vmFromCreate(req);
      const settings = made.virtualbox?.settingsFile;
      // a .vbox file: VirtualBox knows the machine by the name inside it
      const machine = settings ? vboxMachineName(settings) : null;
      const vm =
        machine && made.virtualbox ? { ...made, virtualbox: { ...made.virtualbox, vmName: machine } } : made;
      await this.reconcile(withVm(this.overlay, vm), true);
      return { vm: this.find(vm.name) ?? vm, live: ['created'], nextStart: [] };
    });
  }

  update(name: string, patch: VmPatch): Promise<ChangeResult> {
    return this.serial(async () => {
      const old = this.need(name);
      const next = patchVm(old, patch);
      const running = this.opts.supervisor.get(name).state !== 'stopped';
      await this.reconcile(withVm(this.overlay, next), true);
      const live: string[] = [];
      const nextStart: string[] = [];
      for (const [field, value] of Object.entries(patch)) {
        if (value === undefined) continue;
        if (field === 'autostart' || field === 'blockedKeys') live.push(field);
        else if (field === 'memoryMiB' && running) {
          const r = await this.opts.supervisor
            .setMemory(name, value as number)
            .catch(() => ({ live: false }));
          (r.live ? live : nextStart).push(field);
        } else nextStart.push(field);
      }
      return { vm: next, live, nextStart };
    });
  }

  /** vm.setMemory: live where the backend can, and kept for the next start either way. */
  async setMemory(name: string, memoryMiB: number): Promise<{ live: boolean; memoryMiB: number }> {
    const r = await this.update(name, { memoryMiB });
    return {
      live: r.live.includes('memoryMiB') && this.opts.supervisor.get(name).state !== 'stopped',
      memoryMiB,
    };
  }

  delete(name: string): Promise<{ name: string; disk: string | null }> {
    return this.serial(async () => {
      const vm = this.need(name);
      const st = this.opts.supervisor.get(name).state;
      if (st !== 'stopped' && st !== 'crashed')
        throw new RpcError(RpcCode.conflict, `VM "${name}" is ${st}: stop it before deleting it`);
      const hide =
        this.opts.base.vms.some((v) => v.name === name) || !this.overlay.vms.some((v) => v.name === name);
      await this.reconcile(withoutVm(this.overlay, name, hide), true);
      return { name, disk: diskOf(vm) ?? null };
    });
  }

  /** config.get: the read-only file, kvmux's layer, the effective VMs and the found images among them. */
  describe(): {
    file: Config;
    overlay: Overlay;
    overlayPath: string;
    vms: VmConfig[];
    found: Array<{ name: string; disk: string }>;
  } {
    const found = this.vmList.flatMap((v) => {
      const disk = diskOf(v);
      return this.isConfigured(v.name) || disk === undefined ? [] : [{ name: v.name, disk }];
    });
    return {
      file: this.opts.base,
      overlay: this.overlay,
      overlayPath: overlayPath(this.opts.base.stateDir),
      vms: [...this.vmList],
      found,
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.rescanTimer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  private isConfigured(name: string): boolean {
    return this.opts.base.vms.some((v) => v.name === name) || this.overlay.vms.some((v) => v.name === name);
  }

  private need(name: string): VmConfig {
    const vm = this.find(name);
    if (!vm) throw new RpcError(RpcCode.notFound, `no VM named "${name}"`);
    return vm;
  }

  /** One change at a time: RPC calls and folder rescans never interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Configured VMs (checked) plus found images that pass the same checks; bad ones are reported, not added. */
  private resolveAll(overlay: Overlay): { vms: VmConfig[]; problems: string[] } {
    const base = this.opts.base;
    const cfg = layerConfig(base, overlay, overlayPath(base.stateDir));
    const found = allVms(cfg);
    const hidden = new Set(overlay.removed);
    const problems = [...found.problems];
    const vms = [...cfg.vms];
    for (const image of found.vms.slice(cfg.vms.length)) {
      const vm = withVboxSettings(image, base.imageDirs);
      if (hidden.has(vm.name)) continue;
      const bad = checkSemantics({ ...cfg, vms: [...vms, vm] }).filter((p) => p.path[1] === vms.length);
      if (bad.length > 0)
        problems.push(
          ...bad.map((p) => `${diskOf(vm) ?? vm.name}: ${p.path.slice(2).join('.')}: ${p.message}`),
        );
      else vms.push(vm);
    }
    return { vms, problems };
  }

  /**
   * Validate `overlay` (throws -32602 with the problems, nothing written), write it when asked,
   * then make the running set match: removed VMs leave, new ones join, changed ones are updated.
   */
  private async reconcile(overlay: Overlay, write: boolean): Promise<void> {
    const { imageDirs, imageDefaults } = this.opts.base;
    await prefetchInspections(imageFilesIn(imageDirs), {
      allowBackingFiles: imageDefaults.allowBackingFiles,
    });
    let next: { vms: VmConfig[]; problems: string[] };
    try {
      next = this.resolveAll(overlay);
    } catch (err) {
      if (err instanceof ConfigError) throw new RpcError(RpcCode.invalidParams, err.message);
      throw err;
    }
    const before = new Map(this.vmList.map((v) => [v.name, v]));
    const after = new Map(next.vms.map((v) => [v.name, v]));
    for (const [name] of before) {
      if (after.has(name)) continue;
      const st = this.opts.supervisor.get(name).state;
      if (!write && st !== 'stopped' && st !== 'crashed') {
        // a found image vanished under a running VM: keep it until it stops
        next.vms.push(before.get(name) as VmConfig);
        after.set(name, before.get(name) as VmConfig);
      }
    }
    if (write) await saveOverlay(this.opts.base.stateDir, overlay);
    this.overlay = overlay;
    for (const [name] of before) if (!after.has(name)) await this.detach(name);
    for (const vm of next.vms) {
      const old = before.get(vm.name);
      if (!old) this.attach(vm);
      else if (!same(old, vm)) this.reconfigure(old, vm);
    }
    this.vmList = next.vms;
    for (const p of next.problems) this.opts.log.warn({ problem: p }, 'image discovery');
  }

  /** The one way a VM joins: supervisor, blocked keys, display; then `added` (guest channel). */
  private attach(vm: VmConfig): void {
    const { supervisor, switcher, input, log } = this.opts;
    supervisor.addVm(vm);
    input.setBlocked(vm.name, supervisor.hostKeys(vm.name));
    switcher.add(vm.name, 'vm');
    this.emit('added', vm);
    log.info({ vm: vm.name, backend: vm.backend }, 'VM added');
    if (!this.live) return; // at start-up, startAll and autostart do the rest
    switcher.startLater(vm.name);
    if (vm.autostart)
      void supervisor
        .start(vm.name)
        .catch((err: unknown) => log.error({ vm: vm.name, err: errnoName(err) }, 'autostart failed'));
  }

  private reconfigure(old: VmConfig, vm: VmConfig): void {
    const { supervisor, input } = this.opts;
    supervisor.updateVm(vm);
    input.setBlocked(vm.name, supervisor.hostKeys(vm.name));
    if (old.guestChannel !== vm.guestChannel) this.emit('channel', vm.name, vm.guestChannel);
    this.opts.log.info({ vm: vm.name }, 'VM changed');
  }

  private async detach(name: string): Promise<void> {
    const { supervisor, switcher, input, net, log } = this.opts;
    supervisor.removeVm(name);
    input.setBlocked(name, []);
    this.emit('removed', name);
    await net?.detachVm(name).catch(() => {});
    await switcher.remove(name);
    log.info({ vm: name }, 'VM removed');
  }
}

function realOrResolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

export function diskOf(vm: VmConfig): string | undefined {
  return vm.qemu?.disk ?? vm.virtualbox?.disk ?? vm.virtualbox?.settingsFile;
}
