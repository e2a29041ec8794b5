import koffi from 'koffi';
import { errnoName } from '../input/libc.js';
import { errText } from './errors.js';

/**
 * EEVDF slices (Linux ≥ 6.12): a normal (SCHED_OTHER) thread may ask for a shorter slice through
 * sched_attr.sched_runtime. It gets no more CPU than before (that is still its weight, its nice),
 * but an earlier virtual deadline: woken, it preempts a task that has been running (a guest's
 * vCPU, a build) instead of waiting out that task's slice, 1.4 ms on a 2-CPU machine. The kernel
 * takes 0.1-100 ms; 0 is its default again. Older kernels would accept the call and ignore the
 * value; they report no slice (0) for a normal thread, so setSlice says ENOTSUP before writing.
 */
export const MIN_SLICE_NS = 100_000;

/** Kernel's sched_attr, SCHED_ATTR_SIZE_VER1 (with the utilisation clamps, left untouched). */
const ATTR_BYTES = 56;
const SCHED_OTHER = 0;
const SCHED_BATCH = 3;
const SCHED_FLAG_RESET_ON_FORK = 0x01;
/** sched_setattr / sched_getattr by architecture (no glibc wrappers before 2.41): x86-64, and the generic table. */
const GENERIC = { set: 274, get: 275 };
const SYSCALLS: Partial<Record<string, { set: number; get: number }>> = {
  x64: { set: 314, get: 315 },
  arm64: GENERIC,
  riscv64: GENERIC,
  loong64: GENERIC,
};

type Syscall = (nr: number, ...typed: unknown[]) => number;
let syscallFn: Syscall | undefined;

function syscall(nr: number, tid: number, attr: Buffer, a: number, b: number): number {
  syscallFn ??= koffi.load('libc.so.6').func('long syscall(long number, ...)') as unknown as Syscall;
  return syscallFn(nr, 'int', tid, 'void *', attr, 'unsigned int', a, 'unsigned int', b);
}

interface Attr {
  policy: number;
  nice: number;
  runtimeNs: number;
}

function getAttr(nr: { get: number }, tid: number): Attr | string {
  const a = Buffer.alloc(ATTR_BYTES);
  if (syscall(nr.get, tid, a, ATTR_BYTES, 0) !== 0) return errnoName(koffi.errno());
  return {
    policy: a.readUInt32LE(4),
    nice: a.readInt32LE(16),
    runtimeNs: Number(a.readBigUInt64LE(24)),
  };
}

/**
 * Thread `tid` (a process's main thread: its pid) asks for `sliceNs` slices (0: the kernel's
 * default). The short slice is the thread's own: it is set with reset-on-fork, so the threads and
 * children it starts meanwhile (QEMU's I/O workers) begin with the default, which an inherited
 * slice would not (checked on 6.18). The default clears that flag again (processes kvmux starts
 * never have it: kvmux's own is cleared in its children); without CAP_SYS_NICE the kernel refuses
 * that (EPERM), and the flag then stays, which costs nothing but a negative nice in its children.
 * Policy and nice stay as they are.
 *
 * The errno name when refused (ESRCH: it is gone); EPOLICY for a thread that is not
 * SCHED_OTHER/BATCH (real-time or idle: slices are not theirs); ENOTSUP when this kernel has no
 * custom slices: before 6.12 it reports no slice for a normal thread (0), and nothing is written;
 * ENOSYS on an architecture whose syscall numbers kvmux does not know.
 */
export function setSlice(tid: number, sliceNs: number): string | undefined {
  if (!Number.isInteger(tid) || tid <= 0 || !Number.isInteger(sliceNs) || sliceNs < 0) return 'EINVAL';
  const nr = SYSCALLS[process.arch];
  if (!nr) return 'ENOSYS';
  try {
    const now = getAttr(nr, tid);
    if (typeof now === 'string') return now;
    if (now.policy !== SCHED_OTHER && now.policy !== SCHED_BATCH) return 'EPOLICY';
    if (now.runtimeNs === 0) return 'ENOTSUP';
    const set = (flags: number) => {
      const a = Buffer.alloc(ATTR_BYTES);
      a.writeUInt32LE(ATTR_BYTES, 0);
      a.writeUInt32LE(now.policy, 4);
      a.writeBigUInt64LE(BigInt(flags), 8);
      a.writeInt32LE(now.nice, 16);
      a.writeBigUInt64LE(BigInt(sliceNs), 24);
      return syscall(nr.set, tid, a, 0, 0) === 0 ? undefined : errnoName(koffi.errno());
    };
    const failed = set(sliceNs > 0 ? SCHED_FLAG_RESET_ON_FORK : 0);
    // only a privileged caller may clear reset-on-fork: the default slice then keeps the flag
    return failed === 'EPERM' && sliceNs === 0 ? set(SCHED_FLAG_RESET_ON_FORK) : failed;
  } catch (err) {
    return errText(err);
  }
}

/** The slice thread `tid` runs with now (ns), as the kernel reports it; the errno name if unreadable. */
export function sliceOf(tid: number): number | string {
  const nr = SYSCALLS[process.arch];
  if (!nr) return 'ENOSYS';
  try {
    const a = getAttr(nr, tid);
    return typeof a === 'string' ? a : a.runtimeNs;
  } catch (err) {
    return errText(err);
  }
}
