import { closeSync, constants, openSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { Duplex } from 'node:stream';
import { isatty, ReadStream, WriteStream } from 'node:tty';
import { KvmuxError, RpcCode, RpcError } from '../../util/errors.js';
import { DeviceStream } from './device-stream.js';
import { binaryHeader, LineSplitter } from './framing.js';

/**
 * JSON-RPC client over any byte stream: the local unix socket, or inside a guest the channel's
 * character device (/dev/virtio-ports/org.kvmux.control, /dev/vportNpM, or a serial tty).
 */
export interface RpcClientOptions {
  /** Per-call timeout (default 30 s). */
  timeoutMs?: number;
  /** Longest reply line accepted (default 64 MiB: audit.tail and vm lists can be long). */
  maxLineBytes?: number;
}

interface Pending {
  /** callBinary: resolve with {result, binary} instead of the bare result. */
  raw?: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
}

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly splitter: LineSplitter;
  private closedError: Error | null = null;

  constructor(
    private readonly stream: Duplex,
    private readonly opts: RpcClientOptions = {},
  ) {
    this.splitter = new LineSplitter(opts.maxLineBytes ?? 64 << 20);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.failAll(err));
    stream.on('close', () => this.failAll(new KvmuxError('control channel closed')));
  }

  /** Call `method`; resolves with `result`, rejects with RpcError(code, message). */
  call<T = unknown>(method: string, params?: unknown, timeoutMs = this.opts.timeoutMs ?? 30_000): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const body = { jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new KvmuxError(`${method}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.stream.write(`${JSON.stringify(body)}\n`);
    });
  }

  /**
   * Call with raw bytes attached (`#bin N` framing, no base64) and/or accept raw bytes back
   * (e.g. `image.download.chunk {binary: true}`).
   */
  callBinary<T = unknown>(
    method: string,
    params: unknown,
    payload?: Buffer,
    timeoutMs = this.opts.timeoutMs ?? 30_000,
  ): Promise<{ result: T; binary: Buffer | undefined }> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const body = `${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new KvmuxError(`${method}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { raw: true, resolve: resolve as (v: unknown) => void, reject, timer });
      if (payload) {
        this.stream.write(binaryHeader(payload.length));
        this.stream.write(payload);
      }
      this.stream.write(body);
    });
  }

  /** Fire and forget (a JSON-RPC notification: the server sends no reply). */
  notify(method: string, params?: unknown): void {
    this.stream.write(
      `${JSON.stringify({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) })}\n`,
    );
  }

  close(): void {
    this.failAll(new KvmuxError('control client closed'));
    this.stream.destroy();
  }

  private onData(chunk: Buffer): void {
    for (const ev of this.splitter.push(chunk)) {
      if (ev.type !== 'line') continue;
      let msg: { id?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } };
      try {
        msg = JSON.parse(ev.line.toString('utf8'));
      } catch {
        continue;
      }
      const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
      if (!p) continue;
      this.pending.delete(msg.id as number);
      clearTimeout(p.timer);
      if (msg.error)
        p.reject(new RpcError(msg.error.code ?? RpcCode.internal, msg.error.message, msg.error.data));
      else p.resolve(p.raw ? { result: msg.result, binary: ev.binary } : msg.result);
    }
  }

  private failAll(err: Error): void {
    this.closedError ??= err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}

/** Connect to a unix socket path (the service's control.sock). */
export function connectSocket(path: string, opts?: RpcClientOptions): Promise<RpcClient> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(new RpcClient(s, opts));
    });
    s.once('error', (err) =>
      reject(new KvmuxError(`${path}: cannot connect: ${err.message}`, { cause: err })),
    );
  });
}

/**
 * Open a guest-side channel device. A serial tty (VirtualBox UART) goes through libuv's tty handle
 * in raw mode (no echo, no line editing); a virtio port is not a tty and is polled non-blocking
 * (see DeviceStream: a blocking read would keep the process from exiting).
 */
export function openDevice(path: string, opts?: RpcClientOptions): RpcClient {
  const fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY);
  if (isatty(fd)) {
    const input = new ReadStream(fd);
    input.setRawMode(true);
    const output = new WriteStream(fd);
    return new RpcClient(Duplex.from({ readable: input, writable: output }), opts);
  }
  closeSync(fd);
  return new RpcClient(DeviceStream.open(path), opts);
}

/** A socket path when it is a socket, else a device. */
export async function openChannel(path: string, opts?: RpcClientOptions): Promise<RpcClient> {
  return statSync(path).isSocket() ? connectSocket(path, opts) : openDevice(path, opts);
}
