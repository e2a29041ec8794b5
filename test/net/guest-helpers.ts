import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { type BootOptions, qemuCommand } from '../fixtures/linux-guest.js';

/** Modules a busybox guest needs for `-device virtio-net-pci` (Debian builds them as modules). */
export const NET_MODULES = ['virtio_pci', 'virtio_net'];

/** QEMU arguments for one NIC on an existing tap; `romfile=` skips the iPXE ROM. */
export function tapNicArgs(id: string, tap: string, mac: string): string[] {
  return [
    ...['-netdev', `tap,id=${id},ifname=${tap},script=no,downscript=no`],
    ...['-device', `virtio-net-pci,netdev=${id},mac=${mac},romfile=`],
  ];
}

export interface NsGuest {
  readonly pid: number;
  waitFor(marker: string | RegExp, timeoutMs?: number): Promise<string>;
  log(): string;
  /** Write a line to the guest's ttyS2 (a `pipe:` chardev), to step a scripted guest forward. */
  send(line: string): void;
  stop(): Promise<void>;
}

/**
 * Boot a guest like test/fixtures/linux-guest.ts's bootGuest, but with QEMU started through
 * `ip netns exec NS` so its taps are the ones in the test's namespace (ip execs QEMU: same pid).
 * A second serial port (`ttyS2`) is a FIFO pair the test writes to, read by the guest with `read`.
 */
export async function bootGuestInNetns(netns: string, opts: BootOptions): Promise<NsGuest> {
  const dir = dirname(opts.serialLog);
  mkdirSync(dir, { recursive: true });
  writeFileSync(opts.serialLog, '');
  const gate = join(dir, 'gate');
  for (const end of ['in', 'out'])
    if (!existsSync(`${gate}.${end}`)) await execa('mkfifo', [`${gate}.${end}`]);
  const argv = qemuCommand({ ...opts, qemuArgs: [...(opts.qemuArgs ?? []), '-serial', `pipe:${gate}`] });
  const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let gone = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      gone = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  const log = () => readFileSync(opts.serialLog, 'utf8');
  const waitFor = async (marker: string | RegExp, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    const hit = (t: string) => (typeof marker === 'string' ? t.includes(marker) : marker.test(t));
    for (;;) {
      const text = log();
      if (hit(text)) return text;
      if (gone) throw new Error(`QEMU exited before "${marker}"; stderr: ${stderr}\nserial:\n${text}`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for "${marker}"; serial:\n${text}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  // QEMU holds both FIFO ends open read-write, so this open never blocks.
  const send = (line: string) => writeFileSync(`${gate}.in`, `${line}\n`);
  const stop = async () => {
    if (gone) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  return { pid: child.pid ?? -1, waitFor, log, send, stop };
}

/** Shell: wait for the test to send a line on ttyS2. */
export const WAIT_GATE = 'stty -F /dev/ttyS2 raw -echo 2>/dev/null; read -r _gate < /dev/ttyS2';
