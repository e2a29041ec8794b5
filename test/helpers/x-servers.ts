import { readdirSync, readFileSync } from 'node:fs';
import x11 from 'x11';
import { connectDisplay, type XConnection } from '../../src/x/connection.js';
import { type StartXServerOptions, startXServer, type XServer } from '../../src/x/server.js';
import { tempDir } from './temp.js';

/**
 * Real X servers for tests on the display numbers reserved for the X tests (:100-:119), plus a
 * plain client window that records the KeyPress/KeyRelease events it receives.
 */
export const testDisplayRange: [number, number] = [100, 119];

export function testLogDir(): string {
  return tempDir('kvmux-x-');
}

export function startTestXvfb(opts: Partial<StartXServerOptions> = {}): Promise<XServer> {
  return startXServer({ kind: 'xvfb', logDir: testLogDir(), range: testDisplayRange, ...opts });
}

export interface ClientWindow {
  conn: XConnection;
  wid: number;
  /** 'press 38' / 'release 38' per key event received, X keycodes. */
  keys: string[];
  buttons: string[];
  /** Resolves when `n` key events have arrived. */
  waitKeys(n: number, timeoutMs?: number): Promise<string[]>;
}

/** A plain client: a small window of its own size that asks to be mapped and listens for keys. */
export async function openClientWindow(display: string, width = 200, height = 100): Promise<ClientWindow> {
  const conn = await connectDisplay(display);
  const wid = conn.client.AllocID();
  const em = x11.eventMask;
  const mask =
    em['KeyPress']! | em['KeyRelease']! | em['ButtonPress']! | em['ButtonRelease']! | em['StructureNotify']!;
  conn.client.CreateWindow(wid, conn.root, 10, 10, width, height, 0, 0, 0, 0, {
    backgroundPixel: 0x336699,
    eventMask: mask,
  });
  const keys: string[] = [];
  const buttons: string[] = [];
  const waiters: Array<() => void> = [];
  conn.client.on('event', (ev: x11.XEvent) => {
    if (ev.name === 'KeyPress' || ev.name === 'KeyRelease') {
      keys.push(`${ev.name === 'KeyPress' ? 'press' : 'release'} ${ev.keycode}`);
    }
    if (ev.name === 'ButtonPress' || ev.name === 'ButtonRelease') {
      buttons.push(`${ev.name === 'ButtonPress' ? 'press' : 'release'} ${ev.keycode}`);
    }
    for (const w of waiters.splice(0)) w();
  });
  conn.client.MapWindow(wid);
  await conn.sync();
  const waitKeys = async (n: number, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    while (keys.length < n && Date.now() < deadline) {
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return keys;
  };
  return { conn, wid, keys, buttons, waitKeys };
}

/** Geometry of a window as the server has it now. */
export function geometry(conn: XConnection, wid: number): Promise<x11.Geometry> {
  return conn.call<x11.Geometry>((cb) => conn.client.GetGeometry(wid, cb));
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** VTs reserved for the X tests. */
export const testVts = [20, 21, 22, 23, 24];

/**
 * Hold the machine-wide VT lock (exclusive `flock /tmp/kvmux-vt.lock`) until release() — every
 * test that switches VTs takes it, because other helpers switch VTs too. The lock lives in a
 * child `flock` process reading stdin, so it is dropped even if this process dies.
 */
export async function lockVts(): Promise<{ release(): Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const child = spawn('flock', ['-x', '/tmp/kvmux-vt.lock', '-c', 'echo locked; read _'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    child.once('exit', (code) => reject(new Error(`flock exited (${code}) before locking`)));
  });
  return {
    release: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      }),
  };
}

/** The pid of the X server kvmux started for `display` (`Xvfb :N …` or `Xorg :N …`), from /proc. */
export function xServerPidOf(display: string): number | null {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)X(vfb|org)$/.test(argv[0] ?? '') && argv[1] === display) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/** Scheduling of a process's main thread from /proc/PID/stat (policy 0 SCHED_OTHER, 2 SCHED_RR). */
export function schedulingOf(pid: number): { policy: number; rtPriority: number; nice: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { policy: Number(f[38]), rtPriority: Number(f[37]), nice: Number(f[16]) };
}

/** The CPUs a thread may run on (`Cpus_allowed_list`: "1", "0-1"); `tid` defaults to the main thread. */
export function cpusOf(pid: number, tid = pid): string {
  const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
  return /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? '?';
}

/** Every thread's CPUs, distinct: one entry when the whole process is alike. */
export function threadCpusOf(pid: number): string[] {
  const out = new Set<string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.add(cpusOf(pid, Number(tid)));
    } catch {
      // ended meanwhile
    }
  }
  return [...out].sort();
}
