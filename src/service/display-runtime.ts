import type { Config } from '../config/schema.js';
import { DisplayError, errText } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/log.js';
import { JsonRecordStore } from '../util/record-store.js';
import { markStart } from '../util/start-trace.js';
import { connectDisplay } from '../x/connection.js';
import { consoleLock } from '../x/console-lock.js';
import { type KioskWm, startKioskWm } from '../x/kiosk-wm.js';
import {
  adoptXServer,
  type StartXServerOptions,
  startXServer,
  type XServer,
  type XServerRecord,
} from '../x/server.js';
import { activeVt, allocateVt, releaseVt, switchVt } from '../x/vt.js';
import { createXtestSink, type XtestSink } from '../x/xtest-sink.js';
import { dropHeadStart, serverBase } from './head-start.js';

/**
 * One named display at runtime: its X server (started, or adopted from an earlier kvmux), the
 * kiosk WM and the XTEST sink. A server that dies is restarted with backoff; `ready()` waits.
 */
export interface LiveDisplay {
  readonly name: string;
  readonly server: XServer;
  readonly wm: KioskWm;
  readonly sink: XtestSink;
}

export interface DisplayRuntimeOptions {
  readonly name: string;
  readonly config: Pick<Config, 'console' | 'x' | 'runDir' | 'stateDir'>;
  readonly log?: Logger;
  /** Called whenever the display (re)appears or is lost, so the service can rewire input. */
  readonly onChange?: (name: string, live: LiveDisplay | null) => void;
  /** The VT the monitor should show (the active display's), restored after this server's start took it. */
  readonly shownVt?: () => number | null;
  /** An X round trip to the server now shown: it must wake to let a starting KMS Xorg have its VT. */
  readonly nudgeShown?: () => Promise<void>;
}

/** The wait for a failed server to die after SIGKILL (startXServer's default). */
const killWaitMs = 5000;
/** showAgain: connecting to the new server, then the VT switch back. */
const showAgainMs = 25_000;

/**
 * While a KMS Xorg starts it VT_ACTIVATEs its VT and waits for the shown server to let go, which
 * that one does only when its main loop wakes: an X round trip now and every 250 ms does it.
 */
export async function whileNudging<T>(
  pending: Promise<T>,
  nudge: (() => Promise<void>) | undefined,
): Promise<T> {
  if (!nudge) return pending;
  const poke = () => void nudge().catch(() => {});
  poke();
  const timer = setInterval(poke, 250);
  try {
    return await pending;
  } finally {
    clearInterval(timer);
  }
}

function isXServerRecord(_name: string, r: unknown): r is XServerRecord {
  const rec = r as Partial<XServerRecord> | null;
  return (
    (rec?.kind === 'xorg' || rec?.kind === 'xvfb') &&
    Number.isInteger(rec.pid) &&
    Number.isInteger(rec.number) &&
    typeof rec.startTime === 'number'
  );
}

/** X server records in <stateDir>/displays/NAME.json, for re-adoption after a crash. */
export const displayRecords = (stateDir: string) =>
  new JsonRecordStore<XServerRecord>(stateDir, 'displays', isXServerRecord);

export class DisplayRuntime {
  private live: LiveDisplay | null = null;
  private waiting: Array<(d: LiveDisplay) => void> = [];
  private stopping = false;
  private leaveRunning = false;
  /** The start in progress, if any: stop() waits for it so it cannot leave a server behind. */
  private starting: Promise<LiveDisplay> | null = null;
  /** Started only when something waits for it (`ready()`), not by startOrRetry. */
  private lazy = false;
  private requested = false;
  private failures = 0;
  private readonly log: Logger;
  private readonly records: JsonRecordStore<XServerRecord>;

  constructor(private readonly opts: DisplayRuntimeOptions) {
    this.log = (opts.log ?? silentLogger).child({ display: opts.name });
    this.records = displayRecords(opts.config.stateDir);
  }

  get current(): LiveDisplay | null {
    return this.live;
  }

  /** An on-demand display nothing has asked for yet: no server, and none is due. */
  get idleOnDemand(): boolean {
    return this.lazy && !this.requested && !this.live;
  }

