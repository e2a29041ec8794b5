import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { emptyOverlay, type Overlay } from '../config/overlay.js';
import type { Config } from '../config/schema.js';
import { passwdPath } from '../control/auth/auth.js';
import { passwdMethods } from '../control/auth/passwd-methods.js';
import { type ControlPlane, startControlPlane } from '../control/plane.js';
import { manageTransferMemory } from '../control/transfer/attachments.js';
import type { MenuItem } from '../menu/model.js';
import { NetworkManager } from '../net/manager.js';
import { netMethods } from '../net/methods.js';
import { CgroupResources, detectCgroups, instanceGroup } from '../resources/cgroup.js';
import { createCommandBackend } from '../session/backends/command.js';
import { createQemuBackend } from '../session/backends/qemu.js';
import { createSubhostBackend } from '../session/backends/subhost.js';
import { createVirtualboxBackend } from '../session/backends/virtualbox.js';
import { Supervisor } from '../session/supervisor.js';
import { inputCpu } from '../util/affinity.js';
import { type Logger, type LogRing, silentLogger } from '../util/log.js';
import { joinInputCpu, SHOWN_X_RT_PRIORITY, setProcessScheduling } from '../util/priority.js';
import { isAlive, processCpuMs } from '../util/proc.js';
import { setSlice } from '../util/slice.js';
import { markStart, startMarks } from '../util/start-trace.js';
import { createAdminScreen } from './admin-screen.js';
import { Api } from './api.js';
import { configMethods } from './config-methods.js';
import { ConsoleInput } from './console-input.js';
import type { LiveDisplay } from './display-runtime.js';
import type { HeadStart } from './head-start.js';
import { HostPhrase, phraseMethods } from './host-phrase.js';
import { jobMethods } from './job-methods.js';
import type { MenuView } from './menu-controller.js';
import { serviceMethods } from './methods.js';
import { type OriginalVt, rememberOriginalVt } from './original-vt.js';
import type { MenuViewHost } from './overlay-view.js';
import { ShownClient } from './shown-client.js';
import { type ProcessRef, ShownPriority } from './shown-priority.js';
import { Switcher } from './switcher.js';
import { VmCatalogue } from './vm-catalogue.js';

export interface ServiceOptions {
  /** The read-only --config file's config. */
  readonly config: Config;
  /** kvmux's own layer from stateDir (loadEffectiveConfig); none = empty. */
  readonly overlay?: Overlay;
  readonly log?: Logger;
  readonly ring?: LogRing;
  /** Draws the switcher and ask dialogs (the X overlay renderer in production). */
  readonly menuView: (host: MenuViewHost) => MenuView;
  /** The first display's X server, started while kvmux loaded (cli/run). */
  readonly headStart?: HeadStart | null;
}

/** Everything `start` built, in the order it was built; `stop` takes it down in reverse. */
interface Parts {
  readonly vtGuard: OriginalVt | null;
  readonly switcher: Switcher;
  readonly view: MenuView;
  readonly input: ConsoleInput;
  readonly net: NetworkManager | null;
  readonly supervisor: Supervisor;
  readonly catalogue: VmCatalogue;
  readonly adminScreen: Supervisor | null;
  readonly plane: ControlPlane;
  /** Ends the hashing thread and empties the upload attachment pool. */
  readonly releaseTransferMemory: () => Promise<void>;
  /** The shown VM's process asks for short scheduler slices. */
  readonly shownClient: ShownClient;
}

/**
 * `kvmux run`, the composition root: builds the parts in dependency order (displays → networks →
 * supervisor → console input and menu → VM catalogue → admin screen → API → control plane), starts
 * them (the display shown first and its VM before the others), and stops them in reverse. Data
 * flows one way: input → hotkey/guard/router → the active display; control →
 * catalogue/supervisor/switcher.
 */
export class Service implements MenuViewHost {
  readonly config: Config;
  readonly log: Logger;
  private parts: Parts | null = null;
  private readonly hostPhrase: HostPhrase;
  private ready = false;
  private consoleReady = false;
  private stopping = false;

  constructor(private readonly opts: ServiceOptions) {
    this.config = opts.config;
    this.log = opts.log ?? silentLogger;
    this.hostPhrase = new HostPhrase(opts.config);
  }

  phrase(): string {
    return this.hostPhrase.value;
  }

  liveDisplay(name: string): LiveDisplay | null {
    return this.parts?.switcher.live(name) ?? null;
  }

