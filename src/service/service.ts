import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ControlPlane, startControlPlane } from '../control/plane.js';
import { pipelineOptions, sourcesOptions } from '../input/from-config.js';
import { InputPipeline } from '../input/pipeline.js';
import { InputSources } from '../input/sources.js';
import type { MenuItem } from '../menu/model.js';
import { TrustLeds } from '../menu/trust-leds.js';
import { NetworkManager } from '../net/manager.js';
import { netMethods } from '../net/methods.js';
import { createCommandBackend } from '../session/backends/command.js';
import { createQemuBackend } from '../session/backends/qemu.js';
import { createVirtualboxBackend } from '../session/backends/virtualbox.js';
import type { Config, VmConfig } from '../session/config-schema.js';
import { allVms } from '../session/images.js';
import { Supervisor, type VmStatus } from '../session/supervisor.js';
import { writeFileAtomicLater } from '../util/atomic-file.js';
import { DisplayError, NotFoundError } from '../util/errors.js';
import { type Logger, type LogRing, silentLogger } from '../util/log.js';
import { packageVersion } from '../util/version.js';
import { screenshot } from '../x/screenshot.js';
import { switchVt } from '../x/vt.js';
import { CpuSampler } from './cpu-sampler.js';
import { DisplayRuntime, type LiveDisplay } from './display-runtime.js';
import {
  type DisplayEntry,
  type DisplayTable,
  emptyTable,
  listDisplays,
  nameAtIndex,
  planSwitch,
  setEntries,
} from './displays.js';
import { MenuController, type MenuView } from './menu-controller.js';
import { type ServiceApi, serviceMethods } from './methods.js';
import { type OriginalVt, rememberOriginalVt } from './original-vt.js';

export interface ServiceOptions {
  readonly config: Config;
  readonly log?: Logger;
  readonly ring?: LogRing;
  /** Draws the switcher and ask dialogs (the X overlay renderer in production). */
  readonly menuView: (service: Service) => MenuView;
}

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
const ADMIN = 'admin';

/**
 * `kvmux run`: displays, VMs, input, menu and the control plane, wired so data flows one way:
 * input → hotkey/guard/router → the active display; control → supervisor/displays.
 */
export class Service implements ServiceApi {
  readonly log: Logger;
  readonly screenshotDir: string;
  readonly config: Config;
  private vmConfigs: VmConfig[] = [];
  private table: DisplayTable = emptyTable();
  private readonly runtimes = new Map<string, DisplayRuntime>();
  private supervisor!: Supervisor;
  private adminApp: Supervisor | null = null;
  private pipeline!: InputPipeline;
  private sources: InputSources | null = null;
  private plane: ControlPlane | null = null;
  private net: NetworkManager | null = null;
  private menu!: MenuController;
  private menuView!: MenuView;
  private vtGuard: OriginalVt | null = null;
  private readonly startedAt = Date.now();
  private readonly cpu = new CpuSampler();
  private stopping = false;
  /** Start-up done: displays up, VMs adopted or autostarted. */
  private ready = false;

  constructor(private readonly opts: ServiceOptions) {
    this.config = opts.config;
    this.log = opts.log ?? silentLogger;
    this.screenshotDir = join(this.config.stateDir, 'screenshots');
  }

