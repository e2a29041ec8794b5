// Fixture process: starts an Xvfb the kvmux way, prints its record, then waits to be killed.
import { startXServer } from '../../src/x/server.js';

const server = await startXServer({ kind: 'xvfb', logDir: process.argv[2]!, range: [100, 119] });
process.stdout.write(`${JSON.stringify(server.record())}\n`);
setInterval(() => {}, 1000);
