import { getPriority, setPriority } from 'node:os';
import koffi from 'koffi';
import { errText } from './errors.js';

const SCHED_OTHER = 0;
/** Children (QEMU, X servers, xterm) start at nice 0 again instead of inheriting kvmux's. */
const SCHED_RESET_ON_FORK = 0x40000000;

/** Nice of the input path: ahead of batch work (a VM's CPU, a build) but not real-time. */
export const INPUT_NICE = -10;

/**
 * Give kvmux's main thread (where every key is read, routed and written to X) a higher CPU share,
 * so a key is not queued behind a busy process on a loaded machine: forwarding costs one more
 * process wake-up than bare XTEST, and under load that wake-up is where the tail came from.
 * Reset-on-fork keeps the VMs and X servers kvmux starts at their normal priority.
 */
export function raiseInputPriority(nice = INPUT_NICE): {
  nice: number;
  resetOnFork: boolean;
  error?: string;
} {
  let resetOnFork = false;
  try {
    const lib = koffi.load('libc.so.6');
    const setScheduler = lib.func('int sched_setscheduler(int pid, int policy, void *param)');
    const param = Buffer.alloc(4); // struct sched_param { int sched_priority = 0 }
    resetOnFork = setScheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, param) === 0;
    // without reset-on-fork every child would inherit the raised priority: then leave it
    if (!resetOnFork)
      return { nice: getPriority(), resetOnFork, error: `sched_setscheduler: errno ${koffi.errno()}` };
    setPriority(nice);
    return { nice: getPriority(), resetOnFork };
  } catch (err) {
    return { nice: getPriority(), resetOnFork, error: errText(err) };
  }
}