  async start(): Promise<void> {
    const { config: cfg, log } = this;
    for (const dir of [cfg.runDir, cfg.stateDir, join(cfg.runDir, 'vm')])
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    const found = allVms(cfg);
    for (const p of found.problems) log.warn({ problem: p }, 'image discovery');
    this.vmConfigs = found.vms;
    if (cfg.console === 'vt') this.vtGuard = rememberOriginalVt(cfg.stateDir);

    this.table = setEntries(emptyTable(), this.entries());
    for (const e of this.table.entries) this.runtimes.set(e.name, this.newRuntime(e.name));
    this.startInput();
    if (cfg.networks.length > 0) this.net = new NetworkManager({ log: this.log });
    this.supervisor = this.newSupervisor();
    this.supervisor.on('state', () => this.menu.refresh());
    this.plane = await startControlPlane(
      { ...cfg, vms: this.vmConfigs },
      {
        log,
        confirm: (vm, method, params) => this.menu.confirm(vm, method, params),
        onImageAdded: (path) => this.onImageAdded(path),
        imageInUse: (path) => this.imageInUse(path),
        methods: [
          ...serviceMethods(this),
          ...netMethods({ list: () => this.net?.list() ?? Promise.resolve([]) }),
        ],
      },
    );
    await this.startNetworks();
    // X servers come up in parallel; the first VM is shown as soon as its display is ready.
    // after a crash, show what was shown before; otherwise the first VM
    const resumed = this.resumeActive();
    const first = this.table.entries.find((e) => e.name === resumed) ?? this.table.entries[0];
    // started in menu order, so VTs are handed out in that order too (allocation is synchronous)
    let firstUp: Promise<unknown> | null = null;
    for (const [name, rt] of this.runtimes) {
      if (name === first?.name) firstUp = rt.start();
      else rt.startOrRetry();
    }
    if (first && firstUp) {
      // a first display that cannot start is a broken setup: say so and exit, rather than wait
      await firstUp;
      void this.switchTo(first.name).catch(() => {});
    }
    await this.supervisor.autostart();
    if (this.adminApp) await this.adminApp.autostart();
    this.ready = true;
    log.info(
      { displays: this.table.entries.map((e) => e.name), socket: this.plane.socketPath },
      'kvmux running',
    );
  }

  private get activeFile(): string {
    return join(this.config.stateDir, 'active-display');
  }

  private resumeActive(): string | null {
    try {
      return readFileSync(this.activeFile, 'utf8').trim() || null;
    } catch {
      return null;
    }
  }

  private entries(): DisplayEntry[] {
    const vms = this.vmConfigs.map(
      (vm): DisplayEntry => ({ name: vm.name, kind: 'vm', display: '', vt: null }),
    );
    return this.config.admin.enabled ? [...vms, { name: ADMIN, kind: 'admin', display: '', vt: null }] : vms;
  }

  private newRuntime(name: string): DisplayRuntime {
    return new DisplayRuntime({
      name,
      config: this.config,
      log: this.log,
      onChange: (n, live) => this.onDisplayChange(n, live),
    });
  }

  private onDisplayChange(name: string, live: LiveDisplay | null): void {
    const entries = this.table.entries.map((e) =>
      e.name === name ? { ...e, display: live?.server.display ?? '', vt: live?.server.vt ?? null } : e,
    );
    this.table = setEntries(this.table, entries);
    if (live) this.menuView.warm?.(name);
    this.menu.refresh();
  }

  private startInput(): void {
    const { config: cfg, log } = this;
    this.pipeline = new InputPipeline(pipelineOptions(cfg.input), {
      sinkFor: (name) => this.runtimes.get(name)?.current?.sink,
      leds: { setLeds: (mask) => this.sources?.setLeds(mask) },
      onMenuOpen: () => this.menu.open(),
      onDirectSwitch: (index) => {
        this.menu.dismiss(); // opened at the second tap; closed even when no display has that number
        const name = nameAtIndex(this.table, index);
        if (name)
          void this.switchTo(name).catch((err: unknown) =>
            log.warn({ err: String(err) }, 'direct switch failed'),
          );
        else log.info({ index }, 'direct switch: no display with that number');
      },
      onMenuInput: (ev) => this.menu.input(ev),
      onMenuPointer: (p) => this.menu.pointerMoved(p),
    });
    this.menuView = this.opts.menuView(this);
    this.menu = new MenuController({
      view: this.menuView,
      leds: new TrustLeds({ setLeds: (mask) => this.sources?.setLeds(mask) }),
      items: () => this.menuItems(),
      active: () => this.table.active,
      ledMask: (d) => this.pipeline.ledMask(d),
      choose: (name) =>
        void this.switchTo(name).catch((err: unknown) => log.warn({ err: String(err) }, 'switch failed')),
      setInputCaptured: (captured) => this.pipeline.setMenuOpen(captured), // the one writer of "menu open"
      now: () => performance.now(),
      showDelayMs: cfg.menu.showDelayMs,
    });
    this.sources = new InputSources({ ...sourcesOptions(cfg.input), log }, this.pipeline);
    this.sources.start();
  }

