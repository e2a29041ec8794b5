import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../src/demo/fifo-keys.js';
import { startKvmux } from '../src/demo/kvmux-process.js';
import { procCpuTicks, schedOf, ticks, xServerPid } from './procs.js';

/**
 * What the real-time X server on screen costs everyone else when its guest draws as fast as it
 * can: a boot sector that switches to VGA mode 13h and rewrites the whole screen in a loop, so
 * every refresh of QEMU's window is a full-screen update to the X server. Measured with the X
 * server at SCHED_RR 1 (what kvmux does for the display on screen) and at SCHED_OTHER, alternating,
 * with two normal spinners beside it: their share is what the raised server leaves the machine.
 */
function floodSector(): Buffer {
  const code = [
    ...[0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xd0, 0xbc, 0x00, 0x7c], // xor ax,ax; mov ds/ss,ax; mov sp,0x7c00
    ...[0xb8, 0x13, 0x00, 0xcd, 0x10], // mov ax,0x13; int 10h (320x200, 256 colours)
    ...[0xb8, 0x00, 0xa0, 0x8e, 0xc0, 0xfc], // mov ax,0xa000; mov es,ax; cld
    ...[0x30, 0xdb], // xor bl,bl (the colour)
  ];
  const loop = code.length;
  code.push(
    ...[0x31, 0xff, 0xb9, 0x00, 0x7d], // xor di,di; mov cx,32000
    ...[0x88, 0xd8, 0x88, 0xdc, 0xf3, 0xab], // mov al,bl; mov ah,bl; rep stosw (the whole screen)
    ...[0xfe, 0xc3, 0xeb], // inc bl; jmp loop
  );
  code.push((loop - (code.length + 1)) & 0xff);
  const disk = Buffer.alloc(1 << 20);
  disk.set(code, 0);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

function spinner() {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync('/tmp/kvmux-flood-bench-');
  const disk = join(dir, 'flood.img');
  writeFileSync(disk, floodSector());
  const k = await startKvmux({
    firstDisplay: 285,
    vms: [{ name: 'flood', backend: 'qemu', qemu: { disk, memoryMiB: 32 } }],
    readyTimeoutMs: 60_000,
  });
  try {
    await sleep(3000); // firmware, then the loop
    const display = (await k.call<Array<{ display: string }>>('display.list'))[0]!.display;
    const x = xServerPid(display);
    const asKvmuxLeftIt = schedOf(x);
    const rows: Record<string, Array<{ xServer: number; spinners: number[] }>> = { realtime: [], normal: [] };
    for (const mode of ['realtime', 'normal', 'realtime', 'normal'] as const) {
      execFileSync(
        'chrt',
        mode === 'realtime' ? ['-r', '-R', '-p', '1', String(x)] : ['-o', '-p', '0', String(x)],
      );
      const spin = [spinner(), spinner()];
      await sleep(500);
      const pids = [x, ...spin.map((s) => s.pid!)];
      const t0 = pids.map(procCpuTicks);
      const w0 = performance.now();
      await sleep(5000);
      const secs = (performance.now() - w0) / 1000;
      const pct = pids.map((p, i) => Math.round(((procCpuTicks(p) - t0[i]!) / ticks / secs) * 100));
      for (const s of spin) s.kill('SIGKILL');
      rows[mode]!.push({ xServer: pct[0]!, spinners: pct.slice(1) });
    }
    execFileSync('chrt', ['-r', '-R', '-p', '1', String(x)]);
    return {
      xServerAsKvmuxLeftIt: asKvmuxLeftIt,
      cpuPercent: rows,
      loadAverage1m: loadavg()[0],
      note:
        'a guest rewriting its whole VGA screen nonstop; CPU % of one CPU over 5 s each, the X server ' +
        'at SCHED_RR 1 (realtime) or SCHED_OTHER (normal), two normal spinners beside it',
    };
  } finally {
    await k.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
