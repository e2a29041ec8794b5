import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { vmSchema } from '../src/config/schema.js';
import { writeDemoDisk } from '../src/demo/demo-disk.js';
import type { Backend, VmHandle } from '../src/session/backends/backend.js';
import { type KioskWm, startKioskWm } from '../src/x/kiosk-wm.js';
import { startXServer, type XServer } from '../src/x/server.js';

/** Four boot-sector VMs, each on its own Xvfb behind the kiosk WM: RSS and idle CPU once they show. */
const DISPLAYS = [130, 131, 132, 133];
// Under kvm_pvm SeaBIOS alone takes 5-9 s with four guests booting at once.
const SETTLE_MS = 15_000;
const SAMPLE_MS = 5000;
const TICKS = 100; // USER_HZ: /proc/PID/stat times are in clock ticks

function cpuTicks(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export async function fourVms(
  accel: 'kvm' | 'tcg',
  dir: string,
  backend: Backend,
): Promise<Record<string, unknown>> {
  const servers: XServer[] = [];
  const wms: KioskWm[] = [];
  const vms: VmHandle[] = [];
  try {
    for (const [i, n] of DISPLAYS.entries()) {
      const server = await startXServer({ kind: 'xvfb', logDir: dir, number: n });
      servers.push(server);
      wms.push(await startKioskWm(server.display));
      const disk = writeDemoDisk(join(dir, `four-${i}.img`), { text: `vm-${i}`, colour: i });
      const vm = vmSchema.parse({ name: `four-${i}`, backend: 'qemu', qemu: { disk, memoryMiB: 64, accel } });
      const vmDir = join(dir, 'four', vm.name);
      mkdirSync(vmDir, { recursive: true });
      vms.push(
        await backend.start(vm, { display: server.display, vmDir, width: 1024, height: 768, taps: [] }),
      );
    }
    await sleep(SETTLE_MS);
    const pids = [...vms.map((v) => v.pid), ...servers.map((s) => s.pid)];
    const before = pids.map(cpuTicks);
    await sleep(SAMPLE_MS);
    const used = pids.map((p, i) => cpuTicks(p) - before[i]!);
    const pct = (ticks: number) => Number(((ticks / TICKS / (SAMPLE_MS / 1000)) * 100).toFixed(1));
    const qemuTicks = used.slice(0, vms.length).reduce((a, b) => a + b, 0);
    const xTicks = used.slice(vms.length).reduce((a, b) => a + b, 0);
    return {
      qemuRssMiBTotal: Number(vms.reduce((a, v) => a + rssMiB(v.pid), 0).toFixed(1)),
      xvfbRssMiBTotal: Number(servers.reduce((a, s) => a + rssMiB(s.pid), 0).toFixed(1)),
      qemuIdleCpuPercentTotal: pct(qemuTicks),
      xvfbIdleCpuPercentTotal: pct(xTicks),
      note: `4 idle guests (hlt loop), ${SAMPLE_MS / 1000} s sample after ${SETTLE_MS / 1000} s; % of one core`,
    };
  } finally {
    for (const v of vms) await v.stop({ force: true });
    for (const w of wms) await w.stop().catch(() => {});
    for (const s of servers) await s.stop();
  }
}
