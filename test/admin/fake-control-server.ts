import { createServer, type Server, type Socket } from 'node:net';

/**
 * A FAKE control service for the admin TUI tests: a real JSON-RPC 2.0 server on a real unix
 * socket, but with an in-test record of VM states behind a small method table instead of the
 * service (adapter-level fake, per the house rules). Lockout after 3 wrong passwords per server.
 */
export interface FakeVm {
  name: string;
  backend: string;
  state: string;
  pid: number | null;
  memoryMiB: number;
  resources?: Record<string, unknown>;
  frozen?: boolean;
}

export interface FakeControl {
  readonly vms: FakeVm[];
  readonly calls: Array<{ method: string; params: unknown }>;
  close(): Promise<void>;
}

export type Handler = (params: Record<string, unknown>) => unknown;

class Fail extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startFakeControl(
  path: string,
  password: string,
  vms: FakeVm[],
  /** More methods, or replacements (e.g. a first-boot `auth.status`). */
  extra: Record<string, Handler> = {},
): Promise<FakeControl> {
  const calls: FakeControl['calls'] = [];
  let failures = 0;
  const vm = (p: Record<string, unknown>) => {
    const v = vms.find((x) => x.name === p['name']);
    if (!v) throw new Fail(-32004, `vm "${String(p['name'])}" not found`);
    return v;
  };
  const methods: Record<string, Handler> = {
    'auth.login': (p) => {
      if (failures >= 3) throw new Fail(-32001, 'too many failed logins: locked, retry in 60 s');
      if (p['password'] !== password) {
        failures++;
        throw new Fail(-32001, failures >= 3 ? 'wrong password; now locked out' : 'wrong password');
      }
      failures = 0;
      return { ok: true };
    },
    'vm.list': () => vms.map((v) => ({ ...v })),
    'vm.stop': (p) => {
      const v = vm(p);
      v.state = 'stopped';
      v.pid = null;
      return { ok: true };
    },
    'vm.start': (p) => {
      const v = vm(p);
      v.state = 'running';
      v.pid = 4242;
      return { ok: true };
    },
    'vm.setMemory': (p) => {
      const v = vm(p);
      v.memoryMiB = Number(p['memoryMiB']);
      return { live: v.state === 'running' };
    },
    'vm.setResources': (p) => {
      const v = vm(p);
      const { name: _name, ...r } = p;
      v.resources = r;
      return { live: v.state === 'running', resources: r };
    },
    'vm.hibernate': (p) => {
      const v = vm(p);
      v.frozen = true;
      return { ...v };
    },
    'vm.update': (p) => {
      const v = vm(p);
      if (typeof p['memoryMiB'] === 'number') v.memoryMiB = p['memoryMiB'];
      const live = v.state === 'running';
      return { live: live ? ['memoryMiB'] : [], nextStart: live ? [] : ['memoryMiB'] };
    },
    'display.list': () =>
      vms.map((v, i) => ({ name: v.name, display: `:${150 + i}`, vt: null, active: i === 0 })),
    ...extra,
  };
  const handle = (line: string): string => {
    const req = JSON.parse(line) as { id: number; method: string; params?: Record<string, unknown> };
    calls.push({ method: req.method, params: req.params });
    const fn = methods[req.method];
    try {
      if (!fn) throw new Fail(-32601, `method "${req.method}" not found`);
      return JSON.stringify({ jsonrpc: '2.0', id: req.id, result: fn(req.params ?? {}) ?? null });
    } catch (err) {
      const e = err instanceof Fail ? err : new Fail(-32603, String(err));
      return JSON.stringify({ jsonrpc: '2.0', id: req.id, error: { code: e.code, message: e.message } });
    }
  };
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) sock.write(`${handle(line)}\n`);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    vms,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
