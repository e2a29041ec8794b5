import { statSync } from 'node:fs';
import { DeviceError, errnoName } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { wanted } from './capabilities.js';
import { EV, SYN_REPORT } from './codes.js';
import { HotplugWatcher, INPUT_DIR, listEventDevices } from './discovery.js';
import { EvdevDevice } from './evdev.js';
import type { InputEvent } from './event.js';
import { FifoSource } from './fifo.js';
import { PathWatcher } from './path-watcher.js';
import type { AxisRange } from './router.js';
import type { LedSink } from './sink.js';

/** Where sources deliver: an InputPipeline, or `kvmux monitor`'s printer. */
export interface InputTarget {
  feed(ev: InputEvent): void;
  setAbsRange?(source: string, x: AxisRange, y: AxisRange, touchpad?: boolean): void;
}

export interface InputSourcesOptions {
  /** Config `input.devices`: 'auto' (discovery, hotplug, grab) or paths (evdev nodes or FIFOs). */
  devices: 'auto' | readonly string[];
  /** Take EVIOCGRAB on evdev devices (default true; `kvmux monitor` passes false). */
  grab?: boolean;
  /** Where `auto` looks (default /dev/input). */
  inputDir?: string;
  log?: Logger;
}

export interface SourceInfo {
  path: string;
  kind: 'evdev' | 'fifo';
  name: string;
  grabbed: boolean;
}

/**
 * Opens the configured input sources and feeds one target. Explicit paths that fail are fatal at
 * start; in `auto` mode a bad or vanished device only affects itself. Implements LedSink: LED
 * masks go to every open keyboard. close() drops all grabs (so does the kernel if we crash).
 */
export class InputSources implements LedSink {
  private readonly evdev = new Map<string, EvdevDevice>();
  private readonly fifos = new Map<string, FifoSource>();
  private hotplug: HotplugWatcher | undefined;
  /** Configured evdev paths that vanished, waiting to come back. */
  private readonly waiting = new Map<string, PathWatcher>();
  private readonly explicit = new Set<string>();
  private closing = false;
  private readonly log: Logger;
  private readonly grab: boolean;
  private leds: number | undefined;

  constructor(
    private readonly opts: InputSourcesOptions,
    private readonly target: InputTarget,
  ) {
    this.log = opts.log ?? silentLogger;
    this.grab = opts.grab ?? true;
  }

