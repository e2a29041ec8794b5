/**
 * A stand-in kvmux for the adoption test: supervises the VMs of the config given as a JSON file
 * (argv[2]) on the display in argv[3], prints `{"ready":true,"pids":{...}}` once they run, then
 * idles until it is killed (the test kills it with SIGKILL, as a crash would).
 */
import { readFileSync } from 'node:fs';
import { configSchema } from '../../../src/config/schema.js';
import { createCommandBackend } from '../../../src/session/backends/command.js';
import { createQemuBackend } from '../../../src/session/backends/qemu.js';
import { Supervisor } from '../../../src/session/supervisor.js';

const config = configSchema.parse(JSON.parse(readFileSync(process.argv[2]!, 'utf8')));
const display = process.argv[3]!;
const sup = new Supervisor({
  config,
  backends: { qemu: createQemuBackend(), command: createCommandBackend() },
  displayFor: () => ({ display, width: 1024, height: 768 }),
});
await sup.autostart();
const pids = Object.fromEntries(sup.list().map((v) => [v.name, v.pid]));
process.stdout.write(`${JSON.stringify({ ready: true, pids })}\n`);
setInterval(() => {}, 60_000);
