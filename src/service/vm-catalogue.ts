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
import type { Config, Resources, VmConfig } from '../config/schema.js';
import type { NetworkManager } from '../net/manager.js';
import { prefetchInspections } from '../session/image-inspect.js';
import { allVms, IMAGE_PATTERN, imageFilesIn } from '../session/images.js';
import type { Supervisor } from '../session/supervisor.js';
import { vboxMachineName, withVboxSettings } from '../session/vbox-settings.js';
import { ConfigError, ConflictError, errnoName, errText, RpcCode, RpcError } from '../util/errors.js';
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

const RESCAN_QUIET_MS = 300;
const RESCAN_MAX_WAIT_MS = 2000;

/**
 * Which folder events can change the VMs: an image or sidecar name coming or going (`rename`), or a
 * sidecar edited in place. Writes into an image (a running guest's own disk) cannot, and are ignored.
 */
export function affectsImages(event: string, file: string | null): boolean {
  if (file === null) return true;
  if (/\.yaml$/i.test(file)) return true;
  return event === 'rename' && IMAGE_PATTERN.test(file);
}

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
  private firstEventAt: number | undefined;
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
        const w = watch(dir, { persistent: false }, (event, file) => {
          if (affectsImages(event, file)) this.scheduleRescan();
        });
        w.on('error', (err) => this.opts.log.warn({ dir, err: errnoName(err) }, 'image folder watch failed'));
        this.watchers.push(w);
      } catch (err) {
        this.opts.log.warn({ dir, err: errnoName(err) }, 'cannot watch image folder');
      }
    }
  }

  /**
   * Coalesce a burst of events into one rescan, RESCAN_QUIET_MS after the last; but never later than
   * RESCAN_MAX_WAIT_MS after the first, so a folder that never goes quiet is still rescanned.
   */
  private scheduleRescan(): void {
    if (this.closed) return;
    const now = Date.now();
    this.firstEventAt ??= now;
    const delay = Math.max(0, Math.min(RESCAN_QUIET_MS, this.firstEventAt + RESCAN_MAX_WAIT_MS - now));
    clearTimeout(this.rescanTimer);
    this.rescanTimer = setTimeout(() => {
      this.firstEventAt = undefined;
      this.opts.log.debug('image folder changed: rescanning');
      void this.rescan().catch((err: unknown) =>
        this.opts.log.warn({ err: errText(err) }, 'image folder rescan failed'),
      );
    }, delay);
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
        else if (field === 'resources')
          (running && this.opts.supervisor.setResources(name, next.resources ?? {}) ? live : nextStart).push(
            field,
          );
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

  /** vm.setResources: the limits are kept in kvmux's layer and applied live to a running VM. */
  async setResources(name: string, resources: Resources): Promise<{ live: boolean; resources: Resources }> {
    const r = await this.update(name, { resources });
    return { live: r.live.includes('resources'), resources: r.vm.resources ?? {} };
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

  isConfigured(name: string): boolean {
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
   * Validate `overlay` (throws -32602 with the problems, nothing written) and plan the change: a
   * VM that would have to leave while it runs refuses a written change (-32009, nothing written)
   * and stays through a rescan. Then write it when asked and make the running set match.
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
    const leaving = this.plan(before, next.vms, write);
    const { supervisor } = this.opts;
    // out of the supervisor before the write: no vm.start can slip in between the check and the write
    for (const vm of leaving) supervisor.removeVm(vm.name);
    if (write) {
      try {
        await saveOverlay(this.opts.base.stateDir, overlay);
      } catch (err) {
        for (const vm of leaving) supervisor.addVm(vm);
        throw err;
      }
    }
    this.overlay = overlay;
    for (const vm of leaving) await this.detach(vm.name);
    for (const vm of next.vms) {
      const old = before.get(vm.name);
      if (!old) this.attach(vm);
      else if (!same(old, vm)) this.reconfigure(old, vm);
    }
    this.vmList = next.vms;
    for (const p of next.problems) this.opts.log.warn({ problem: p }, 'image discovery');
  }

  /** The VMs that leave; one that cannot (it runs) refuses a written change, or stays (`next` keeps it). */
  private plan(before: Map<string, VmConfig>, next: VmConfig[], write: boolean): VmConfig[] {
    const { supervisor } = this.opts;
    const after = new Set(next.map((v) => v.name));
    const leaving = [...before.values()].filter((v) => !after.has(v.name));
    const busy = leaving.filter((v) => !supervisor.removable(v.name));
    if (write && busy.length > 0) {
      const what = busy.map((v) => `VM "${v.name}" is ${supervisor.get(v.name).state}`).join(', ');
      throw new ConflictError(`${what}: this change would remove it; stop it first (nothing was changed)`);
    }
    // a found image vanished under a running VM: keep it until it stops
    next.push(...busy);
    return leaving.filter((v) => !busy.includes(v));
  }

  /** The one way a VM joins: supervisor, blocked keys, display; then `added` (guest channel). */
  private attach(vm: VmConfig): void {
    const { supervisor, switcher, input, log } = this.opts;
    supervisor.addVm(vm);
    input.setBlocked(vm.name, supervisor.hostKeys(vm.name));
    const display = switcher.add(vm.name, 'vm');
    // a found image's X server starts with its VM: a folder of images must not mean as many servers
    if (!this.isConfigured(vm.name)) display.onDemand();
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

  /** The rest of leaving, once the supervisor has let it go (reconcile). */
  private async detach(name: string): Promise<void> {
    const { switcher, input, net, log } = this.opts;
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