  start(): void {
    try {
      if (this.opts.devices === 'auto') this.startAuto();
      else for (const path of this.opts.devices) this.openPath(path);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private startAuto(): void {
    const dir = this.opts.inputDir ?? INPUT_DIR;
    const found = listEventDevices(dir);
    if (found.length === 0) this.log.warn({ dir }, 'no input devices yet; watching for hotplug');
    for (const path of found) this.tryOpenAuto(path);
    this.hotplug = new HotplugWatcher(dir, {
      added: (path) => this.tryOpenAuto(path),
      removed: (path) => this.closeDevice(path, 'removed'),
    });
    this.hotplug.start(found);
  }

  private tryOpenAuto(path: string): void {
    try {
      const dev = EvdevDevice.open(path);
      if (!wanted(dev.cls, dev.name)) {
        dev.close();
        this.log.debug(
          { path, name: dev.name },
          'input device skipped (not a keyboard or pointer, or our own)',
        );
        return;
      }
      this.startEvdev(dev);
    } catch (err) {
      this.log.warn({ path, err: (err as Error).message }, 'input device not usable');
    }
  }

  /** A configured path: a FIFO or an evdev node. Failures are fatal, except a /dev node not there yet. */
  private openPath(path: string): void {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch (err) {
      // A configured keyboard unplugged at boot must not keep the appliance from starting.
      if (errnoName(err) === 'ENOENT' && path.startsWith('/dev/')) {
        this.log.warn({ path }, 'configured input device not present; waiting for it');
        this.explicit.add(path);
        this.waitFor(path);
        return;
      }
      throw new DeviceError(path, `cannot use input device: ${errnoName(err)}`, { cause: err });
    }
    if (st.isFIFO()) {
      const fifo = new FifoSource(path);
      fifo.start({ onEvent: (ev) => this.target.feed(ev), onError: (err) => this.onSourceError(path, err) });
      this.fifos.set(path, fifo);
      this.log.info({ path }, 'input FIFO open');
      return;
    }
    if (!st.isCharacterDevice()) throw new DeviceError(path, 'not an evdev device or FIFO');
    this.startEvdev(EvdevDevice.open(path));
    this.explicit.add(path);
  }

  /** A configured device came back (replugged): open it again; a failure waits for the next time. */
  private reopen(path: string): void {
    this.waiting.delete(path);
    try {
      this.startEvdev(EvdevDevice.open(path));
    } catch (err) {
      this.log.warn({ path, err: (err as Error).message }, 'configured input device is back but not usable');
      this.waitFor(path);
    }
  }

  private startEvdev(dev: EvdevDevice): void {
    const path = dev.path;
    if ((dev.cls.pointer === 'absolute' || dev.cls.pointer === 'touchpad') && this.target.setAbsRange) {
      const r = dev.absRanges();
      if (r.x && r.y) this.target.setAbsRange(path, r.x, r.y, dev.cls.pointer === 'touchpad');
    }
    let grabbed: boolean;
    try {
      grabbed = this.grab && dev.tryGrab();
      dev.start({
        onEvent: (ev) => this.onEvdevEvent(dev, ev),
        onError: (err) => this.onSourceError(path, err),
      });
    } catch (err) {
      dev.close(); // EBUSY: someone else holds a grab; a device we cannot own is not ours to read
      throw err;
    }
    this.evdev.set(path, dev);
    if (this.leds !== undefined && dev.cls.keyboard) dev.setLeds(this.leds);
    this.log.info({ path, name: dev.name, cls: dev.cls, grabbed }, 'input device open');
  }

  private onEvdevEvent(dev: EvdevDevice, ev: InputEvent): void {
    this.target.feed(ev);
    // Grab once every key is up, so no release gets lost between host and kvmux.
    if (this.grab && !dev.isGrabbed && ev.type === EV.SYN && ev.code === SYN_REPORT) {
      try {
        if (dev.tryGrab()) this.log.info({ path: dev.path }, 'input device grabbed');
      } catch (err) {
        this.onSourceError(dev.path, err as DeviceError);
      }
    }
  }

  private onSourceError(path: string, err: DeviceError): void {
    this.log.warn({ path, err: err.message }, 'input source lost');
    this.closeDevice(path, 'error');
  }

  private closeDevice(path: string, why: string): void {
    const dev = this.evdev.get(path);
    dev?.close();
    this.evdev.delete(path);
    const fifo = this.fifos.get(path);
    fifo?.close();
    this.fifos.delete(path);
    if (dev || fifo) this.log.info({ path, why }, 'input source closed');
    if (dev && this.explicit.has(path)) this.waitFor(path);
  }

  private waitFor(path: string): void {
    if (this.closing || this.waiting.has(path)) return;
    const w = new PathWatcher(path, (p) => this.reopen(p));
    this.waiting.set(path, w);
    w.start();
  }

  setLeds(mask: number): void {
    this.leds = mask;
    for (const dev of this.evdev.values()) {
      if (!dev.cls.keyboard || !dev.cls.leds) continue;
      try {
        dev.setLeds(mask);
      } catch (err) {
        this.log.warn({ path: dev.path, err: (err as Error).message }, 'LED write failed');
      }
    }
  }

  /** Configured device paths not present right now (unplugged), waited for. */
  missing(): string[] {
    return [...this.waiting.keys()];
  }

  list(): SourceInfo[] {
    return [
      ...[...this.evdev.values()].map((d) => ({
        path: d.path,
        kind: 'evdev' as const,
        name: d.name,
        grabbed: d.isGrabbed,
      })),
      ...[...this.fifos.keys()].map((path) => ({
        path,
        kind: 'fifo' as const,
        name: 'FIFO',
        grabbed: false,
      })),
    ];
  }

  close(): void {
    this.closing = true;
    for (const w of this.waiting.values()) w.close();
    this.waiting.clear();
    this.hotplug?.close();
    this.hotplug = undefined;
    for (const path of [...this.evdev.keys(), ...this.fifos.keys()]) this.closeDevice(path, 'close');
  }
}
