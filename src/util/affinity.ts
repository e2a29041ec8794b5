import { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import koffi from 'koffi';
import { errnoName } from '../input/libc.js';
import { errText } from './errors.js';

/**
 * One CPU for the key path. kvmux's main thread (it reads, routes and writes every key) is pinned
 * to one CPU, and the X server on screen is pinned to the same one while it is on screen (see
 * setProcessScheduling). A key's write to the X socket then wakes the server on the CPU that is
 * already awake, where it runs as soon as kvmux waits again (both real-time there), instead of
 * an inter-processor wake-up of another, possibly idle, CPU: on the 2-vCPU VMs of this project's
 * bench that second wake-up made most of the forwarding tail (added p99 over bare XTEST, 5 runs
 * each: median 0.72 ms quiet and −0.22 ms with a spinner, against 1.14 and 1.71 ms unpinned).
 *
 * Affinity is inherited by threads and children, so the pin is kept to the one thread: the libuv
 * thread pool is started before it (its threads keep every CPU), and every child kvmux spawns
 * and worker thread is started while the main thread has every CPU back for that moment
 * (ChildProcess#spawn wrapped, which every asynchronous spawn and execa goes through; by hand with
 * startUnpinned for workers and synchronous spawns, which do not).
 * The CPU is the last one kvmux may use (CPU 0 takes most interrupts); with one CPU nothing is pinned.
 */
const MASK_BYTES = 128; // cpu_set_t: 1024 CPUs

type Affinity = (pid: number, size: number, mask: Buffer) => number;
let fns: { get: Affinity; set: Affinity } | undefined;

function libc(): { get: Affinity; set: Affinity } {
  if (!fns) {
    const lib = koffi.load('libc.so.6');
    fns = {
      get: lib.func('int sched_getaffinity(int pid, size_t size, void *mask)') as unknown as Affinity,
      set: lib.func('int sched_setaffinity(int pid, size_t size, void *mask)') as unknown as Affinity,
    };
  }
  return fns;
}

/** The CPUs thread `tid` may run on (0: the calling thread); null when unreadable. */
export function getAffinity(tid = 0): number[] | null {
  try {
    const mask = Buffer.alloc(MASK_BYTES);
    if (libc().get(tid, MASK_BYTES, mask) !== 0) return null;
    const cpus: number[] = [];
    for (let i = 0; i < MASK_BYTES * 8; i++) if (mask[i >> 3]! & (1 << (i & 7))) cpus.push(i);
    return cpus;
  } catch {
    return null;
  }
}

/** Thread `tid` (0: the calling thread) on `cpus`; the errno name when refused. */
export function setAffinity(tid: number, cpus: readonly number[]): string | undefined {
  try {
    const mask = Buffer.alloc(MASK_BYTES);
    for (const c of cpus) if (c >= 0 && c < MASK_BYTES * 8) mask[c >> 3]! |= 1 << (c & 7);
    return libc().set(tid, MASK_BYTES, mask) === 0 ? undefined : errnoName(koffi.errno());
  } catch (err) {
    return errText(err);
  }
}

/** Every thread of process `pid` on `cpus`; the first refusal's errno name (ESRCH: it is gone). */
export function setProcessAffinity(pid: number, cpus: readonly number[]): string | undefined {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return 'ESRCH';
  }
  let failed: string | undefined;
  for (const tid of tids) {
    const why = setAffinity(tid, cpus);
    // a thread that ended meanwhile is no failure
    if (why && why !== 'ESRCH') failed ??= why;
  }
  return failed;
}

interface Pin {
  cpu: number;
  /** kvmux's CPUs before the pin: what children and lowered X servers get. */
  all: number[];
}
let pin: Pin | null = null;

/** The key path's CPU, once pinInputThread has pinned; null otherwise. */
export function inputCpu(): number | null {
  return pin?.cpu ?? null;
}

/** kvmux's CPUs before the pin (null when nothing is pinned). */
export function allCpus(): readonly number[] | null {
  return pin?.all ?? null;
}

/**
 * Pin the calling (main) thread to the last CPU it may use. Null, and nothing changed, with one
 * CPU or when the kernel refuses; else the CPU. Call once, early, from the main thread.
 */
export async function pinInputThread(): Promise<{ cpu: number } | { refused: string } | null> {
  if (pin) return { cpu: pin.cpu };
  const all = getAffinity();
  if (!all || all.length < 2) return null;
  // libuv starts its whole thread pool on the first request: now, while every CPU is allowed
  await stat('/');
  const cpu = all[all.length - 1]!;
  const failed = setAffinity(0, [cpu]);
  if (failed) return { refused: `sched_setaffinity: ${failed}` };
  pin = { cpu, all };
  wrapSpawn();
  return { cpu };
}

/**
 * Run `start` (it creates a thread or a process, which inherits the caller's affinity) with the
 * main thread on every CPU for that moment, so what it starts is not pinned.
 */
export function startUnpinned<T>(start: () => T): T {
  const p = pin;
  if (!p) return start();
  setAffinity(0, p.all);
  try {
    return start();
  } finally {
    setAffinity(0, [p.cpu]);
  }
}

let wrapped = false;

/** Every child_process spawn (execa's too) goes through ChildProcess#spawn, synchronously. */
function wrapSpawn(): void {
  if (wrapped) return;
  wrapped = true;
  const proto = ChildProcess.prototype as unknown as { spawn: (...a: unknown[]) => unknown };
  const spawn = proto.spawn;
  proto.spawn = function (this: unknown, ...args: unknown[]) {
    return startUnpinned(() => spawn.apply(this, args));
  };
}
