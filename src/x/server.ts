import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { XError } from '../util/errors.js';
import { isAlive, readProcStat, signal, watchGone } from '../util/proc.js';
import {
  dropClaim,
  markReserved,
  releaseDisplay,
  removeStaleSocket,
  reserveDisplay,
  reserveExplicit,
  socketPath,
} from './display-number.js';
import { xorgConfig } from './xorg-config.js';

/**
 * X server lifecycle: Xvfb (`console: virtual`) or Xorg on a VT (`console: vt`). Servers run in
 * their own session (detached) so that a dying kvmux does not take them and their VMs down; a
 * restarted kvmux re-adopts them from an `XServerRecord` (pid + start time from /proc).
 */
export type XServerKind = 'xvfb' | 'xorg';

export interface StartXServerOptions {
  kind: XServerKind;
  /** Where `x<N>.log` (and Xorg's own log and config) go. */
  logDir: string;
  width?: number;
  height?: number;
  /** Explicit display number; otherwise the first free one in `range`. */
  number?: number;
  /** Inclusive range searched for a free display number (default [20, 99]). */
  range?: [number, number];
  /** Xorg only: the VT to run on (required for xorg). */
  vt?: number;
  /** Xorg only: video driver (default dummy). */
  driver?: 'dummy' | 'modesetting';
  /** Milliseconds to wait for -displayfd readiness (default 20000). */
  readyTimeoutMs?: number;
  /** How long a server that failed to start may take to die after SIGKILL (default 5000). */
  killWaitMs?: number;
  /**
   * A server that failed to start outlived SIGKILL (a KMS Xorg in an uninterruptible DRM ioctl):
   * start gives up on it; its display number stays reserved until `exited`, keep its VT too.
   */
  onStuck?: (stuck: {
    pid: number;
    display: string;
    vt: number | null;
    exited: Promise<XServerExit>;
  }) => void;
}

export interface XServerExit {
  code: number | null;
  signal: string | null;
}

/** What kvmux stores in stateDir to re-adopt a server after a restart. */
export interface XServerRecord {
  kind: XServerKind;
  pid: number;
  startTime: number;
  number: number;
  vt: number | null;
  logFile: string;
}

export interface XServer extends XServerRecord {
  /** ':N' */
  display: string;
  /** Resolves when the server exits (crash or stop); never rejects. */
  exited: Promise<XServerExit>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `timeoutMs` (default 5000); resolves when gone. */
  stop(timeoutMs?: number): Promise<void>;
  record(): XServerRecord;
}

const defaultRange: [number, number] = [20, 99];

export async function startXServer(opts: StartXServerOptions): Promise<XServer> {
  if (opts.kind === 'xorg' && opts.vt === undefined) throw new XError('xorg', 'an Xorg server needs a vt');
  mkdirSync(opts.logDir, { recursive: true });
  const explicit = opts.number;
  const [first, last] = opts.range ?? defaultRange;
  const lost = new Set<number>();
  for (let attempt = 0; attempt < 5; attempt++) {
    const n = explicit ?? reserveDisplay(first, last, lost);
    if (n === null) throw new XError(`:${first}-${last}`, 'no free X display number in range');
    if (explicit !== undefined && !reserveExplicit(n)) throw new XError(`:${n}`, 'display is already in use');
    try {
      return await launch(opts, n);
    } catch (err) {
      releaseDisplay(n);
      // a foreign server took the number between our check and its bind: try the next one
      const raced = err instanceof XError && /already active|listening sockets/i.test(err.message);
      if (explicit !== undefined || !raced) throw err;
      lost.add(n);
    }
  }
  throw new XError(`:${first}-${last}`, 'could not claim a display number after 5 attempts');
}

function serverArgv(opts: StartXServerOptions, n: number): { cmd: string; args: string[]; logFile: string } {
  const w = opts.width ?? 1024;
  const h = opts.height ?? 768;
  const logFile = join(opts.logDir, `x${n}.log`);
  const common = ['-noreset', '-nolisten', 'tcp', '-displayfd', '3'];
  if (opts.kind === 'xvfb') {
    return { cmd: 'Xvfb', args: [`:${n}`, '-screen', '0', `${w}x${h}x24`, ...common], logFile };
  }
  const conf = join(opts.logDir, `xorg${n}.conf`);
  const confDir = join(opts.logDir, `xorg${n}.conf.d`);
  writeFileSync(conf, xorgConfig({ width: w, height: h, driver: opts.driver ?? 'dummy' }));
  // an empty config dir keeps the system's xorg.conf.d snippets (input classes) out
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, '00-kvmux-empty.conf'), '# intentionally empty\n');
  const xlog = join(opts.logDir, `xorg${n}.log`);
  // -novtswitch: a KMS Xorg that exits must not VT_ACTIVATE the VT it started from (maybe
  // another VM's display) behind kvmux's back; kvmux decides what the monitor shows
  const vtArgs = [`vt${opts.vt}`, '-novtswitch'];
  const args = [`:${n}`, ...vtArgs, '-config', conf, '-configdir', confDir, ...common, '-logfile', xlog];
  return { cmd: 'Xorg', args, logFile };
}

