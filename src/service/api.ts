import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Supervisor, VmStatus } from '../session/supervisor.js';
import { RpcCode, RpcError } from '../util/errors.js';
import type { LogRing } from '../util/log.js';
import { packageVersion } from '../util/version.js';
import { screenshot } from '../x/screenshot.js';
import type { ConsoleInput } from './console-input.js';
import { CpuSampler } from './cpu-sampler.js';
import type { ServiceApi } from './methods.js';
import { pruneScreenshots } from './screenshot-store.js';
import type { Switcher } from './switcher.js';
import type { VmCatalogue } from './vm-catalogue.js';

export interface ApiParts {
  readonly config: Pick<Config, 'console' | 'stateDir'>;
  readonly switcher: Switcher;
  readonly supervisor: Supervisor;
  readonly catalogue: VmCatalogue;
  readonly input: ConsoleInput;
  readonly ring: LogRing | undefined;
  /** Start-up done: displays up, VMs adopted or autostarted. */
  readonly ready: () => boolean;
  /**
   * The console works: control socket up, keyboard grabbed, the first display on screen. The other
   * displays and the VMs may still be starting. The appliance's "kvmux ready" line (and its A/B
   * boot counter) waits for this, so one broken VM cannot roll back a host that works.
   */
  readonly consoleReady: () => boolean;
}

/** What the control methods see of the running service: status, display and VM rows, screenshots. */
export class Api implements ServiceApi {
  readonly screenshotDir: string;
  private shooting: Promise<unknown> = Promise.resolve();
  private readonly startedAt = Date.now();
  private readonly cpu = new CpuSampler();

  constructor(private readonly p: ApiParts) {
    this.screenshotDir = join(p.config.stateDir, 'screenshots');
  }

  status(): Record<string, unknown> {
    const { switcher, supervisor } = this.p;
    const vms = supervisor.list();
    const count = (s: VmStatus['state']) => vms.filter((v) => v.state === s).length;
    return {
      version: packageVersion(),
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      console: this.p.config.console,
      ready: this.p.ready(),
      consoleReady: this.p.consoleReady(),
      active: switcher.active,
      displays: switcher.entries.length,
      // up, or on demand and not asked for yet (a found image's display starts with its VM)
      displaysReady: switcher.entries.filter((e) => e.display).length + switcher.idleOnDemand,
      displaysOnDemand: switcher.idleOnDemand,
      vms: {
        total: vms.length,
        running: count('running'),
        stopped: count('stopped'),
        crashed: count('crashed'),
      },
      menuOpen: this.p.input.menu.isOpen,
      rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    };
  }

  displays() {
    return this.p.switcher.list();
  }

  switchTo(name: string) {
    return this.p.switcher.switchTo(name);
  }

  /** One at a time (grab + compress are heavy); shots in screenshotDir are capped at SCREENSHOTS_KEPT. */
  screenshot(name: string, path: string) {
    const shot = this.shooting.then(async () => {
      const live = this.p.switcher.live(name);
      if (!live) throw new RpcError(RpcCode.conflict, `display "${name}" is not up`);
      mkdirSync(dirname(path), { recursive: true });
      const img = await screenshot(live.server.display, path);
      if (dirname(path) === this.screenshotDir) await pruneScreenshots(this.screenshotDir);
      return { path, width: img.width, height: img.height };
    });
    this.shooting = shot.catch(() => undefined);
    return shot;
  }

  menuState() {
    return this.p.input.menu.view();
  }

  /** `vm.list`, with the extensions `cpus` and `cpuPercent` (since the previous call) for the admin screen. */
  vms(): Array<VmStatus & { cpus: number | null; cpuPercent: number | null; autostart: boolean }> {
    const rows = this.p.supervisor.list();
    this.cpu.retain(rows.flatMap((r) => (r.pid === null ? [] : [r.pid])));
    return rows.map((r) => {
      const vm = this.p.catalogue.find(r.name);
      const cpus = vm?.qemu?.cpus ?? vm?.virtualbox?.cpus ?? null;
      return { ...r, cpus, autostart: vm?.autostart ?? false, cpuPercent: this.cpu.percent(r.pid) };
    });
  }

  hasVm(name: string): boolean {
    return this.p.supervisor.has(name);
  }

  startVm(name: string) {
    return this.p.supervisor.start(name);
  }

  stopVm(name: string, force: boolean) {
    return this.p.supervisor.stop(name, { force });
  }

  restartVm(name: string) {
    return this.p.supervisor.restart(name);
  }

  setMemory(name: string, memoryMiB: number) {
    return this.p.catalogue.setMemory(name, memoryMiB);
  }

  vmConfig(name: string) {
    return this.p.catalogue.find(name);
  }

  logTail(lines: number): unknown[] {
    return this.p.ring?.tail(lines) ?? [];
  }
}
