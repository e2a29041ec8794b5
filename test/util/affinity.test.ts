import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The input thread's CPU pin, in a node process of its own (it pins its main thread): the main
 * thread keeps to the last CPU; a child it spawns, and a worker or synchronous spawn started through
 * startUnpinned, get every CPU; started plainly, those two inherit the pin (why startUnpinned exists).
 */
const root = resolve(import.meta.dirname, '../..');
const cpus = availableParallelism();
if (cpus < 2) console.warn('SKIP affinity: one CPU, nothing to pin');

const SCRIPT = `
import { spawn, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { pinInputThread, startUnpinned } from '${root}/src/util/affinity.ts';
import { joinInputCpu, setProcessScheduling } from '${root}/src/util/priority.ts';
const allowed = (text) => /^Cpus_allowed_list:\\s*(\\S+)/m.exec(text)[1];
const inWorker = (start) => new Promise((res) => {
  const w = start(() => new Worker("Promise.all([import('node:fs'), import('node:worker_threads')]).then(([fs, wt]) => wt.parentPort.postMessage(fs.readFileSync('/proc/thread-self/status', 'utf8')))", { eval: true }));
  w.once('message', (m) => { res(allowed(m)); void w.terminate(); });
});
const pinned = await pinInputThread();
const out = {
  pinned,
  main: allowed((await import('node:fs')).readFileSync('/proc/thread-self/status', 'utf8')),
  child: await new Promise((res) => { let o = ''; const c = spawn('cat', ['/proc/self/status']); c.stdout.on('data', (d) => (o += d)); c.on('close', () => res(allowed(o))); }),
  syncChildUnpinned: allowed(startUnpinned(() => spawnSync('cat', ['/proc/self/status'], { encoding: 'utf8' })).stdout),
  syncChildPlain: allowed(spawnSync('cat', ['/proc/self/status'], { encoding: 'utf8' }).stdout),
  workerUnpinned: await inWorker(startUnpinned),
  workerPlain: await inWorker((f) => f()),
};
// another process (an X server's stand-in): joined, spread, raised and lowered
const other = spawn('sleep', ['30']);
await new Promise((res) => other.once('spawn', res));
const cpusOf = () => allowed(readFileSync('/proc/' + other.pid + '/status', 'utf8'));
const moves = [];
const step = (what, result) => moves.push([what, result ?? null, cpusOf()]);
step('start');
step('join', joinInputCpu(other.pid, true));
step('spread', joinInputCpu(other.pid, false));
step('raise', setProcessScheduling(other.pid, 1));
step('lower', setProcessScheduling(other.pid, 0));
other.kill();
out.moves = moves;
process.stdout.write(JSON.stringify(out));
`;

describe.skipIf(cpus < 2)('the input thread CPU pin', () => {
  it('pins the main thread only: children and startUnpinned workers keep every CPU; a shown X server joins it', () => {
    const out = JSON.parse(
      execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
        cwd: root,
        encoding: 'utf8',
      }),
    ) as Record<string, unknown>;
    const last = String(cpus - 1);
    const all = `0-${cpus - 1}`;
    expect(out).toEqual({
      pinned: { cpu: cpus - 1 },
      main: last,
      child: all,
      syncChildUnpinned: all,
      workerUnpinned: all,
      // the premise: a thread or a synchronous spawn inherits the creator's pin
      syncChildPlain: last,
      workerPlain: last,
      moves: [
        ['start', null, all],
        ['join', null, last],
        ['spread', null, all],
        // raised is joined, lowered gets every CPU back (root may make it real-time here)
        ['raise', null, last],
        ['lower', null, all],
      ],
    });
  });
});
