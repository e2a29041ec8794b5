import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { KVMUX_NODE_FLAGS } from '../cli/node-flags.js';
import { connectSocket, type RpcClient } from '../control/rpc/client.js';
import { isAlive } from '../util/proc.js';
import { FifoKeyboard, sleep } from './fifo-keys.js';

/**
 * A real `kvmux run` (the built CLI) in a temp dir with a FIFO keyboard and its control socket:
 * what a person and `kvmux ctl` see. Used by the demo, the end-to-end tests and the benches.
 */
// built (dist/src/demo) or run from source by vitest (src/demo): the CLI is always the built one
export const CLI = import.meta.dirname.includes('/dist/')
  ? resolve(import.meta.dirname, '../cli/main.js')
  : resolve(import.meta.dirname, '../../dist/src/cli/main.js');

export interface Kvmux {
  dir: string;
  configPath: string;
  proc: ChildProcess;
  pid: number;
  kb: FifoKeyboard;
  /** The control connection (e.g. for sendFile). */
  client: RpcClient;
  call<T = unknown>(method: string, params?: unknown): Promise<T>;
  log(): string;
  /**
   * End kvmux with `signal` while VMs and X servers live on: SIGKILL (default) is a crash,
   * SIGUSR1 the clean leave-running exit. Resolves with the exit code (null when killed).
   */
  crash(signal?: NodeJS.Signals): Promise<number | null>;
  /** Start `kvmux run` again on the same config and state. */
  restart(): Promise<Kvmux>;
  /** SIGTERM and wait; then remove the temp dir. */
  stop(): Promise<void>;
}

export interface KvmuxSpec {
  console?: 'vt' | 'virtual';
  /** First X display number and VT (defaults :200 and 30, the e2e tests' ranges). */
  firstDisplay?: number;
  firstVt?: number;
  /** Run kvmux inside this network namespace (network tests never touch the host's interfaces). */
  netns?: string;
  /**
   * Enter `netns` with `nsenter --net` (the network only) instead of `ip netns exec`, which also
   * remounts /sys and so hides the cgroup mounts: no VM resources and no subhosts (nspawn) there.
   */
  netnsKeepSys?: boolean;
  /** Admin password set with `kvmux passwd` before start. */
  password?: string;
  vms: unknown[];
  admin?: boolean;
  extra?: Record<string, unknown>;
  /** More `input:` keys beside the FIFO device (e.g. `realtime: false`). */
  input?: Record<string, unknown>;
  /** Wait for these VM states after start (default: every VM running). */
  readyTimeoutMs?: number;
}

export async function startKvmux(spec: KvmuxSpec, reuseDir?: string): Promise<Kvmux> {
  const dir = reuseDir ?? mkdtempSync(join(tmpdir(), 'kvmux-e2e-'));
  const fifo = join(dir, 'keyboard.fifo');
  const configPath = join(dir, 'kvmux.yaml');
  if (!reuseDir) {
    execFileSync('mkfifo', [fifo]);
    const cfg = {
      runDir: join(dir, 'run'),
      stateDir: join(dir, 'state'),
      console: spec.console ?? 'virtual',
      input: { devices: [fifo], ...spec.input },
      x: { firstDisplay: spec.firstDisplay ?? 200, firstVt: spec.firstVt ?? 30 },
      admin: { enabled: spec.admin ?? false },
      vmStopTimeoutSeconds: 3,
      vms: spec.vms,
      ...spec.extra,
    };
    writeFileSync(configPath, stringify(cfg));
    if (spec.password)
      execFileSync(process.execPath, [CLI, 'passwd', '--config', configPath], {
        input: `${spec.password}\n`,
        stdio: ['pipe', 'ignore', 'ignore'],
      });
  }
  const logFd = openSync(join(dir, 'kvmux.log'), 'a');
  const argv = [process.execPath, ...KVMUX_NODE_FLAGS, CLI, 'run', '--config', configPath];
  // `ip netns exec` and nsenter exec the command: the pid stays kvmux's own
  const ns = spec.netns;
  const enter = spec.netnsKeepSys
    ? ['nsenter', `--net=/run/netns/${ns}`, '--']
    : ['ip', 'netns', 'exec', ns ?? ''];
  const cmd = ns ? [...enter, ...argv] : argv;
  const proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const log = () => readFileSync(join(dir, 'kvmux.log'), 'utf8');
  const sock = join(dir, 'run', 'control.sock');
  const deadline = Date.now() + (spec.readyTimeoutMs ?? 60_000);
  let client: RpcClient;
  try {
    client = await waitReady(sock, proc, deadline, log);
  } catch (err) {
    // never leave a half-started kvmux (and its X servers and VMs) behind a failed test
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
    if (!reuseDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const call = <T>(m: string, p?: unknown) => client.call(m, p) as Promise<T>;
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
    client,
    call,
    log,
    async crash(signal = 'SIGKILL') {
      client.close();
      await kb.close().catch(() => {});
      proc.kill(signal);
      await waitExit();
      return proc.exitCode;
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

/** Connect to the control socket and wait until start-up is done (displays up, VMs autostarted). */
async function waitReady(
  sock: string,
  proc: ChildProcess,
  deadline: number,
  log: () => string,
): Promise<RpcClient> {
  let ctl: RpcClient | undefined;
  while (!ctl) {
    if (proc.exitCode !== null) throw new Error(`kvmux run exited ${proc.exitCode}:\n${log()}`);
    if (Date.now() > deadline) throw new Error(`kvmux run: no control socket:\n${log()}`);
    if (existsSync(sock)) ctl = await connectSocket(sock).catch(() => undefined);
    if (!ctl) await sleep(100);
  }
  for (;;) {
    const status = (await ctl.call('service.status')) as {
      ready: boolean;
      displays: number;
      displaysReady: number;
    };
    if (status.ready && status.displaysReady === status.displays) return ctl;
    if (Date.now() > deadline) {
      ctl.close();
      throw new Error(`kvmux run: not ready: ${JSON.stringify(status)}\n${log()}`);
    }
    await sleep(100);
  }
}

export { isAlive, sleep };
