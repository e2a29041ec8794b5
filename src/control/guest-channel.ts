import { connect, type Socket } from 'node:net';
import { type Logger, silentLogger } from '../util/log.js';
import type { Connection } from './rpc/connection.js';
import type { ControlServer } from './rpc/server.js';

/**
 * The host side of one VM's guest channel. QEMU (`-chardev socket,…,server=on,wait=off`) and
 * VirtualBox (UART host pipe in server mode) own the listening socket, so kvmux connects as a client
 * and keeps reconnecting with backoff: the socket appears only once the VM runs, and a VM restart
 * closes it. Each connection is a fresh session (logged out); the caller is always `vm`.
 */
export interface GuestChannelOptions {
  vm: string;
  /** e.g. `<runDir>/vm/<name>/control.sock`. */
  path: string;
  log?: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface GuestChannel {
  readonly vm: string;
  readonly connected: boolean;
  /** Resolves on the next successful connect (now, if connected). */
  whenConnected(): Promise<void>;
  /** Drop the current session (e.g. the VM restarted) and reconnect; when waiting, dial at once. */
  reset(): void;
  /** Stop for good (VM removed or service stopping). */
  close(): void;
}

export function attachGuestChannel(server: ControlServer, opts: GuestChannelOptions): GuestChannel {
  const log = opts.log ?? silentLogger;
  const minMs = opts.minBackoffMs ?? 200;
  const maxMs = opts.maxBackoffMs ?? 5_000;
  let backoff = minMs;
  let socket: Socket | null = null;
  let conn: Connection | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let waiters: (() => void)[] = [];

  const schedule = () => {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = null;
      dial();
    }, backoff);
    backoff = Math.min(maxMs, backoff * 2);
  };

  const dial = () => {
    if (closed) return;
    const s = connect(opts.path);
    socket = s;
    s.once('connect', () => {
      backoff = minMs;
      conn = server.attach(s, { kind: 'guest', vm: opts.vm });
      log.info({ vm: opts.vm, path: opts.path }, 'guest channel connected');
      for (const w of waiters) w();
      waiters = [];
    });
    s.once('error', (err) => log.debug({ vm: opts.vm, err: err.message }, 'guest channel not reachable'));
    s.once('close', () => {
      if (conn) log.info({ vm: opts.vm }, 'guest channel closed; session ended');
      conn = null;
      socket = null;
      schedule();
    });
  };

  dial();
  return {
    vm: opts.vm,
    get connected() {
      return conn !== null;
    },
    whenConnected() {
      return conn ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
    reset() {
      backoff = minMs;
      if (socket) {
        socket.destroy();
        return;
      }
      // waiting out a backoff: the VM just (re)started, so try now
      if (timer) clearTimeout(timer);
      timer = null;
      dial();
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      socket?.destroy();
    },
  };
}
