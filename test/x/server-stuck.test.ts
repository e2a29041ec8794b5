import { chmodSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startXServer, type XServerExit } from '../../src/x/server.js';
import { loudSkip } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import { testDisplayRange } from '../helpers/x-servers.js';

/**
 * An X server that never gets ready and then outlives SIGKILL, as a KMS Xorg stuck in a DRM ioctl
 * does. Stand-in: a fake `Xvfb` (first on PATH) that walks into a frozen cgroup-v1 freezer group,
 * where a task sits in D state and a SIGKILL stays pending until the group thaws.
 */
const freezerRoot = '/sys/fs/cgroup/freezer';
const why = existsSync(join(freezerRoot, 'cgroup.procs')) ? null : `no cgroup v1 freezer at ${freezerRoot}`;
if (why) loudSkip('x/server-stuck (a server that outlives SIGKILL)', why);

const group = join(freezerRoot, `kvmux-test-stuck-${process.pid}`);
const savedPath = process.env['PATH'];

afterEach(async () => {
  process.env['PATH'] = savedPath;
  if (!existsSync(group)) return;
  writeFileSync(join(group, 'freezer.state'), 'THAWED');
  // the thawed task dies of its pending SIGKILL; the group can go once it is empty
  for (let i = 0; i < 40 && readFileSync(join(group, 'cgroup.procs'), 'latin1').trim(); i++)
    await new Promise((r) => setTimeout(r, 50));
  rmdirSync(group);
});

describe.skipIf(why !== null)('a server that failed to start and ignores SIGKILL', () => {
  it('start gives up after killWaitMs, reports it stuck, and sees it exit once it can', async () => {
    mkdirSync(group);
    writeFileSync(join(group, 'freezer.state'), 'FROZEN');
    const bin = tempDir('kvmux-stuck-bin-');
    writeFileSync(join(bin, 'Xvfb'), `#!/bin/sh\necho $$ > ${group}/cgroup.procs\nexec sleep 600\n`);
    chmodSync(join(bin, 'Xvfb'), 0o755);
    process.env['PATH'] = `${bin}:${savedPath}`;
    const stuck: Array<{ pid: number; exited: Promise<XServerExit> }> = [];
    const t0 = Date.now();
    const start = startXServer({
      kind: 'xvfb',
      logDir: tempDir('kvmux-stuck-log-'),
      range: testDisplayRange,
      readyTimeoutMs: 300,
      killWaitMs: 300,
      onStuck: (s) => stuck.push(s),
    });
    const outcome = await Promise.race([
      start.then(
        () => 'started',
        (err: Error) => err.message,
      ),
      new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000)),
    ]);
    try {
      expect(outcome).toMatch(/not ready after 300 ms/);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(stuck).toHaveLength(1);
      const state = readFileSync(`/proc/${stuck[0]!.pid}/stat`, 'latin1');
      expect(state.split(') ')[1]?.[0]).toBe('D');
    } finally {
      writeFileSync(join(group, 'freezer.state'), 'THAWED');
    }
    const exit = await Promise.race([
      stuck[0]?.exited ?? start.catch(() => null),
      new Promise((r) => setTimeout(() => r('no exit'), 3000)),
    ]);
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
  });
});