  private async startNetworks(): Promise<void> {
    if (!this.net) return;
    await this.net.reconcile({ ...this.config, vms: this.vmConfigs });
    await this.net.ensureNetworks(this.config.networks);
  }

  private newSupervisor(): Supervisor {
    const log = this.log;
    const sup = new Supervisor({
      config: { ...this.config, vms: this.vmConfigs },
      backends: {
        qemu: createQemuBackend({ log }),
        command: createCommandBackend(),
        virtualbox: createVirtualboxBackend({ log }),
      },
      displayFor: (vm) => this.displayInfo(vm.name),
      stopTimeoutMs: this.config.vmStopTimeoutSeconds * 1000,
      tapsFor: (vm) => (this.net && vm.nics.length > 0 ? this.net.attachVm(vm) : []),
      log,
    });
    sup.on('state', (st) => {
      if (st.state === 'stopped' && this.net) void this.net.detachVm(st.name).catch(() => {});
      if (st.state === 'running') this.plane?.resetVm(st.name);
    });
    for (const vm of this.vmConfigs) this.pipeline.setExtraBlocked(vm.name, sup.hostKeys(vm.name));
    if (this.config.admin.enabled) this.adminApp = this.newAdminApp();
    return sup;
  }

  /** The admin screen is xterm running `kvmux admin` on its own display, supervised like a VM. */
  private newAdminApp(): Supervisor {
    const adminVm: VmConfig = {
      name: ADMIN,
      backend: 'command',
      command: [
        ...['xterm', '-fn', '10x20', '-bg', '#101820', '-fg', '#e0e0e0', '-T', 'kvmux admin', '-e'],
        ...[process.execPath, CLI, 'admin', '--socket', join(this.config.runDir, 'control.sock')],
        ...['--idle-lock', String(this.config.admin.idleLockSeconds)],
      ],
      nics: [],
      guestChannel: false,
      autostart: true,
      blockedKeys: [],
    };
    return new Supervisor({
      config: {
        runDir: this.config.runDir,
        stateDir: join(this.config.stateDir, 'admin-app'),
        vms: [adminVm],
      },
      backends: { command: createCommandBackend() },
      displayFor: () => this.displayInfo(ADMIN),
      log: this.log,
    });
  }

  private async displayInfo(name: string) {
    const rt = this.runtimes.get(name);
    if (!rt) throw new NotFoundError('display', name);
    const live = await rt.ready();
    return { display: live.server.display, width: live.wm.conn.width, height: live.wm.conn.height };
  }

  private menuItems(): MenuItem[] {
    const vms = new Map(this.supervisor?.list().map((v) => [v.name, v.state]) ?? []);
    return this.table.entries.map((e) => ({
      name: e.name,
      kind: e.kind,
      state: e.kind === 'admin' ? (e.display ? 'running' : 'starting') : (vms.get(e.name) ?? 'unknown'),
    }));
  }

  /** An upload must never replace the disk of a VM that is not stopped. */
  private imageInUse(path: string): boolean {
    const target = resolve(path);
    return this.vmConfigs.some(
      (vm) =>
        vm.qemu?.disk !== undefined &&
        resolve(vm.qemu.disk) === target &&
        this.supervisor.get(vm.name).state !== 'stopped',
    );
  }

  private async onImageAdded(path: string): Promise<void> {
    const found = allVms({ ...this.config, vms: this.vmConfigs });
    for (const vm of found.vms) {
      if (this.supervisor.has(vm.name)) continue;
      this.log.info({ vm: vm.name, path }, 'new image discovered');
      this.vmConfigs.push(vm);
      this.supervisor.addVm(vm);
      this.pipeline.setExtraBlocked(vm.name, this.supervisor.hostKeys(vm.name));
      this.table = setEntries(this.table, [
        ...this.table.entries,
        { name: vm.name, kind: 'vm', display: '', vt: null },
      ]);
      const rt = this.newRuntime(vm.name);
      this.runtimes.set(vm.name, rt);
      await rt.start();
      if (vm.autostart) await this.supervisor.start(vm.name);
    }
  }

  // ---- ServiceApi -------------------------------------------------------------------------

