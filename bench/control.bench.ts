import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreMethods } from '../src/control/core-methods.js';
import { connectSocket } from '../src/control/rpc/client.js';
import { createControlServer } from '../src/control/rpc/server.js';
import { imageUploadMethods } from '../src/control/transfer/upload.js';
import { summarize } from './stats.js';

/**
 * Control plane figures over the real local socket: image upload MB/s (base64 JSON-RPC chunks,
 * sha256 while writing, fsync + rename at commit) and RPC round trip. The uploading client is a
 * separate node process, as `kvmux ctl` or a guest would be. Images land on the disk holding
 * os.tmpdir(). Goal: ≥100 MB/s.
 */
const TOTAL = 256 << 20;

/** Plain-JS uploader run with `node -e`: argv = socket, name, total, chunkBytes, inFlight. */
const UPLOADER = `
const net = require('node:net'), crypto = require('node:crypto');
const [sock, name, total, chunk, inFlight] = process.argv.slice(1);
const T = +total, C = +chunk, W = +inFlight, block = crypto.randomBytes(C), b64 = block.toString('base64');
const h = crypto.createHash('sha256'); for (let i = 0; i < T / C; i++) h.update(block);
const s = net.connect(sock); let buf = '', id = 0; const waiting = new Map();
s.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const m = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1);
  const w = waiting.get(m.id); waiting.delete(m.id); m.error ? w.rej(new Error(m.error.message)) : w.res(m.result); } });
const call = (method, params) => new Promise((res, rej) => { waiting.set(++id, { res, rej }); s.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\\n'); });
s.on('connect', async () => {
  const t0 = performance.now();
  const { uploadId } = await call('image.upload.begin', { name, size: T, sha256: h.digest('hex') });
  const win = [];
  for (let i = 0; i < T / C; i++) { win.push(call('image.upload.chunk', { uploadId, offset: i * C, data: b64 })); if (win.length >= W) await win.shift(); }
  await Promise.all(win);
  const t1 = performance.now();
  await call('image.upload.commit', { uploadId });
  const t2 = performance.now();
  process.stdout.write(JSON.stringify({ chunksMs: t1 - t0, commitMs: t2 - t1 }));
  s.end();
});`;

function upload(sock: string, name: string, chunk: number, inFlight: number) {
  return new Promise<{ MBps: number; chunksMBps: number; commitMs: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [
      '-e',
      UPLOADER,
      sock,
      name,
      String(TOTAL),
      String(chunk),
      String(inFlight),
    ]);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`uploader failed: ${err}`));
      const r = JSON.parse(out) as { chunksMs: number; commitMs: number };
      const mb = TOTAL / 1e6;
      resolve({
        MBps: Number((mb / ((r.chunksMs + r.commitMs) / 1000)).toFixed(1)),
        chunksMBps: Number((mb / (r.chunksMs / 1000)).toFixed(1)),
        commitMs: Math.round(r.commitMs),
      });
    });
  });
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-bench-ctl-'));
  const images = join(dir, 'images');
  mkdirSync(images);
  const server = createControlServer();
  server.register([...coreMethods({}), ...imageUploadMethods({ imageDirs: () => [images] })]);
  const sock = join(dir, 'control.sock');
  await server.listen(sock);
  try {
    const uploads: Record<string, unknown> = {};
    for (const [label, chunk, inFlight] of [
      ['chunk2MiB_sequential', 2 << 20, 1],
      ['chunk2MiB_pipelined4', 2 << 20, 4],
      ['chunk1MiB_pipelined4', 1 << 20, 4],
    ] as const) {
      uploads[label] = await upload(sock, `${label}.img`, chunk, inFlight);
      rmSync(join(images, `${label}.img`));
    }
    const c = await connectSocket(sock);
    const rtt: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now();
      await c.call('service.ping', {});
      rtt.push(performance.now() - t0);
    }
    c.close();
    return { uploadBytes: TOTAL, goalMBps: 100, upload: uploads, pingRoundTripMs: summarize(rtt.slice(100)) };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