async function launch(opts: StartXServerOptions, n: number): Promise<XServer> {
  const { cmd, args, logFile } = serverArgv(opts, n);
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', logFd, logFd, 'pipe'] });
  } finally {
    closeSync(logFd);
  }
  const exited = new Promise<XServerExit>((resolve) => {
    child.once('exit', (code, sig) => {
      releaseDisplay(n);
      removeStaleSocket(n);
      resolve({ code, signal: sig });
    });
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  child.unref();
  const display = `:${n}`;
  try {
    await waitReady(child, exited, display, logFile, opts.readyTimeoutMs ?? 20_000);
  } catch (err) {
    await killUnready(child, exited, display, opts);
    throw err;
  }
  dropClaim(n);
  const pid = child.pid!;
  const startTime = readProcStat(pid)?.startTime ?? 0;
  const rec: XServerRecord = { kind: opts.kind, pid, startTime, number: n, vt: opts.vt ?? null, logFile };
  return makeHandle(rec, exited, () => child.exitCode === null && child.signalCode === null);
}

/** SIGKILL, then wait a bounded time: a process in an uninterruptible ioctl may never exit. */
async function killUnready(
  child: ChildProcess,
  exited: Promise<XServerExit>,
  display: string,
  opts: StartXServerOptions,
): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return void (await exited);
  signal(pid, 'SIGKILL');
  const waitMs = opts.killWaitMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), waitMs)));
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome === 'late') opts.onStuck?.({ pid, display, vt: opts.vt ?? null, exited });
}

function logTail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').trim().split('\n').slice(-6).join(' | ');
  } catch {
    return '(no log)';
  }
}

/** -displayfd: the server writes its display number and a newline on fd 3 once it accepts clients. */
function waitReady(
  child: ChildProcess,
  exited: Promise<XServerExit>,
  display: string,
  logFile: string,
  timeoutMs: number,
): Promise<void> {
  const pipe = child.stdio[3] as Readable;
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      reject(new XError(display, `not ready after ${timeoutMs} ms; log ${logFile}: ${logTail(logFile)}`));
    }, timeoutMs);
    const done = (err?: Error) => {
      clearTimeout(timer);
      pipe.destroy();
      if (err) reject(err);
      else resolve();
    };
    pipe.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\n')) done();
    });
    pipe.on('error', () => {});
    void exited.then((ex) => {
      const why = `exited (code ${ex.code}, signal ${ex.signal}) before ready`;
      done(new XError(display, `${child.spawnfile} ${why}; log ${logFile}: ${logTail(logFile)}`));
    });
    child.once('error', (err) => done(new XError(display, `cannot run ${child.spawnfile}`, { cause: err })));
  });
}

function makeHandle(rec: XServerRecord, exited: Promise<XServerExit>, running: () => boolean): XServer {
  const display = `:${rec.number}`;
  const alive = () => running() && isAlive(rec.pid, rec.startTime);
  const stop = async (timeoutMs = 5000) => {
    if (!alive()) return;
    signal(rec.pid, 'SIGTERM');
    const sleep = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms));
    if ((await Promise.race([exited, sleep(timeoutMs)])) === 'timeout') {
      signal(rec.pid, 'SIGKILL');
      await Promise.race([exited, sleep(2000)]);
    }
  };
  return { ...rec, display, exited, alive, stop, record: () => ({ ...rec }) };
}

/**
 * Re-adopt a server started by an earlier kvmux: null unless the pid still runs with the same
 * start time (not a zombie) and its socket exists. Exit is detected by polling /proc.
 */
export function adoptXServer(rec: XServerRecord): XServer | null {
  if (!isAlive(rec.pid, rec.startTime) || !existsSync(socketPath(rec.number))) return null;
  markReserved(rec.number);
  const exited = new Promise<XServerExit>((resolve) => {
    watchGone(rec.pid, rec.startTime, () => {
      releaseDisplay(rec.number);
      removeStaleSocket(rec.number);
      resolve({ code: null, signal: null });
    });
  });
  return makeHandle(rec, exited, () => true);
}
