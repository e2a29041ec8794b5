import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { createSubhostBackend, subhostAvailable } from '../../../src/session/backends/subhost.js';
import { Supervisor } from '../../../src/session/supervisor.js';
import { loudSkip } from '../../helpers/skips.js';
import { tempDir } from '../../helpers/temp.js';

/**
 * DISKS as the seed means them: the first entry is the root filesystem (here a whole-image ext4,
 * part 0), the next a partition of a partitioned image (part 1, bound in at /mnt/vdb1). Both are
 * loop-mounted while the subhost runs, and no loop device or mount is left after it stops.
 */
const dir = tempDir('kvmux-subhost-disks-');
const ready = subhostAvailable() && existsSync('/dev/loop-control');
let sup: Supervisor;

const INIT = `#!/bin/sh
mkdir -p /var/log
cat /mnt/vdb1/hello.txt > /var/log/disk.out
trap 'exit 0' TERM
while :; do sleep 1; done
`;

const loopsOf = (image: string) =>
  execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
const mountsIn = () =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(dir));

beforeAll(() => {
  if (!ready) return;
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'var', 'mnt/vdb1'])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  for (const a of ['sh', 'cat', 'sleep', 'mkdir']) symlinkSync('busybox', join(root, 'bin', a));
  writeFileSync(join(root, 'sbin', 'init'), INIT, { mode: 0o755 });
  writeFileSync(join(root, 'etc', 'os-release'), 'ID=busybox\n');
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', root, join(dir, 'root.img'), '32M']);
  // a partitioned data disk: one partition at 1 MiB holding hello.txt
  const data = join(dir, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 'hello.txt'), 'hello from vdb1\n');
  const img = join(dir, 'data.img');
  execFileSync('truncate', ['-s', '17M', img]);
  execFileSync('sfdisk', ['-q', img], { input: 'label: dos\nstart=2048, type=83\n' });
  execFileSync('mke2fs', ['-q', '-t', 'ext4', '-E', 'offset=1048576', '-d', data, img, '16M']);
  const config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    vms: [
      {
        name: 'disky',
        backend: 'subhost',
        subhost: {
          killSignal: 'SIGTERM',
          disks: [
            { dev: 'vda', part: 0, image: join(dir, 'root.img') },
            { dev: 'vdb', part: 1, image: img },
          ],
        },
      },
    ],
  });
  sup = new Supervisor({
    config,
    backends: {
      subhost: createSubhostBackend({ stateDir: config.stateDir, net: () => null, stopTimeoutMs: 5000 }),
    },
    displayFor: () => ({ display: ':9', width: 0, height: 0 }),
  });
});

afterAll(async () => {
  await sup?.shutdown({ force: true });
});

describe.runIf(ready)('subhost DISKS', () => {
  it('boots from the first disk, binds the partition of the second, and leaves no loop or mount', async () => {
    expect(await sup.start('disky')).toMatchObject({ state: 'running' });
    const out = join(dir, 'state', 'subhost', 'disky', 'upper', 'var', 'log', 'disk.out');
    const text = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
    for (let i = 0; i < 100 && !text().endsWith('\n'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(readFileSync(out, 'utf8')).toBe('hello from vdb1\n');
    expect(loopsOf(join(dir, 'root.img'))).toHaveLength(1);
    expect(loopsOf(join(dir, 'data.img'))).toHaveLength(1);
    expect(mountsIn().length).toBeGreaterThanOrEqual(2);

    expect(await sup.stop('disky')).toMatchObject({ state: 'stopped' });
    expect(loopsOf(join(dir, 'root.img'))).toEqual([]);
    expect(loopsOf(join(dir, 'data.img'))).toEqual([]);
    expect(mountsIn()).toEqual([]);
  }, 60_000);
});

if (!ready) loudSkip('subhost DISKS', 'systemd-nspawn or loop devices are missing');
