import { close, constants, openSync, read, write } from 'node:fs';
import { Duplex } from 'node:stream';

/**
 * A Duplex over a non-tty character device (a virtio-serial port) opened O_NONBLOCK. libuv has no
 * event-driven handle for such devices, and a blocking read parked in the thread pool would keep
 * the process from ever exiting; so reads poll: immediately again after data, backing off to
 * `maxPollMs` while idle.
 */
const READ_SIZE = 1 << 16;

export class DeviceStream extends Duplex {
  private timer: NodeJS.Timeout | null = null;
  private reading = false;
  private delayMs = 1;

  constructor(
    readonly fd: number,
    private readonly maxPollMs = 20,
  ) {
    super();
  }

  static open(path: string, maxPollMs?: number): DeviceStream {
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOCTTY);
    return new DeviceStream(fd, maxPollMs);
  }

  override _read(): void {
    if (!this.reading) this.pull();
  }

  private pull(): void {
    this.timer = null;
    if (this.destroyed) return;
    this.reading = true;
    const buf = Buffer.allocUnsafe(READ_SIZE);
    read(this.fd, buf, 0, READ_SIZE, null, (err, n) => {
      this.reading = false;
      if (this.destroyed) return;
      if (err && (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK')) return this.idle();
      if (err) return void this.destroy(err);
      if (n === 0) return void this.push(null);
      this.delayMs = 1;
      if (this.push(buf.subarray(0, n))) this.pull();
    });
  }

  private idle(): void {
    this.timer = setTimeout(() => this.pull(), this.delayMs);
    this.delayMs = Math.min(this.maxPollMs, this.delayMs * 2);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll(chunk, 0, 1, cb);
  }

  private writeAll(chunk: Buffer, off: number, delay: number, cb: (err?: Error | null) => void): void {
    if (off >= chunk.length) {
      cb();
      return;
    }
    write(this.fd, chunk, off, chunk.length - off, null, (err, n) => {
      if (err && (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK')) {
        // the other side is not draining yet: retry, backing off
        setTimeout(() => this.writeAll(chunk, off, Math.min(this.maxPollMs, delay * 2), cb), delay);
        return;
      }
      if (err) return cb(err);
      this.writeAll(chunk, off + n, 1, cb);
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    close(this.fd, () => cb(err));
  }
}
