import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { connectSocket, type RpcClient } from '../../src/control/client.js';
import { FifoKeyboard, sleep } from '../../src/demo/fifo-keys.js';
import { isAlive } from '../../src/util/proc.js';

/**
 * A real `kvmux run` (the built CLI) in a temp dir with a FIFO keyboard and its control socket:
 * what a person and `kvmux ctl` see. Display numbers :200-:219 and VTs 30-35 belong to these tests.
 */
export const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js');

export interface Kvmux {
  dir: string;
  configPath: string;
  proc: ChildProcess;
  pid: number;
  kb: FifoKeyboard;
  call<T = unknown>(method: string, params?: unknown): Promise<T>;
  log(): string;
  /** kill -9 (VMs and X servers live on). */
  crash(): Promise<void>;
  /** Start `kvmux run` again on the same config and state. */
  restart(): Promise<Kvmux>;
  /** SIGTERM and wait; then remove the temp dir. */
  stop(): Promise<void>;
}

export interface KvmuxSpec {
  console?: 'vt' | 'virtual';
  vms: unknown[];
  admin?: boolean;
  extra?: Record<string, unknown>;
  /** Wait for these VM states after start (default: every VM running). */
  readyTimeoutMs?: number;
}

export function xevLogger(): string[] {
  // line-buffered so the test sees each event as it happens
  return ['stdbuf', '-oL', 'xev', '-event', 'keyboard'];
}

export async function startKvmux(spec: KvmuxSpec, reuseDir?: string): Promise<Kvmux> {
  const dir = reuseDir ?? mkdtempSync('/tmp/kvmux-e2e-');
  const fifo = join(dir, 'keyboard.fifo');
  const configPath = join(dir, 'kvmux.yaml');
  if (!reuseDir) {
    execFileSync('mkfifo', [fifo]);
    const cfg = {
      runDir: join(dir, 'run'),
      stateDir: join(dir, 'state'),
      console: spec.console ?? 'virtual',
      input: { devices: [fifo] },
      x: { firstDisplay: 200, firstVt: 30 },
      admin: { enabled: spec.admin ?? false },
      vmStopTimeoutSeconds: 3,
      vms: spec.vms,
      ...spec.extra,
    };
    writeFileSync(configPath, stringify(cfg));
  }
  const logFd = openSync(join(dir, 'kvmux.log'), 'a');
  const proc = spawn(process.execPath, [CLI, 'run', '--config', configPath], {
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  const log = () => readFileSync(join(dir, 'kvmux.log'), 'utf8');
  const sock = join(dir, 'run', 'control.sock');
  let ctl: RpcClient | undefined;
  const deadline = Date.now() + (spec.readyTimeoutMs ?? 60_000);
  while (!ctl) {
    if (proc.exitCode !== null) throw new Error(`kvmux run exited ${proc.exitCode}:\n${log()}`);
    if (Date.now() > deadline) throw new Error(`kvmux run: no control socket:\n${log()}`);
    if (existsSync(sock)) ctl = await connectSocket(sock).catch(() => undefined);
    if (!ctl) await sleep(100);
  }
  const client = ctl;
  const call = <T>(m: string, p?: unknown) => client.call(m, p) as Promise<T>;
  while (true) {
    const vms = await call<Array<{ state: string }>>('vm.list');
    const status = await call<{ displays: number; displaysReady: number }>('service.status');
    if (vms.every((v) => v.state === 'running') && status.displaysReady === status.displays) break;
    if (Date.now() > deadline)
      throw new Error(`kvmux run: VMs not running: ${JSON.stringify(vms)}\n${log()}`);
    await sleep(200);
  }
  const kb = await FifoKeyboard.open(fifo);
  const pid = proc.pid!;
  const waitExit = () =>
    new Promise<void>((r) =>
      proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', () => r()),
    );
  const self: Kvmux = {
    dir,
    configPath,
    proc,
    pid,
    kb,
    call,
    log,
    async crash() {
      client.close();
      await kb.close().catch(() => {});
      proc.kill('SIGKILL');
      await waitExit();
    },
    restart: () => startKvmux(spec, dir),
    async stop() {
      client.close();
      await kb.close().catch(() => {});
      proc.kill('SIGTERM');
      await waitExit();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** X keycodes (Linux code + 8) of the KeyPress/KeyRelease lines xev printed into a VM's log. */
export function xevKeys(k: Kvmux, vm: string): string[] {
  const path = join(k.dir, 'run', 'vm', vm, 'command.log');
  if (!existsSync(path)) return [];
  const out: string[] = [];
  let kind = '';
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const head = /^(KeyPress|KeyRelease) event/.exec(line);
    if (head) kind = head[1] === 'KeyPress' ? 'press' : 'release';
    const code = /keycode (\d+)/.exec(line);
    if (code && kind) {
      out.push(`${kind} ${Number(code[1]) - 8}`);
      kind = '';
    }
  }
  return out;
}

/** Poll until `fn` holds (xev writes asynchronously). */
export async function eventually(fn: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

export { isAlive, sleep };
