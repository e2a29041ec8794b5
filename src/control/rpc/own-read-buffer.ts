import { closeSync } from 'node:fs';
import { Socket, type SocketConstructorOpts } from 'node:net';
import koffi from 'koffi';

/**
 * The local socket's bulk path. A stream socket hands out every read (64 KiB) in a freshly
 * allocated Buffer; at upload rates those allocations, their page faults and the GC cost about a
 * core by themselves (measured: 600 MB/s and 280 ms of CPU per 256 MiB, against 2.2 GB/s and
 * 50 ms reading into one reused buffer). Node offers the reused buffer (`onread`) only to sockets it
 * constructs from an fd, not to a server's accepted ones; so the accepted socket's fd is dup'ed
 * and wrapped anew, and the original (never read: the server pauses on connect) is closed.
 */
export const READ_BUFFER_BYTES = 256 << 10;

/** Where a socket read with its own buffer delivers. */
export interface ReadSink {
  /** Bytes read into the shared buffer: valid only during the call. */
  bytes(chunk: Buffer): void;
  /**
   * Memory the reader wants the next read to fill in place instead (the rest of a `#bin`
   * attachment: it then skips one copy of every bulk byte), or null for the shared buffer.
   */
  target(): Buffer | null;
  /** `n` bytes were read straight into the buffer the last `target()` returned. */
  landed(n: number): void;
}

let dupFn: ((fd: number) => number) | null | undefined;

function dup(): ((fd: number) => number) | null {
  if (dupFn === undefined) {
    try {
      dupFn = koffi.load('libc.so.6').func('int dup(int)') as (fd: number) => number;
    } catch {
      dupFn = null;
    }
  }
  return dupFn;
}

/**
 * A socket equal to `accepted` whose reads land in one reused buffer and go to `sink.bytes` (valid
 * only during the call), or, while the sink has a target, straight into that. Null when that
 * cannot be done here (no libc dup, no fd): use `accepted` as it is then. `accepted` must come from a server with `pauseOnConnect: true`: a socket that
 * ever read is registered with the event loop under its fd and must not be swapped.
 */
export function withOwnReadBuffer(accepted: Socket, sink: ReadSink): Socket | null {
  const fd = (accepted as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  const d = dup();
  if (typeof fd !== 'number' || fd < 0 || !d) return null;
  const copy = d(fd);
  if (copy < 0) return null;
  const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  let sock: Socket;
  try {
    const onread = {
      // asked before every read (Node: the next read goes to what this returns)
      buffer: () => sink.target() ?? buffer,
      callback: (n: number, buf: Uint8Array) => {
        if (buf === buffer) sink.bytes(Buffer.from(buf.buffer, buf.byteOffset, n));
        else sink.landed(n);
        return true;
      },
    };
    // `onread` is a documented Socket constructor option that these typings leave out
    sock = new Socket({ fd: copy, readable: true, writable: true, onread } as SocketConstructorOpts);
  } catch {
    closeSync(copy);
    return null;
  }
  accepted.destroy();
  return sock;
}
