import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import x11 from 'x11';
import { connectDisplay, type XConnection } from '../src/x/connection.js';
import { createOverlay } from '../src/x/overlay.js';
import { startXServer, type XServer } from '../src/x/server.js';
import { activeVt, rememberActiveVt, switchVt, type VtWaitMethod } from '../src/x/vt.js';
import { createXtestSink, type XtestSink } from '../src/x/xtest-sink.js';
import { summarize } from './stats.js';

/**
 * X figures: XTEST injection cost (JS per event, bare FakeInput vs the sink, with a round trip,
 * and key → KeyPress delivered to a client), VT switch time per wait method (Xorg dummy on VTs
 * 20/21 under the machine-wide VT lock), overlay map → MapNotify seen by another client, and
 * server start → first client connected (Xorg dummy never touches the console: no VT lock).
 */
const range: [number, number] = [100, 119];
/** X server log folders made by this bench; removed when it ends. */
const made: string[] = [];
const logDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-xbench-'));
  made.push(dir);
  return dir;
};
const KEY_A = 30;

async function keyWindow(display: string): Promise<{ conn: XConnection; onKey: (cb: () => void) => void }> {
  const conn = await connectDisplay(display);
  const wid = conn.client.AllocID();
  const em = x11.eventMask;
  conn.client.CreateWindow(wid, conn.root, 0, 0, conn.width, conn.height, 0, 0, 0, 0, {
    eventMask: em['KeyPress']! | em['KeyRelease']!,
  });
  conn.client.MapWindow(wid);
  conn.client.SetInputFocus(wid, 1);
  await conn.sync();
  let waiter: (() => void) | null = null;
  conn.client.on('event', (ev: x11.XEvent) => {
    if (ev.name === 'KeyPress' && waiter) {
      const w = waiter;
      waiter = null;
      w();
    }
  });
  return { conn, onKey: (cb) => (waiter = cb) };
}

function perEventUs(n: number, fn: (i: number) => void): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn(i);
    out.push((performance.now() - t) * 1000);
  }
  return out;
}

async function xtestFigures(server: XServer, sink: XtestSink) {
  const n = 20000;
  const xt = await new Promise<x11.XTestExt>((res, rej) =>
    sink.conn.client.require('xtest', (e, ext) => (e ? rej(e) : res(ext))),
  );
  const bare = perEventUs(n, (i) => {
    xt.FakeInput(i % 2 ? 3 : 2, KEY_A + 8, 0, 0, 0, 0);
    sink.flush();
  });
  const viaSink = perEventUs(n, (i) => {
    sink.key(KEY_A, i % 2 === 0);
    sink.flush();
  });
  await sink.conn.sync();
  const roundTrip: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    sink.key(KEY_A, i % 2 === 0);
    sink.flush();
    await sink.conn.sync();
    roundTrip.push((performance.now() - t) * 1000);
  }
  const win = await keyWindow(server.display);
  const delivered: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      win.onKey(resolve);
      sink.key(KEY_A, true);
      sink.key(KEY_A, false);
      sink.flush();
    });
    delivered.push((performance.now() - t) * 1000);
  }
  await win.conn.close();
  return {
    bareFakeInputUs: summarize(bare),
    sinkKeyUs: summarize(viaSink),
    sinkKeyPlusSyncUs: summarize(roundTrip),
    keyToClientKeyPressUs: summarize(delivered),
  };
}

async function overlayFigures(server: XServer) {
  const watcher = await connectDisplay(server.display);
  watcher.client.ChangeWindowAttributes(watcher.root, { eventMask: x11.eventMask['SubstructureNotify']! });
  await watcher.sync();
  const ov = await createOverlay(server.display, { x: 100, y: 100, width: 400, height: 300, name: 'bench' });
  let waiter: (() => void) | null = null;
  watcher.client.on('event', (ev: x11.XEvent) => {
    if (ev.name === 'MapNotify' && ev.wid === ov.wid && waiter) waiter();
  });
  const samples: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      waiter = resolve;
      ov.map();
      ov.flush();
    });
    samples.push(performance.now() - t);
    ov.unmap();
    await ov.sync();
  }
  await ov.destroy();
  await watcher.close();
  return { overlayMapToMapNotifyMs: summarize(samples) };
}

/** Exclusive machine-wide VT lock held by a `flock` child until its stdin closes. */
async function lockVts(): Promise<() => Promise<void>> {
  const child = spawn('flock', ['-x', '/tmp/kvmux-vt.lock', '-c', 'echo locked; read _'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
  return () =>
    new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.stdin.end();
    });
}

async function vtFigures() {
  if (process.getuid?.() !== 0 || !existsSync('/dev/tty0')) return { skipped: 'needs root and /dev/tty0' };
  const release = await lockVts();
  const original = rememberActiveVt();
  const servers: XServer[] = [];
  try {
    for (const vt of [20, 21])
      servers.push(await startXServer({ kind: 'xorg', vt, logDir: logDir(), range }));
    const out: Record<string, unknown> = {};
    for (const method of ['poll', 'chvt'] as VtWaitMethod[]) {
      const samples: number[] = [];
      for (let i = 0; i < 40; i++) {
        const vt = servers[i % 2]!.vt!;
        const t = performance.now();
        await switchVt(vt, { method });
        samples.push(performance.now() - t);
        if (activeVt() !== vt) throw new Error(`VT ${vt} not active after switch`);
      }
      out[`switchMs_${method}`] = summarize(samples);
    }
    return out;
  } finally {
    for (const s of servers) await s.stop();
    await original.restore();
    await release();
  }
}

/** Spawn → -displayfd readiness → first client connected, per server kind. */
async function startFigures() {
  const out: Record<string, unknown> = {};
  const kinds: Array<'xvfb' | 'xorg'> = process.getuid?.() === 0 ? ['xvfb', 'xorg'] : ['xvfb'];
  for (const kind of kinds) {
    const samples: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t = performance.now();
      const s = await startXServer({ kind, vt: 22, logDir: logDir(), range });
      const conn = await connectDisplay(s.display);
      samples.push(performance.now() - t);
      await conn.close();
      await s.stop();
    }
    out[`startToConnectedMs_${kind}`] = summarize(samples);
  }
  return out;
}

export async function run(): Promise<Record<string, unknown>> {
  const server = await startXServer({ kind: 'xvfb', logDir: logDir(), range, width: 1024, height: 768 });
  try {
    const sink = await createXtestSink(server.display);
    const xtest = await xtestFigures(server, sink);
    await sink.close();
    const overlay = await overlayFigures(server);
    return { xtest, ...overlay, servers: await startFigures(), vt: await vtFigures() };
  } finally {
    await server.stop();
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}
