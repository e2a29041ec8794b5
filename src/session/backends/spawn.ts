import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { BackendError, errnoName } from '../../util/errors.js';
import { isAlive, readProcStat, signal, waitGone, watchGone } from '../../util/proc.js';
import type { VmExit } from './backend.js';

/**
 * Starts VM processes detached (own session and process group) so a dying kvmux does not take them
 * down; stdout and stderr go to a log file. Node reaps its own children; adopted ones are polled.
 */
export interface Spawned {
  readonly pid: number;
  readonly startTime: number;
  readonly exited: Promise<VmExit>;
}

export interface SpawnOptions {
  readonly vm: string;
  readonly argv: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly logFile: string;
  readonly cwd?: string;
  /** cgroup.procs files the process joins before it execs, so nothing it forks escapes its limits. */
  readonly cgroupProcs?: readonly string[];
}

/** `sh` writes its own pid into each cgroup, then execs the command (same pid, same start time). */
const JOIN_CGROUPS =
  'IFS=:; for f in $KVMUX_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; unset KVMUX_CGROUP_PROCS; exec "$@"';

function withCgroups(opts: SpawnOptions): { argv: readonly string[]; env: NodeJS.ProcessEnv } {
  const env = opts.env ?? process.env;
  if (!opts.cgroupProcs?.length) return { argv: opts.argv, env };
  return {
    argv: ['/bin/sh', '-c', JOIN_CGROUPS, 'kvmux-cgroup', ...opts.argv],
    env: { ...env, KVMUX_CGROUP_PROCS: opts.cgroupProcs.join(':') },
  };
}

export async function spawnDetached(opts: SpawnOptions): Promise<Spawned> {
  if (!opts.argv[0]) throw new BackendError(opts.vm, 'empty command line');
  const { argv, env } = withCgroups(opts);
  const [cmd = '', ...args] = argv;
  const fd = openSync(opts.logFile, 'a', 0o600);
  try {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (err) =>
        reject(new BackendError(opts.vm, `cannot start "${cmd}": ${errnoName(err)}`, { cause: err })),
      );
    });
    const exited = new Promise<VmExit>((resolve) => {
      child.once('exit', (code, sig) => resolve({ code, signal: sig, clean: code === 0 }));
    });
    child.unref();
    const startTime = readProcStat(pid)?.startTime ?? 0;
    return { pid, startTime, exited };
  } finally {
    closeSync(fd);
  }
}

/** Exit promise for a process we did not start (adopted): resolves when it is gone or a zombie. */
export function watchAdopted(pid: number, startTime: number): Promise<VmExit> {
  return new Promise((resolve) => {
    watchGone(pid, startTime, () => resolve({ code: null, signal: null, clean: false }), 200);
  });
}

/** True when the recorded process still runs (pid alive, same start time, not a zombie). */
export function recordAlive(pid: number, startTime: number): boolean {
  return isAlive(pid, startTime);
}

/** SIGTERM (graceful) or SIGKILL, then wait up to timeoutMs; escalates to SIGKILL if still there. */
export async function terminate(
  pid: number,
  startTime: number,
  exited: Promise<VmExit>,
  opts: { force: boolean; timeoutMs: number },
): Promise<void> {
  if (!isAlive(pid, startTime)) return;
  signal(pid, opts.force ? 'SIGKILL' : 'SIGTERM');
  if (await goneWithin(pid, startTime, exited, opts.force ? 5000 : opts.timeoutMs)) return;
  await kill(pid, startTime, exited);
}

/** SIGKILL and wait until the process is gone (our child: reaped; adopted: zombie or gone). */
export async function kill(pid: number, startTime: number, exited: Promise<VmExit>): Promise<void> {
  if (!isAlive(pid, startTime)) return;
  signal(pid, 'SIGKILL');
  await goneWithin(pid, startTime, exited, 10_000);
}

export async function goneWithin(
  pid: number,
  startTime: number,
  exited: Promise<VmExit>,
  timeoutMs: number,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const gone = Promise.race([exited.then(() => true), waitGone(pid, startTime, 50, timeoutMs)]);
  const result = await Promise.race([gone, timeout]);
  clearTimeout(timer);
  if (result) await observed(exited);
  return result;
}

/** How long a process seen gone may take to be reaped (ours) or noticed by its poll (adopted). */
const OBSERVE_MS = 1000;

/**
 * Waits (a ref'd timer, at most OBSERVE_MS) until `exited` resolves for a process /proc shows gone.
 * A zombie child is reaped, and its `exited` resolved, only once libuv has read the SIGCHLD; an
 * adopted one's poll is an unref'd timer. The child is unref'd too (a VM outlives kvmux), so with
 * nothing else alive the loop could end in between and leave whoever awaits the exit next (the
 * runner's state, Supervisor.stop) pending forever: a process with no server, such as a script
 * driving a Supervisor, then exits 0 mid-await.
 */
async function observed(exited: Promise<VmExit>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, OBSERVE_MS)))]);
  clearTimeout(timer);
}
