import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../src/config/schema.js';
import { createQemuBackend } from '../src/session/backends/qemu.js';
import { Supervisor } from '../src/session/supervisor.js';
import { vmDirOf } from '../src/session/vm-paths.js';
import { startKioskWm } from '../src/x/kiosk-wm.js';
import { startXServer } from '../src/x/server.js';
import { summarize } from './stats.js';

/**
 * QEMU jobs on a real Linux guest (Debian kernel + busybox initramfs, TCG, 128 MiB): live migration
 * back and forth between two supervisors (two kvmux stateDirs) over a unix socket, with QEMU's own
 * downtime and total time; then save → restore wall times and the saved file size.
 */
const ROUNDS = 6;
const SAVES = 3;

function initramfs(dir: string): string {
  const root = join(dir, 'root');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  const init = [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'mount -t proc proc /proc 2>/dev/null; mount -t devtmpfs dev /dev 2>/dev/null',
    'i=0; while :; do i=$((i+1)); echo "count $i"; sleep 0.1; done',
  ].join('\n');
  mkdirSync(join(root, 'proc'));
  mkdirSync(join(root, 'dev'));
  writeFileSync(join(root, 'init'), `${init}\n`);
  chmodSync(join(root, 'init'), 0o755);
  const out = join(dir, 'initrd.cpio');
  execFileSync('sh', ['-c', `cd '${root}' && find . | cpio -o -H newc --quiet > '${out}'`]);
  return out;
}

function kernel(): string {
  const v = readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .sort()
    .at(-1);
  if (!v) throw new Error('no /boot/vmlinuz-*');
  return join('/boot', v);
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-jobs-bench-'));
  const server = await startXServer({ kind: 'xvfb', logDir: dir, number: 126 });
  const wm = await startKioskWm(server.display);
  const vm = {
    name: 'tux',
    backend: 'qemu',
    qemu: {
      kernel: kernel(),
      initrd: initramfs(dir),
      append: 'console=ttyS1 panic=-1 quiet loglevel=3',
      accel: 'tcg',
      memoryMiB: 128,
    },
  };
  const sups = ['a', 'b'].map(
    (s) =>
      new Supervisor({
        config: configSchema.parse({
          runDir: join(dir, s, 'run'),
          stateDir: join(dir, s, 'state'),
          vms: [vm],
        }),
        backends: { qemu: createQemuBackend() },
        displayFor: () => ({ display: server.display, width: 1024, height: 768 }),
      }),
  );
  const serialOf = (i: number) => join(vmDirOf(join(dir, i ? 'b' : 'a', 'run'), 'tux'), 'serial.log');
  const counting = async (i: number) => {
    for (let t = 0; t < 600; t++) {
      const text = (() => {
        try {
          return readFileSync(serialOf(i), 'utf8');
        } catch {
          return '';
        }
      })();
      if ((text.match(/count \d+/g)?.length ?? 0) >= 3) return;
      await sleep(100);
    }
    throw new Error('the guest does not count');
  };
  try {
    const [a, b] = sups as [Supervisor, Supervisor];
    await a.start('tux');
    await counting(0);
    const downtime: number[] = [];
    const total: number[] = [];
    const wall: number[] = [];
    let from = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const src = from ? b : a;
      const dst = from ? a : b;
      const uri = `unix:${join(dir, `mig-${r}.sock`)}`;
      await dst.receive('tux', uri);
      const t0 = performance.now();
      const { job } = await src.migrate('tux', uri);
      wall.push(performance.now() - t0);
      downtime.push(job.downtimeMs ?? Number.NaN);
      total.push(job.totalMs ?? Number.NaN);
      await dst.incomingOf('tux');
      from = 1 - from;
    }
    const last = from ? b : a;
    const save: number[] = [];
    const restore: number[] = [];
    let bytes = 0;
    for (let r = 0; r < SAVES; r++) {
      const t0 = performance.now();
      const meta = await last.save('tux');
      save.push(performance.now() - t0);
      bytes = meta.bytes;
      const t1 = performance.now();
      await last.restore('tux');
      restore.push(performance.now() - t1);
    }
    return {
      note: 'Linux guest 128 MiB under TCG; migration over a unix socket between two supervisors; save = pause + gzip -1 stream + quit, restore = start -incoming + gunzip stream + cont',
      migrationDowntimeMs: summarize(downtime, 1),
      migrationTotalMs: summarize(total, 1),
      migrationWallMs: summarize(wall, 1),
      saveMs: summarize(save, 1),
      restoreMs: summarize(restore, 1),
      savedBytes: bytes,
    };
  } finally {
    for (const s of sups) await s.shutdown({ force: true });
    await wm.stop().catch(() => {});
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
