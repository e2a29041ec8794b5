import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, errnoName, KvmuxError } from '../util/errors.js';

/** A QMP event, e.g. SHUTDOWN, POWERDOWN, BALLOON_CHANGE. */
export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
  readonly timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  readonly QMP: {
    version: { qemu: { major: number; minor: number; micro: number } };
    capabilities: unknown[];
  };
}

export interface QmpConnectOptions {
  /** Names the VM in errors. */
  readonly label: string;
  /** Keep retrying while the socket is not there yet (QEMU still starting), up to this long. */
  readonly timeoutMs?: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * QMP client over a unix socket: greeting, qmp_capabilities, `execute` matched by id, and async
 * events emitted as 'event'. 'close' fires when QEMU goes away; reconnecting is a new `connect`.
 */
export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private buffer = '';
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    readonly label: string,
    readonly greeting: QmpGreeting,
    leftover: string,
  ) {
    super();
    socket.on('data', (chunk) => this.onData(chunk.toString('utf8')));
    socket.on('close', () => this.onClose());
    socket.on('error', () => this.onClose());
    if (leftover) this.onData(leftover);
  }

  static async connect(path: string, opts: QmpConnectOptions): Promise<QmpClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      try {
        const { socket, greeting, leftover } = await openOnce(path);
        const client = new QmpClient(socket, opts.label, greeting, leftover);
        await client.execute('qmp_capabilities');
        return client;
      } catch (err) {
        if (Date.now() >= deadline)
          throw new BackendError(opts.label, `QMP ${path}: cannot connect: ${errnoName(err)}`, {
            cause: err,
          });
        await sleep(100);
      }
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closed) return Promise.reject(new BackendError(this.label, `QMP ${command}: connection closed`));
    const id = `k${this.nextId++}`;
    const msg = args ? { execute: command, arguments: args, id } : { execute: command, id };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BackendError(this.label, `QMP ${command}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Resolves with the first event named `name` (or null after timeoutMs). */
  waitEvent(name: string, timeoutMs: number): Promise<QmpEvent | null> {
    return new Promise((resolve) => {
      const onEvent = (ev: QmpEvent) => {
        if (ev.event !== name) return;
        done(ev);
      };
      const done = (ev: QmpEvent | null) => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
        resolve(ev);
      };
      const onClose = () => done(null);
      const timer = setTimeout(() => done(null), timeoutMs);
      this.on('event', onEvent);
      this.once('close', onClose);
    });
  }

  close(): void {
    this.socket.destroy();
    this.onClose();
  }

  private onData(text: string): void {
    this.buffer += text;
    let nl = this.buffer.indexOf('\n');
    while (nl >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
      nl = this.buffer.indexOf('\n');
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // QEMU only sends JSON; a torn line means the socket is going away anyway
    }
    if (typeof msg['event'] === 'string') {
      this.emit('event', msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg['id'] === 'string' ? msg['id'] : undefined;
    const p = id ? this.pending.get(id) : undefined;
    if (!p || !id) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    const error = msg['error'] as { class?: string; desc?: string } | undefined;
    if (error) p.reject(new BackendError(this.label, `QMP error ${error.class ?? '?'}: ${error.desc ?? ''}`));
    else p.resolve(msg['return']);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new BackendError(this.label, 'QMP connection closed'));
    }
    this.pending.clear();
    this.emit('close');
  }
}

/** Connect and read the greeting line; anything after it is handed on. */
function openOnce(path: string): Promise<{ socket: Socket; greeting: QmpGreeting; leftover: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buf = '';
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new KvmuxError('no QMP greeting within 5 s')), 5000);
    socket.on('error', fail);
    socket.on('data', function onData(chunk) {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      try {
        const greeting = JSON.parse(buf.slice(0, nl)) as QmpGreeting;
        if (!greeting.QMP) throw new KvmuxError(`not a QMP greeting: ${buf.slice(0, 80)}`);
        resolve({ socket, greeting, leftover: buf.slice(nl + 1) });
      } catch (err) {
        fail(err as Error);
      }
    });
  });
}
