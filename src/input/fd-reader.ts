import { closeSync, fstatSync, readSync } from 'node:fs';
import { DeviceError, errnoName } from '../util/errors.js';
import type { InputEvent } from './event.js';
import { type PollHandle, pollReadable } from './libc.js';
import { RecordSplitter } from './record-splitter.js';

const INPUT_MAJOR = 13;
const CHUNK = 64 * 1024;

export interface ReaderCallbacks {
  onEvent(ev: InputEvent): void;
  /** The fd failed or the device vanished (ENODEV on unplug); the reader is closed already. */
  onError(err: DeviceError): void;
}

/** Linux `major()` of a dev_t (glibc encoding). */
export function devMajor(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

/**
 * koffi aborts the whole process when epoll refuses an fd (/dev/null, regular files), so only fds
 * known to support poll get a watcher: FIFOs, input devices, and ptys for tests.
 */
export function assertPollable(path: string, fd: number): void {
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) return;
  if (
    st.isCharacterDevice() &&
    [INPUT_MAJOR, 5, 136, 137, 138, 139, 140, 141, 142, 143].includes(devMajor(st.rdev))
  )
    return;
  throw new DeviceError(
    path,
    `not an input device, FIFO or pty (major ${devMajor(st.rdev)}); cannot poll it`,
  );
}

/**
 * Reads input_event records from a nonblocking fd whenever libuv's poll says it is readable.
 * Each wake-up drains the fd with nonblocking reads on the main thread (EAGAIN ends it).
 */
export class FdEventReader {
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private readonly splitter = new RecordSplitter();
  private handle: PollHandle | undefined;
  private closed = false;

  constructor(
    readonly path: string,
    readonly fd: number,
    private readonly cb: ReaderCallbacks,
    /** Close the fd on close() (false when the owner keeps using it, e.g. for ioctls). */
    private readonly ownsFd = true,
  ) {}

  start(): void {
    assertPollable(this.path, this.fd);
    this.handle = pollReadable(this.fd, (status) => {
      if (status < 0) this.fail(`poll failed: status ${status}`);
      else this.drain();
    });
  }

  private drain(): void {
    // At most 64 reads per wake-up: poll is level-triggered, so the rest waits one loop turn
    // instead of starving timers and other fds.
    for (let i = 0; i < 64 && !this.closed; i++) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, CHUNK, null);
      } catch (err) {
        if (errnoName(err) === 'EAGAIN') return;
        this.fail(`read failed: ${errnoName(err)}`, err);
        return;
      }
      if (n === 0) {
        this.fail('end of file');
        return;
      }
      this.splitter.push(this.buf.subarray(0, n), this.path, (ev) => this.cb.onEvent(ev));
      if (n < CHUNK) return;
    }
  }

  private fail(message: string, cause?: unknown): void {
    if (this.closed) return;
    this.close();
    this.cb.onError(new DeviceError(this.path, message, { cause }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle?.close();
    if (this.ownsFd) closeSync(this.fd);
  }
}
