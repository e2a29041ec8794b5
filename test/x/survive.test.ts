import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isAlive, readProcStat } from '../../src/util/proc.js';
import { connectDisplay } from '../../src/x/connection.js';
import { adoptXServer, type XServerRecord } from '../../src/x/server.js';
import { adoptOrphans, reap } from '../helpers/reaper.js';
import { testLogDir } from '../helpers/x-servers.js';

/**
 * DESIGN "Surviving a service restart": an X server started by a kvmux that is then SIGKILLed
 * keeps running (own session), and the next kvmux adopts it from its record. This test process
 * becomes a child subreaper so the orphaned server is reparented to it and can be reaped (pid 1
 * on these machines reaps nothing).
 */

describe('an X server outlives the kvmux that started it', () => {
  it('keeps running after SIGKILL of its starter and is adopted from the record', async () => {
    adoptOrphans();
    const starter = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/x/fixtures-start-xvfb.ts', testLogDir()],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const rec = await new Promise<XServerRecord>((resolve, reject) => {
      let text = '';
      starter.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\n')) resolve(JSON.parse(text) as XServerRecord);
      });
      starter.once('exit', (code) => reject(new Error(`starter exited early (${code})`)));
    });
    starter.kill('SIGKILL');
    await new Promise((r) => starter.once('exit', r));
    await new Promise((r) => setTimeout(r, 200));

    expect(isAlive(rec.pid, rec.startTime)).toBe(true);
    expect(readProcStat(rec.pid)?.ppid).toBe(process.pid); // orphaned onto us, the subreaper
    const adopted = adoptXServer(rec);
    expect(adopted).not.toBeNull();
    const conn = await connectDisplay(adopted!.display);
    await conn.sync();
    await conn.close();

    await adopted!.stop();
    await adopted!.exited;
    expect(readProcStat(rec.pid)?.state ?? 'gone').toMatch(/^(Z|gone)$/); // a zombie counts as dead
    expect(isAlive(rec.pid)).toBe(false);
    expect(reap(rec.pid)).toBe(true); // reaped: no zombie left behind
  });
});
