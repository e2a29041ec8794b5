import { chmod, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { errnoName, KvmuxError } from '../../util/errors.js';
import { type Logger, silentLogger } from '../../util/log.js';
import type { AuditLog } from '../auth/audit.js';
import type { Authenticator } from '../auth/auth.js';
import { defaultLockout, type LockoutConfig, type LockoutState } from '../auth/lockout.js';
import { compilePolicy, type PolicyRule } from '../auth/policy.js';
import { Connection } from './connection.js';
import { type ConfirmFn, type ControlLimits, defaultLimits, type ServerCore } from './core.js';
import type { Caller, RpcMethod } from './method.js';
import { withOwnReadBuffer } from './own-read-buffer.js';

export interface ControlServerOptions {
  /** The method table; more rows can be added later with `register`. */
  methods?: readonly RpcMethod[];
  /** Guest-channel policy (config `policy`); first match wins, no match denies. */
  policy?: readonly PolicyRule[];
  /** Checks guest passwords; without one every guest login fails. */
  authenticator?: Authenticator;
  /** Asked for `action: ask` rules; without one `ask` denies. */
  confirm?: ConfirmFn;
  audit?: AuditLog;
  log?: Logger;
  limits?: Partial<ControlLimits>;
  lockout?: LockoutConfig;
  /** Clock for idle timeout, lockout and rate limits (tests pass their own). */
  now?: () => number;
  /** Called as a `bulk` method (a transfer's chunk) is called. */
  onBulk?: () => void;
}

export interface ControlServer {
  register(methods: RpcMethod | readonly RpcMethod[]): void;
  setPolicy(rules: readonly PolicyRule[]): void;
  /** Serve the local root socket at `path` (mode 0600). */
  listen(path: string): Promise<void>;
  /** Serve one already-connected stream (a guest channel, a test pipe) as `caller`. */
  attach(stream: Duplex, caller: Caller): Connection;
  readonly methods: ReadonlyMap<string, RpcMethod>;
  readonly connections: ReadonlySet<Connection>;
  close(): Promise<void>;
}

export function createControlServer(opts: ControlServerOptions = {}): ControlServer {
  const methods = new Map<string, RpcMethod>();
  const connections = new Set<Connection>();
  const core: ServerCore = {
    methods,
    policy: compilePolicy(opts.policy ?? []),
    authenticator: opts.authenticator ?? null,
    confirm: opts.confirm ?? null,
    audit: opts.audit ?? null,
    log: opts.log ?? silentLogger,
    limits: { ...defaultLimits, ...opts.limits },
    lockout: opts.lockout ?? defaultLockout,
    lockouts: new Map<string, LockoutState>(),
    onBulk: opts.onBulk ?? null,
    now: opts.now ?? Date.now,
  };
  let listener: Server | null = null;
  let socketPath: string | null = null;

  const register = (rows: RpcMethod | readonly RpcMethod[]) => {
    for (const m of Array.isArray(rows) ? rows : [rows as RpcMethod]) {
      if (methods.has(m.name) || m.name === 'auth.login' || m.name === 'auth.logout') {
        throw new KvmuxError(`control method "${m.name}" is registered twice`);
      }
      methods.set(m.name, m);
    }
  };
  register(opts.methods ?? []);

  const attach = (stream: Duplex, caller: Caller) => {
    const conn = new Connection(core, stream, caller);
    connections.add(conn);
    void conn.closed.then(() => connections.delete(conn));
    return conn;
  };

  /** A local peer: its socket reads into one reused buffer when it can (the upload path's cost). */
  const attachLocal = (accepted: Socket) => {
    let conn: Connection | null = null;
    const own = withOwnReadBuffer(accepted, {
      bytes: (chunk) => conn?.receive(chunk),
      target: () => conn?.readTarget() ?? null,
      landed: (n) => conn?.landed(n),
    });
    if (!own) {
      attach(accepted, { kind: 'local' });
      accepted.resume();
      return;
    }
    conn = new Connection(core, own, { kind: 'local' }, { reusedChunks: true });
    connections.add(conn);
    const c = conn;
    void c.closed.then(() => connections.delete(c));
  };

  return {
    register,
    setPolicy(rules) {
      core.policy = compilePolicy(rules);
    },
    async listen(path) {
      if (listener) throw new KvmuxError(`control server already listens on ${socketPath}`);
      listener = await listenPrivate(path, (sock) => attachLocal(sock), core.log);
      socketPath = path;
    },
    attach,
    methods,
    connections,
    async close() {
      for (const c of connections) c.close();
      if (listener) {
        const l = listener;
        await new Promise<void>((resolve) => l.close(() => resolve()));
        listener = null;
      }
      if (socketPath) await rm(socketPath, { force: true });
      await opts.audit?.close();
    },
  };
}

/**
 * Listen on a temp name, chmod 0600, then rename over `path`: no moment exists where the socket is
 * reachable with a looser mode. A live server at `path` is an error; a stale socket is replaced.
 */
async function listenPrivate(path: string, onSocket: (s: Socket) => void, log: Logger): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await refuseLiveSocket(path);
  const tmp = `${path}.${process.pid}.tmp`;
  await rm(tmp, { force: true });
  // paused: withOwnReadBuffer may only swap a socket that never read
  const server = createServer({ pauseOnConnect: true }, onSocket);
  server.on('error', (err) => log.error({ err, path }, 'control socket error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return server;
}

async function refuseLiveSocket(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) throw new KvmuxError(`${path}: exists and is not a socket; refusing to replace it`);
  } catch (err) {
    if (errnoName(err) === 'ENOENT') return;
    throw err;
  }
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new KvmuxError(`${path}: another kvmux service is already listening there`);
}