  async start(): Promise<void> {
    const { config: cfg, log } = this;
    markStart('service-start');
    for (const dir of [cfg.runDir, cfg.stateDir, join(cfg.runDir, 'vm')])
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    const vtGuard = cfg.console === 'vt' ? rememberOriginalVt(cfg.stateDir) : null;
    const switcher = new Switcher({
      config: cfg,
      log,
      shownPriority: shownPriorityFor(cfg, log),
      headStart: this.opts.headStart ?? null,
    });
    const net = cfg.networks.length > 0 ? new NetworkManager({ log }) : null;
    const supervisor = newSupervisor(cfg, log, switcher, net);
    const view = this.opts.menuView(this);
    const items = () => menuItems(switcher, supervisor);
    const input = new ConsoleInput({ config: cfg, log, switcher, view, items });
    const overlay = this.opts.overlay ?? emptyOverlay();
    const catalogue = new VmCatalogue({ base: cfg, overlay, log, supervisor, switcher, input, net });
    const adminScreen = cfg.admin.enabled ? createAdminScreen({ config: cfg, log, switcher }) : null;
    const ready = () => this.ready;
    const consoleReady = () => this.consoleReady;
    const ring = this.opts.ring;
    const api = new Api({ config: cfg, switcher, supervisor, catalogue, input, ring, ready, consoleReady });
    const releaseTransferMemory = manageTransferMemory();
    // no VMs yet: every VM (configured or added later) gets its guest channel through the catalogue
    const plane = await startControlPlane(
      { ...cfg, vms: [] },
      {
        log,
        confirm: (vm, method, params, signal) => input.menu.confirm(vm, method, params, signal),
        onImageAdded: () => catalogue.rescan(),
        imageInUse: (path) => catalogue.imageInUse(path),
        imageUsers: (path) => catalogue.imageUsers(path),
        onImagesChanged: () => catalogue.rescan(),
        // bulk work on the input thread: the shown X server's pin is checked within a quarter second
        onBulk: () => switcher.busyHint(),
        methods: [
          ...serviceMethods(api),
          ...configMethods(catalogue),
          ...jobMethods(supervisor, catalogue),
          ...passwdMethods({ path: passwdPath(cfg.stateDir) }),
          ...phraseMethods(this.hostPhrase),
          ...netMethods({ list: () => net?.list() ?? Promise.resolve([]) }),
        ],
      },
    );
    this.parts = {
      vtGuard,
      switcher,
      view,
      input,
      net,
      supervisor,
      catalogue,
      adminScreen,
      plane,
      releaseTransferMemory,
      shownClient: new ShownClient(
        { setSlice, isAlive: refAlive },
        { active: () => switcher.active, processOf: (name) => processOf(name, supervisor, adminScreen) },
        log,
      ),
    };
    wire(this.parts);
    catalogue.attachInitial();
    input.start();
    if (net) {
      await net.reconcile(catalogue.config);
      await net.ensureNetworks(cfg.networks);
    }
    const shown = await switcher.startFirst();
    this.consoleReady = true;
    markStart('console-ready');
    log.info({ display: switcher.active ?? shown }, 'console ready');
    // the shown VM starts alone: other X servers and VMs would take the CPU it needs to reach the screen
    await supervisor.autostart({ lead: shown, afterLead: () => switcher.startRest() });
    await adminScreen?.autostart();
    catalogue.watchImages();
    this.ready = true;
    markStart('running');
    // ms since the process started; the epoch of that start lets a caller add its own spawn time
    log.info(
      { processStartEpochMs: Math.round(performance.timeOrigin), marks: startMarks() },
      'start timeline',
    );
    log.info({ displays: switcher.entries.map((e) => e.name), socket: plane.socketPath }, 'kvmux running');
  }

  /**
   * SIGTERM: stop VMs (graceful), X servers, input (grabs released), control; restore the VT.
   * `leaveRunning` keeps VMs and their X servers for a later kvmux to adopt.
   */
  async stop(opts: { leaveRunning?: boolean } = {}): Promise<void> {
    if (this.stopping || !this.parts) return;
    this.stopping = true;
    const { vtGuard, switcher, input, supervisor, catalogue, adminScreen, plane, releaseTransferMemory } =
      this.parts;
    const leaveRunning = opts.leaveRunning ?? false;
    this.log.info({ leaveRunning }, 'stopping');
    catalogue.close();
    input.close();
    // VMs left for a later kvmux run with the default slice until it shows one
    this.parts.shownClient.close();
    await plane.close().catch(() => {});
    await releaseTransferMemory();
    await adminScreen?.shutdown({ leaveRunning });
    await supervisor.shutdown({ leaveRunning });
    await switcher.stop({ leaveRunning });
    await vtGuard
      ?.restore()
      .catch((err: unknown) => this.log.warn({ err: String(err) }, 'VT restore failed'));
    if (!leaveRunning) vtGuard?.forget();
    this.log.info('stopped');
  }
}

