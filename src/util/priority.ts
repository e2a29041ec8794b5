import { getPriority, setPriority } from 'node:os';
import koffi from 'koffi';
import { errnoName } from '../input/libc.js';
import { allCpus, getAffinity, inputCpu, setProcessAffinity } from './affinity.js';
import { errText } from './errors.js';

const SCHED_OTHER = 0;
const SCHED_RR = 2;
/** Children (QEMU, X servers, xterm) and later threads start at SCHED_OTHER nice 0 instead of inheriting. */
const SCHED_RESET_ON_FORK = 0x40000000;

/** Nice of the input path when real-time is refused: ahead of batch work, not real-time. */
export const INPUT_NICE = -10;
/**
 * kvmux's input thread: just above the X server on screen (which it feeds), far below the kernel's
 * own RT threads (50). A display busy drawing a guest's frames never holds a key back, even on one
 * CPU, where equal priorities would take turns in 100 ms round-robin slices.
 */
export const INPUT_RT_PRIORITY = 2;
/** The X server of the display on screen: above every normal task (VMs, other X servers). */
export const SHOWN_X_RT_PRIORITY = 1;

export interface InputPriorityWanted {
  /** Try SCHED_RR first (default true); false goes straight to the nice fallback. */
  realtime?: boolean;
  rtPriority?: number;
  nice?: number;
}

export interface InputPriority {
  policy: 'rr' | 'other';
  /** SCHED_RR priority (0 for SCHED_OTHER). */
  rtPriority: number;
  nice: number;
  resetOnFork: boolean;
  /** Why SCHED_RR was not taken (EPERM in a cgroup without an RT budget, no CAP_SYS_NICE). */
  realtimeRefused?: string;
  /** Nothing was raised: keys may lag on a busy machine. */
  error?: string;
}

type SetScheduler = (pid: number, policy: number, param: Buffer) => number;
let setSchedulerFn: SetScheduler | undefined;

function setScheduler(policy: number, priority: number, pid = 0): string | undefined {
  if (!setSchedulerFn) {
    const f = koffi.load('libc.so.6').func('int sched_setscheduler(int pid, int policy, void *param)');
    setSchedulerFn = f as SetScheduler;
  }
  const param = Buffer.alloc(4); // struct sched_param { int sched_priority }
  param.writeInt32LE(priority);
  return setSchedulerFn(pid, policy, param) === 0 ? undefined : errnoName(koffi.errno());
}

/**
 * Put the calling thread (kvmux's main thread: every key is read, routed and written to X there)
 * ahead of normal tasks. Forwarding costs one more process wake-up than bare XTEST; on a busy CPU
 * a nice -10 wake-up still waited up to 3-4 ms behind the running task's slice (EEVDF does not
 * preempt for weight), while a SCHED_RR wake-up preempts at once. One thread at a low RT
 * priority, as KWin does for its main thread; the kernel's RT throttling (95%) still bounds it.
 * Reset-on-fork keeps the VMs, X servers and worker threads kvmux starts at their normal priority.
 */
export function raiseInputPriority(wanted: InputPriorityWanted = {}): InputPriority {
  const rtPriority = wanted.rtPriority ?? INPUT_RT_PRIORITY;
  let realtimeRefused: string | undefined;
  if (wanted.realtime ?? true) {
    const failed = trySetScheduler(SCHED_RR | SCHED_RESET_ON_FORK, rtPriority);
    if (!failed) return { policy: 'rr', rtPriority, nice: getPriority(), resetOnFork: true };
    realtimeRefused = `sched_setscheduler(SCHED_RR): ${failed}`;
  }
  const other = { policy: 'other' as const, rtPriority: 0, ...(realtimeRefused ? { realtimeRefused } : {}) };
  const failed = trySetScheduler(SCHED_OTHER | SCHED_RESET_ON_FORK, 0);
  // without reset-on-fork every child would inherit a raised priority: then leave it
  if (failed)
    return { ...other, nice: getPriority(), resetOnFork: false, error: `sched_setscheduler: ${failed}` };
  try {
    setPriority(wanted.nice ?? INPUT_NICE);
  } catch (err) {
    return { ...other, nice: getPriority(), resetOnFork: true, error: `setpriority: ${errText(err)}` };
  }
  return { ...other, nice: getPriority(), resetOnFork: true };
}

/**
 * The main thread of process `pid` (another process: an X server) at SCHED_RR `rtPriority`, or
 * back at SCHED_OTHER with 0. Reset-on-fork: what it starts (xkbcomp) stays normal. Other threads
 * of the process keep their policy. Returns the errno name when refused (ESRCH: it is gone).
 * CPUs (see affinity.ts): a raised process joins kvmux's pinned input thread on its CPU (all its
 * threads; what it starts meanwhile inherits that CPU); a lowered one gets kvmux's CPUs back, also
 * when this kvmux pins nothing (an earlier one, killed, may have pinned it). Best effort: the
 * priority is what matters most.
 */
export function setProcessScheduling(pid: number, rtPriority: number): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return 'EINVAL';
  const policy = (rtPriority > 0 ? SCHED_RR : SCHED_OTHER) | SCHED_RESET_ON_FORK;
  const failed = trySetScheduler(policy, rtPriority, pid);
  if (failed) return failed;
  const cpus = cpusFor(rtPriority > 0);
  if (cpus) setProcessAffinity(pid, cpus);
  return undefined;
}

/**
 * Where a process goes: joined, the input thread's CPU (none when nothing is pinned); else kvmux's
 * CPUs before the pin, or its current ones when it pins nothing.
 */
function cpusFor(join: boolean): readonly number[] | null {
  const cpu = inputCpu();
  if (join) return cpu === null ? null : [cpu];
  return allCpus() ?? getAffinity();
}

/**
 * Every thread of `pid` on the input thread's CPU (`join`) or on kvmux's CPUs before the pin;
 * nothing to do (undefined) when the input thread is not pinned. The errno name if refused.
 */
export function joinInputCpu(pid: number, join: boolean): string | undefined {
  const cpus = inputCpu() === null ? null : cpusFor(join);
  return cpus ? setProcessAffinity(pid, cpus) : undefined;
}

function trySetScheduler(policy: number, priority: number, pid = 0): string | undefined {
  try {
    return setScheduler(policy, priority, pid);
  } catch (err) {
    return errText(err);
  }
}