  /** A start was asked for (it may be running, done, or waiting to retry): starting it again would make a second server. */
  get startRequested(): boolean {
    return this.requested;
  }

  /** Resolves with the display once its server, WM and sink are up; starts an on-demand one. */
  ready(): Promise<LiveDisplay> {
    if (this.live) return Promise.resolve(this.live);
    const waiting = new Promise<LiveDisplay>((resolve) => this.waiting.push(resolve));
    if (this.lazy && !this.requested && !this.stopping) {
      this.requested = true;
      this.startOrRetry();
    }
    return waiting;
  }

  /**
   * Start this display only when something needs it (a found image's VM starting), not before;
   * unless an earlier kvmux left its server running (with its VM): that one is adopted at once.
   */
  onDemand(): void {
    this.lazy = this.records.load(this.opts.name) === null;
  }

  /**
   * Adopt a server recorded by an earlier kvmux if it still runs, else take `early` (the head
   * start's server, spawned for this display while kvmux loaded), else start a new one.
   */
  start(early?: Promise<XServer>): Promise<LiveDisplay> {
    this.requested = true;
    const name = this.opts.name;
    markStart(`x-start:${name}`);
    const run = (async () => {
      const adopted = this.adopt();
      if (adopted && early) void dropHeadStart(early);
      const server = adopted ?? (early && (await this.fromHeadStart(early))) ?? (await this.launch());
      markStart(`x-ready:${name}`);
      return this.attach(server);
    })();
    this.starting = run;
    const done = () => {
      if (this.starting === run) this.starting = null;
    };
    run.then(done, done);
    return run;
  }

  private adopt(): XServer | null {
    const rec = this.records.load(this.opts.name);
    if (!rec) return null;
    const wantKind = this.opts.config.console === 'vt' ? 'xorg' : 'xvfb';
    const server = rec.kind === wantKind ? adoptXServer(rec) : null;
    if (server)
      this.log.info({ pid: server.pid, x: server.display, vt: server.vt }, 'adopted running X server');
    return server;
  }

  /** The head start's server; null when it failed (then a new one is launched). */
  private async fromHeadStart(early: Promise<XServer>): Promise<XServer | null> {
    try {
      return await early;
    } catch (err) {
      this.log.warn({ err: errText(err) }, 'head-start X server failed; starting another');
      return null;
    }
  }

  private async launch(): Promise<XServer> {
    const { config } = this.opts;
    const x = config.x;
    const base = serverBase(config);
    const readyMs = base.readyTimeoutMs;
    if (config.console === 'virtual') return startXServer({ kind: 'xvfb', ...base });
    const vt = allocateVt(x.firstVt, 63);
    let stuck = false;
    const onStuck: StartXServerOptions['onStuck'] = (s) => {
      stuck = true;
      this.log.error(
        { pid: s.pid, x: s.display, vt: s.vt },
        'X server that failed to start outlives SIGKILL',
      );
      // its VT stays reserved until it is really gone
      void s.exited.then(() => {
        releaseVt(vt);
        this.log.warn({ pid: s.pid, vt }, 'stuck X server finally exited');
      });
    };
    const start = () => startXServer({ kind: 'xorg', vt, driver: x.driver, onStuck, ...base });
    try {
      // the dummy driver never touches the console; a KMS driver takes its VT (see console-lock.ts)
      if (x.driver === 'dummy') return await start();
      // held until the server is ready, not just until its VT is active: between VT_WAITACTIVE and
      // VT_SETMODE(VT_PROCESS) plus its main loop, a switch away would leave it DRM master off-screen
      return await consoleLock.run(
        async () => {
          const server = await whileNudging(start(), this.opts.nudgeShown);
          await this.showAgain(server);
          return server;
        },
        {
          what: `xorg vt${vt} start (${this.opts.name})`,
          maxHoldMs: readyMs + killWaitMs + showAgainMs + 10_000,
          onOverrun: (what, heldMs) =>
            this.log.error({ what, heldMs }, 'console lock deadline passed; lock released'),
        },
      );
    } catch (err) {
      if (!stuck) releaseVt(vt);
      throw err;
    }
  }

