import { readFileSync } from 'node:fs';
import x11 from 'x11';
import { connectDisplay } from '../src/x/connection.js';
import { cpuOfStat } from './procs.js';

/**
 * The VM's end of a key, in a process of its own (bench/e2e.bench.ts): a window on display argv[2]
 * that prints the CLOCK_MONOTONIC time (ns) of every KeyPress and KeyRelease it gets, one per line,
 * and the CPU it ran on then (read after the time is taken).
 * Asleep between keys like a VM's window, at normal priority; the sender reads the times later, so
 * reporting back costs the measurement nothing.
 */
const conn = await connectDisplay(process.argv[2]!);
const wid = conn.client.AllocID();
const em = x11.eventMask;
conn.client.CreateWindow(wid, conn.root, 0, 0, 100, 100, 0, 0, 0, 0, {
  eventMask: em['KeyPress']! | em['KeyRelease']!,
});
conn.onEvent((ev) => {
  if (ev.name !== 'KeyPress' && ev.name !== 'KeyRelease') return;
  const t = process.hrtime.bigint();
  process.stdout.write(`${t} ${cpuOfStat(readFileSync('/proc/self/stat', 'utf8'))}\n`);
});
conn.client.MapWindow(wid);
await conn.sync();
setTimeout(() => process.stdout.write('ready\n'), 300);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
