import { constants, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import koffi from 'koffi';
import { XError } from '../util/errors.js';

/**
 * The VT console: VT_ACTIVATE on /dev/tty0, then wait until the VT is active by watching
 * /sys/class/tty/tty0/active on timers ('poll', the default) or by forking kbd's chvt. Never
 * VT_WAITACTIVE: it blocks in the kernel until the VT activates, maybe never, and on the libuv
 * pool (4 threads, shared with scrypt logins and fs.promises) a few timed-out waits hung them all.
 * Xorg does not make its VT active: kvmux switches.
 */
export const VT_OPENQRY = 0x5600;
export const VT_GETSTATE = 0x5603;
export const VT_ACTIVATE = 0x5606;

/** VT failures are XErrors naming the console device. */
const vtError = (message: string) => new XError('/dev/tty0', message);

export type VtWaitMethod = 'poll' | 'chvt';

type IoctlInt = (fd: number, req: number, arg: number) => number;
type IoctlBuf = (fd: number, req: number, arg: Buffer) => number;

let ffi: { ioctl: IoctlInt; ioctlBuf: IoctlBuf } | null = null;
function libc() {
  if (!ffi) {
    const lib = koffi.load('libc.so.6');
    ffi = {
      ioctl: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as IoctlInt,
      ioctlBuf: lib.func('ioctl', 'int', ['int', 'unsigned long', koffi.inout(koffi.pointer('uint8_t'))]),
    };
  }
  return ffi;
}

let consoleFd: number | null = null;
function tty0(): number {
  consoleFd ??= openSync('/dev/tty0', constants.O_RDWR | constants.O_NOCTTY);
  return consoleFd;
}

/** Pure: 'tty7\n' → 7. */
export function parseActive(text: string): number {
  const m = /^tty(\d+)/.exec(text.trim());
  if (!m) throw vtError(`/sys/class/tty/tty0/active: unexpected '${text.trim()}'`);
  return Number(m[1]);
}

/** The active VT, from sysfs (cheap, no fd needed). */
export function activeVt(): number {
  return parseActive(readFileSync('/sys/class/tty/tty0/active', 'latin1'));
}

/** VT_GETSTATE: active VT and the in-use bitmask of VTs 0..15. */
export function vtState(): { active: number; inUse: number } {
  const st = Buffer.alloc(6);
  if (libc().ioctlBuf(tty0(), VT_GETSTATE, st) !== 0)
    throw vtError(`VT_GETSTATE failed (errno ${koffi.errno()})`);
  return { active: st.readUInt16LE(0), inUse: st.readUInt16LE(4) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves true once `vt` is active, false after `timeoutMs`; main-thread timers only (1 ms for
 * the first 200 ms, where a switch normally lands, then 10 ms), so a VT that never comes holds nothing.
 */
export async function waitVtActive(vt: number, timeoutMs: number): Promise<boolean> {
  const t0 = Date.now();
  while (activeVt() !== vt) {
    const waited = Date.now() - t0;
    if (waited > timeoutMs) return false;
    await sleep(waited < 200 ? 1 : 10);
  }
  return true;
}

async function chvt(vt: number): Promise<boolean> {
  const { execa } = await import('execa');
  const r = await execa('chvt', [String(vt)], { reject: false, timeout: 5000 });
  return r.exitCode === 0;
}

export interface SwitchVtOptions {
  timeoutMs?: number;
  method?: VtWaitMethod;
  /**
   * Wakes the X server that must let go of the VT (an X round trip). Xorg acts on the kernel's
   * release signal only when its main loop wakes: one with no busy client held a switch for a
   * minute in the appliance image. Called at once and every 250 ms until the switch is done.
   */
  nudge?: () => Promise<void>;
}

/** Make `vt` the active console and resolve once it is (VtError after `timeoutMs`, default 3000). */
export async function switchVt(vt: number, opts: SwitchVtOptions = {}) {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const method = opts.method ?? 'poll';
  if (!Number.isInteger(vt) || vt < 1 || vt > 63) throw vtError(`switchVt: bad VT number ${vt}`);
  if (method === 'chvt') {
    if (!(await chvt(vt))) throw vtError(`chvt ${vt} failed`);
  } else if (libc().ioctl(tty0(), VT_ACTIVATE, vt) !== 0) {
    throw vtError(`VT_ACTIVATE ${vt} failed (errno ${koffi.errno()})`);
  }
  const nudge = opts.nudge;
  const nudger = nudge ? setInterval(() => void nudge().catch(() => {}), 250) : null;
  void nudge?.().catch(() => {});
  const ok = await waitVtActive(vt, timeoutMs).finally(() => nudger && clearInterval(nudger));
  if (!ok) throw vtError(`VT ${vt} did not become active within ${timeoutMs} ms (active: ${activeVt()})`);
}

/** VTs a process claims: /dev/ttyN held open (getty, shell) or an X server's `vtN` argument. */
export function openVts(): Set<number> {
  const used = new Set<number>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    for (const vt of vtsOfProcess(pid)) used.add(vt);
  }
  return used;
}

// the dummy driver skips the console (HW_SKIP_CONSOLE): its Xorg never opens /dev/ttyN
function vtsOfProcess(pid: string): number[] {
  const vts: number[] = [];
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    if (/(^|\/)(Xorg|X)$/.test(argv[0] ?? '')) {
      for (const a of argv) if (/^vt\d+$/.test(a)) vts.push(Number(a.slice(2)));
    }
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const m = /^\/dev\/tty(\d+)$/.exec(safeReadlink(`/proc/${pid}/fd/${fd}`));
      if (m && m[1] !== '0') vts.push(Number(m[1]));
    }
  } catch {
    // process gone or not ours to read
  }
  return vts;
}

function safeReadlink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

const reservedVts = new Set<number>();

/** Reserve the first VT in [first, last] that nobody holds open and this process did not hand out. */
export function allocateVt(first: number, last: number): number {
  const used = openVts();
  const active = activeVt();
  for (let vt = first; vt <= last; vt++) {
    if (used.has(vt) || reservedVts.has(vt) || vt === active) continue;
    reservedVts.add(vt);
    return vt;
  }
  throw vtError(`no free VT in ${first}..${last} (in use: ${[...used].sort((a, b) => a - b).join(',')})`);
}

export function releaseVt(vt: number): void {
  reservedVts.delete(vt);
}

/** VT_ACTIVATE without waiting: for exit and crash paths that cannot await (never blocks). */
export function activateVtNow(vt: number): boolean {
  return libc().ioctl(tty0(), VT_ACTIVATE, vt) === 0;
}

/** Remember the VT active now; the returned function switches back to it (for exit paths). */
export function rememberActiveVt(): { vt: number; restore(): Promise<void>; restoreNow(): void } {
  const vt = activeVt();
  return {
    vt,
    restore: () => (activeVt() === vt ? Promise.resolve() : switchVt(vt)),
    restoreNow: () => {
      if (activeVt() !== vt) activateVtNow(vt);
    },
  };
}