  async switchTo(name: string): Promise<{ name: string; vt: number | null; ms: number }> {
    const t0 = performance.now();
    const plan = planSwitch(this.table, name);
    if (!plan.ok)
      throw plan.reason === 'unknown'
        ? new NotFoundError('display', name)
        : new DisplayError(name, 'is not up yet');
    this.table = plan.table;
    // input follows at once; the VT switch below only changes what the monitor shows
    this.pipeline.setActive(name);
    if (plan.changed)
      writeFileAtomicLater(this.activeFile, `${name}\n`, (e) =>
        this.log.warn({ err: String(e) }, 'remembering the display failed'),
      );
    this.menu.dismiss();
    if (plan.vt !== null && this.config.console === 'vt') await switchVt(plan.vt);
    const ms = Number((performance.now() - t0).toFixed(2));
    this.log.info({ display: name, vt: plan.vt, ms }, 'switched');
    return { name, vt: plan.vt, ms };
  }

  status(): Record<string, unknown> {
    const vms = this.supervisor?.list() ?? [];
    const count = (s: VmStatus['state']) => vms.filter((v) => v.state === s).length;
    return {
      version: packageVersion(),
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      console: this.config.console,
      ready: this.ready,
      active: this.table.active,
      displays: this.table.entries.length,
      displaysReady: this.table.entries.filter((e) => e.display).length,
      vms: {
        total: vms.length,
        running: count('running'),
        stopped: count('stopped'),
        crashed: count('crashed'),
      },
      menuOpen: this.menu.isOpen,
      rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    };
  }

  displays() {
    return listDisplays(this.table);
  }

  async screenshot(name: string, path: string) {
    const live = this.runtimes.get(name)?.current;
    if (!live) throw new DisplayError(name, 'is not up');
    mkdirSync(dirname(path), { recursive: true });
    const img = await screenshot(live.server.display, path);
    return { path, width: img.width, height: img.height };
  }

  menuState() {
    return this.menu.view();
  }

  /** `vm.list`, with the extensions `cpus` and `cpuPercent` (since the previous call) for the admin screen. */
  vms(): Array<VmStatus & { cpus: number | null; cpuPercent: number | null }> {
    const rows = this.supervisor.list();
    this.cpu.retain(rows.flatMap((r) => (r.pid === null ? [] : [r.pid])));
    const cpusOf = (name: string) => this.vmConfigs.find((v) => v.name === name)?.qemu?.cpus ?? null;
    return rows.map((r) => ({ ...r, cpus: cpusOf(r.name), cpuPercent: this.cpu.percent(r.pid) }));
  }

  hasVm(name: string): boolean {
    return this.supervisor.has(name);
  }

  startVm(name: string) {
    return this.supervisor.start(name);
  }

  stopVm(name: string, force: boolean) {
    return this.supervisor.stop(name, { force });
  }

  restartVm(name: string) {
    return this.supervisor.restart(name);
  }

  setMemory(name: string, memoryMiB: number) {
    return this.supervisor.setMemory(name, memoryMiB);
  }

  logTail(lines: number): unknown[] {
    return this.opts.ring?.tail(lines) ?? [];
  }

  /** Current overlay target, for the menu view. */
  liveDisplay(name: string): LiveDisplay | null {
    return this.runtimes.get(name)?.current ?? null;
  }

  /**
   * SIGTERM: stop VMs (graceful), X servers, input (grabs released), control; restore the VT.
   * `leaveRunning` keeps VMs and their X servers for a later kvmux to adopt.
   */
  async stop(opts: { leaveRunning?: boolean } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const leaveRunning = opts.leaveRunning ?? false;
    this.log.info({ leaveRunning }, 'stopping');
    this.sources?.close();
    this.pipeline?.close();
    await this.plane?.close().catch(() => {});
    await this.adminApp?.shutdown({ leaveRunning });
    await this.supervisor?.shutdown({ leaveRunning });
    await Promise.all([...this.runtimes.values()].map((rt) => rt.stop({ leaveRunning })));
    await this.vtGuard
      ?.restore()
      .catch((err: unknown) => this.log.warn({ err: String(err) }, 'VT restore failed'));
    if (!leaveRunning) {
      this.vtGuard?.forget();
      rmSync(this.activeFile, { force: true });
    }
    this.log.info('stopped');
  }
}