/** Is the process `ref` names (pid and start time) still running? */
const refAlive = (ref: ProcessRef) => isAlive(ref.pid, ref.startTime);

/**
 * input.realtime: the X server on screen runs real-time with kvmux's input thread. Off, every X
 * server runs normal: priority 0 still lowers one an earlier kvmux raised and could not lower (killed).
 */
function shownPriorityFor(cfg: Config, log: Logger): ShownPriority {
  const io = {
    setScheduling: setProcessScheduling,
    isAlive: refAlive,
    cpuMs: (p: { pid: number; startTime: number }) => processCpuMs(p.pid, p.startTime),
    // with the input thread pinned (kvmux run pins it before the service starts)
    ...(inputCpu() !== null ? { joinInputCpu } : {}),
  };
  return new ShownPriority(io, cfg.input.realtime ? SHOWN_X_RT_PRIORITY : 0, log);
}

/** Per-VM cgroups: v2 where the host has it, else the v1 fallback; none when neither is usable. */
function cgroupResources(cfg: Config, log: Logger): CgroupResources | null {
  const layout = detectCgroups(process.env['KVMUX_CGROUP_ROOT'] ?? '/sys/fs/cgroup');
  const group = instanceGroup(cfg.stateDir);
  if (!layout) log.warn('no usable cgroup hierarchy: VM resources are not enforced');
  else log.info({ cgroup: layout.mode, root: layout.root, group }, 'VM resources through cgroups');
  return layout ? new CgroupResources({ layout, group, log }) : null;
}

function newSupervisor(cfg: Config, log: Logger, switcher: Switcher, net: NetworkManager | null): Supervisor {
  const resources = cgroupResources(cfg, log);
  return new Supervisor({
    config: { runDir: cfg.runDir, stateDir: cfg.stateDir, vms: [] },
    backends: {
      qemu: createQemuBackend({ log }),
      command: createCommandBackend(),
      virtualbox: createVirtualboxBackend({ log }),
      subhost: createSubhostBackend({
        stateDir: cfg.stateDir,
        net: () => net,
        resources: () => resources,
        stopTimeoutMs: cfg.vmStopTimeoutSeconds * 1000,
        log,
      }),
    },
    displayFor: (vm) => switcher.displayInfo(vm.name),
    stopTimeoutMs: cfg.vmStopTimeoutSeconds * 1000,
    // a subhost's NICs are veths into its own netns, made by its backend
    tapsFor: (vm) => (net && vm.nics.length > 0 && vm.backend !== 'subhost' ? net.attachVm(vm) : []),
    resources,
    log,
  });
}

/** The subscriptions between parts that were built independently. */
function wire({
  switcher,
  view,
  input,
  net,
  supervisor,
  catalogue,
  plane,
  adminScreen,
  shownClient,
}: Parts): void {
  switcher.on('switched', () => shownClient.switched());
  adminScreen?.on('state', (st) => shownClient.vmState(st.name, st.state));
  switcher.on('display', (name, live) => {
    if (live) view.warm?.(name);
    input.menu.refresh();
  });
  supervisor.on('state', (st) => {
    shownClient.vmState(st.name, st.state);
    if (st.state === 'stopped' && net) void net.detachVm(st.name).catch(() => {});
    if (st.state === 'running') plane.resetVm(st.name);
    input.menu.refresh();
  });
  // a reboot inside the VM ends its guest-channel session like a restart does
  supervisor.on('reset', (name) => plane.resetVm(name));
  catalogue.on('added', (vm) => vm.guestChannel && plane.attachVm(vm.name));
  catalogue.on('removed', (name) => plane.detachVm(name));
  catalogue.on('channel', (name, on) => (on ? plane.attachVm(name) : plane.detachVm(name)));
}

/** The running process of VM (or admin screen) `name`, with its backend. */
function processOf(name: string, supervisor: Supervisor, adminScreen: Supervisor | null) {
  const owner = supervisor.has(name) ? supervisor : adminScreen?.has(name) ? adminScreen : null;
  const rec = owner?.handle(name)?.record;
  return rec ? { pid: rec.pid, startTime: rec.startTime, backend: rec.backend } : null;
}

function menuItems(switcher: Switcher, supervisor: Supervisor): MenuItem[] {
  const vms = new Map(supervisor.list().map((v) => [v.name, v.state]));
  return switcher.entries.map((e) => ({
    name: e.name,
    kind: e.kind,
    state: e.kind === 'admin' ? (e.display ? 'running' : 'starting') : (vms.get(e.name) ?? 'unknown'),
  }));
}
