import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachGuestChannel } from '../src/control/guest-channel.js';
import { defaultLimits } from '../src/control/rpc/core.js';
import { createControlServer } from '../src/control/rpc/server.js';
import { raiseInputPriority } from '../src/util/priority.js';
import { fifoLatency } from './input.bench.js';
import { summarize } from './stats.js';

/**
 * Issue 11 finding 5: the event loop that routes the keyboard must stay responsive while a guest
 * floods its channel with garbage. Keyboard-path latency (FIFO write → sink, as input.bench
 * measures) in this process, quiet and with one guest channel flooded by another process writing
 * as fast as the socket takes it; the figure is the p99 ratio.
 */
const FLOODER = `
const net = require('node:net');
const lines = [
  '{"jsonrpc":"2.0","method":"vm.list","params":{"x":"' + 'y'.repeat(4000) + '"}}',
  '['.repeat(31) + '1' + ']'.repeat(31),
  '{"a":' + '"b",'.repeat(2000),
  '{"jsonrpc":"2.0","id":1,"method":"auth.login","params":{"password":"guess"}}',
  'not json at all '.repeat(64),
];
const chunk = Buffer.from(Array.from({ length: 64 }, (_, i) => lines[i % lines.length]).join('\\n') + '\\n');
net.createServer((s) => {
  s.on('error', () => {});
  s.on('data', () => {});
  const pump = () => { while (s.write(chunk)) {} };
  s.on('drain', pump);
  pump();
}).listen(process.argv[1], () => process.stdout.write('ready\\n'));
`;

async function startFlooder(path: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', FLOODER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`flooder exited ${code}`)));
  });
  return child;
}

/**
 * The figures twice: with this process at normal priority, then at the input priority `kvmux run`
 * gives its main thread (SCHED_RR 1, else nice -10; the flooder keeps nice 0), which is what the
 * service's keyboard sees when a guest floods.
 */
export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-bench-flood-'));
  const path = join(dir, 'flood.sock');
  const flooder = await startFlooder(path);
  try {
    const normal = await measure(path);
    const priority = raiseInputPriority();
    try {
      return { ...normal, atInputPriority: { priority, ...(await measure(path)) } };
    } finally {
      // back to SCHED_OTHER nice 0 for the benches after this one (lowering needs no privilege)
      execFileSync('chrt', ['-o', '-p', '0', String(process.pid)]);
      setPriority(0);
    }
  } finally {
    flooder.kill('SIGKILL');
    await new Promise((r) => (flooder.exitCode !== null ? r(null) : flooder.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Quiet and flooded blocks interleaved, so the machine's own noise hits both alike. */
async function measure(path: string) {
  const server = createControlServer();
  // a guest that has logged in gets the large byte budget: its flood, as if it knew the password
  const trusting = createControlServer({ limits: { bytesBeforeLogin: defaultLimits.bytes } });
  const quiet: number[] = [];
  const flooded: number[] = [];
  const floodedLoggedIn: number[] = [];
  const drained: number[] = [];
  try {
    for (let block = 0; block < 4; block++) {
      await fifoLatency(500, quiet);
      // the same flood read and thrown away by a bare socket: the floor no limit can go under
      const bare = connect(path);
      bare.on('data', () => undefined);
      bare.on('error', () => undefined);
      await new Promise((r) => setTimeout(r, 200));
      await fifoLatency(500, drained);
      bare.destroy();
      const channel = attachGuestChannel(server, { vm: 'flood', path, minBackoffMs: 20 });
      await channel.whenConnected();
      await new Promise((r) => setTimeout(r, 200)); // let the flood reach full speed
      try {
        await fifoLatency(500, flooded);
      } finally {
        channel.close();
      }
      const loggedIn = attachGuestChannel(trusting, { vm: 'flood', path, minBackoffMs: 20 });
      await loggedIn.whenConnected();
      await new Promise((r) => setTimeout(r, 200));
      try {
        await fifoLatency(500, floodedLoggedIn);
      } finally {
        loggedIn.close();
      }
    }
  } finally {
    await server.close();
    await trusting.close();
  }
  const q = summarize(quiet);
  const f = summarize(flooded);
  const d = summarize(drained);
  const l = summarize(floodedLoggedIn);
  return {
    unit: 'µs from FIFO write to sink.key()',
    quiet: q,
    flooded: f,
    bareSocketDrain: d,
    ratioP99: Number((f.p99 / q.p99).toFixed(2)),
    ratioP99VsBareDrain: Number((f.p99 / d.p99).toFixed(2)),
    ratioP50: Number((f.p50 / q.p50).toFixed(2)),
    floodedAfterLogin: l,
    ratioP99AfterLogin: Number((l.p99 / q.p99).toFixed(2)),
    note:
      'keyboard latency with one guest flooding garbage into its channel / without; 1.0 = unaffected. ' +
      '`flooded`: a guest without the password (small byte budget before login); ' +
      '`floodedAfterLogin`: the same flood with the logged-in budget (32 MiB/s)',
  };
}