  /**
   * A starting Xorg made its own VT active: give the monitor back to the display it showed. The
   * switch waits for the new server to release the VT, which takes seconds on a slow machine.
   */
  private async showAgain(server: XServer): Promise<void> {
    const want = this.opts.shownVt?.() ?? null;
    if (want === null || want === server.vt || activeVt() === want) return;
    // the new server must release its VT, and nothing else wakes it yet (no WM, no VM)
    const conn = await connectDisplay(server.display, { timeoutMs: 5000 }).catch(() => null);
    try {
      await switchVt(want, { timeoutMs: showAgainMs - 5000, ...(conn ? { nudge: () => conn.sync() } : {}) });
    } catch (err) {
      this.log.warn({ vt: want, err: errText(err) }, 'could not show the active display again');
    } finally {
      await conn?.close().catch(() => {});
    }
  }

  private async attach(server: XServer): Promise<LiveDisplay> {
    const log = this.log;
    if (this.stopping) return this.discard(server);
    this.records.put(this.opts.name, server.record());
    let wm: KioskWm;
    let sink: XtestSink;
    try {
      const name = this.opts.name;
      const onManage = () => markStart(`window-mapped:${name}`);
      wm = await startKioskWm(server.display, { log, timeoutMs: 5000, onManage });
      markStart(`wm-up:${name}`);
      sink = await createXtestSink(server.display, { log, timeoutMs: 5000, bufferRequests: true });
    } catch (err) {
      await server.stop();
      throw err;
    }
    if (this.stopping) {
      await wm.stop().catch(() => {});
      await sink.close().catch(() => {});
      return this.discard(server);
    }
    const live: LiveDisplay = { name: this.opts.name, server, wm, sink };
    this.live = live;
    this.failures = 0;
    markStart(`display-up:${this.opts.name}`);
    log.info({ x: server.display, vt: server.vt, pid: server.pid }, 'display up');
    for (const resolve of this.waiting.splice(0)) resolve(live);
    this.opts.onChange?.(this.opts.name, live);
    void server.exited.then((exit) => this.onExit(live, exit));
    return live;
  }

  /** stop() came while this server was starting: it goes too (or stays for adoption). */
  private async discard(server: XServer): Promise<never> {
    if (this.leaveRunning) this.records.put(this.opts.name, server.record());
    else {
      await server.stop();
      if (server.vt !== null) releaseVt(server.vt);
      this.records.remove(this.opts.name);
    }
    throw new DisplayError(this.opts.name, 'stopped while it was starting');
  }

  private onExit(live: LiveDisplay, exit: { code: number | null; signal: string | null }): void {
    if (this.live !== live) return;
    this.live = null;
    void live.wm.stop().catch(() => {});
    void live.sink.close().catch(() => {});
    if (live.server.vt !== null) releaseVt(live.server.vt);
    this.opts.onChange?.(this.opts.name, null);
    if (this.stopping) return;
    this.log.error(exit, 'X server died; restarting it');
    this.scheduleRestart();
  }

  /** Start now; when that fails, keep retrying with backoff (its VM waits in `ready()`). */
  startOrRetry(): void {
    if (this.lazy && !this.requested) return;
    this.start().catch((err: unknown) => {
      if (this.stopping) return;
      this.log.error({ err: errText(err) }, 'X server failed to start');
      this.scheduleRestart();
    });
  }

  private scheduleRestart(): void {
    if (this.stopping) return;
    this.failures++;
    const delay = Math.min(30_000, 500 * 2 ** (this.failures - 1));
    this.log.warn({ restartInMs: delay, failures: this.failures }, 'X server restart scheduled');
    setTimeout(() => {
      if (!this.stopping) this.startOrRetry();
    }, delay).unref();
  }

  /**
   * `leaveRunning`: keep the X server (and so its VM) alive for a later kvmux to adopt; only our
   * connections are closed.
   */
  async stop(opts: { leaveRunning?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.leaveRunning = opts.leaveRunning ?? false;
    await this.starting?.catch(() => {});
    const live = this.live;
    if (!live) return;
    await live.wm.stop().catch(() => {});
    await live.sink.close().catch(() => {});
    if (opts.leaveRunning) return;
    this.live = null;
    await live.server.stop();
    if (live.server.vt !== null) releaseVt(live.server.vt);
    this.records.remove(this.opts.name);
  }
}
