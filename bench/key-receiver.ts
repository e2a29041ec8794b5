import { openSync, readFileSync, writeSync } from 'node:fs';
import x11 from 'x11';
import { connectDisplay } from '../src/x/connection.js';
import { cpuOfStat } from './procs.js';

/**
 * The VM's end of a key, in a process of its own (bench/e2e.bench.ts): a window on display argv[2]
 * that prints the CLOCK_MONOTONIC time (ns) of every KeyPress and KeyRelease it gets, one per line,
 * and the CPU it ran on then (read after the time is taken).
 * Asleep between keys like a VM's window, at normal priority; the sender reads the times later, so
 * reporting back costs the measurement nothing.
 *
 * argv[2] may be `-`: $DISPLAY (run by kvmux as a VM's command). argv[3], if given: a FIFO to write
 * the lines to instead of stdout (a VM's stdout goes to its log); the process then runs until it
 * is stopped, as a VM does.
 */
const display = process.argv[2] === '-' ? process.env['DISPLAY']! : process.argv[2]!;
const outPath = process.argv[3];
// opening a FIFO for writing waits for its reader: the bench opens it when it starts the VM
const out = outPath ? openSync(outPath, 'w') : -1;
const say = (line: string) => (outPath ? writeSync(out, `${line}\n`) : process.stdout.write(`${line}\n`));
const conn = await connectDisplay(display);
const wid = conn.client.AllocID();
const em = x11.eventMask;
conn.client.CreateWindow(wid, conn.root, 0, 0, 100, 100, 0, 0, 0, 0, {
  eventMask: em['KeyPress']! | em['KeyRelease']!,
});
conn.onEvent((ev) => {
  if (ev.name !== 'KeyPress' && ev.name !== 'KeyRelease') return;
  const t = process.hrtime.bigint();
  say(`${t} ${cpuOfStat(readFileSync('/proc/self/stat', 'utf8'))}`);
});
conn.client.MapWindow(wid);
await conn.sync();
setTimeout(() => say('ready'), 300);
if (!outPath) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
