import koffi from 'koffi';
import { SyscallError } from '../util/errors.js';

/** The few libc calls Node has no API for. Loaded once, on first use. */
interface Libc {
  ioctl: (...args: unknown[]) => unknown;
}
let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  libc = { ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)') };
  return libc;
}

/** errno name for a number (`ENOTTY`), falling back to the number. */
export function errnoName(n: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === n) return name;
  return `errno ${n}`;
}

export { SyscallError };

/** ioctl whose argument is a buffer the kernel reads or fills in place. */
export function ioctlBuffer(fd: number, request: number, buf: Buffer): number {
  const r = load().ioctl(fd, request, 'void *', buf) as number;
  if (r < 0) throw new SyscallError(`ioctl 0x${request.toString(16)}`, errnoName(koffi.errno()));
  return r;
}

/** ioctl whose argument is an int passed by value (EVIOCGRAB). */
export function ioctlInt(fd: number, request: number, value: number): number {
  const r = load().ioctl(fd, request, 'int', value) as number;
  if (r < 0) throw new SyscallError(`ioctl 0x${request.toString(16)}`, errnoName(koffi.errno()));
  return r;
}

export interface PollHandle {
  stop(): void;
  close(): void;
}

/**
 * Watch an fd for readability on the libuv loop itself (uv_poll, epoll): the reads that follow are
 * nonblocking and on the main thread, so no libuv thread-pool worker ever sits in a blocking read.
 */
export function pollReadable(fd: number, onReadable: (status: number) => void): PollHandle {
  // koffi calls back (status, events) although its typings say (events).
  const cb = ((status: number) => onReadable(status)) as unknown as (ev: unknown) => void;
  return koffi.node.poll(fd, { readable: true }, cb);
}
