import { existsSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../src/config/schema.js';
import { CgroupResources, detectCgroups } from '../src/resources/cgroup.js';
import { V1_CONTROLLERS } from '../src/resources/limits.js';
import { createCommandBackend } from '../src/session/backends/command.js';
import { Supervisor } from '../src/session/supervisor.js';

/**
 * A CPU burner VM (command backend) held to cpuQuota 0.3 and then 0.6 (changed live), measured over
 * the cgroup's own CPU accounting for 3 s each; reports which cgroup version enforced it.
 */
export async function run(): Promise<Record<string, unknown>> {
  const layout = detectCgroups();
  if (!layout) return { skipped: 'no usable cgroup hierarchy' };
  const group = `kvmux-bench-${process.pid}`;
  const res = new CgroupResources({ layout, group });
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-res-bench-'));
  const sup = new Supervisor({
    config: configSchema.parse({
      runDir: join(dir, 'run'),
      stateDir: join(dir, 'state'),
      vms: [
        {
          name: 'burn',
          backend: 'command',
          command: ['/bin/sh', '-c', 'while :; do :; done'],
          resources: { cpuQuota: 0.3 },
        },
      ],
    }),
    backends: { command: createCommandBackend({ termTimeoutMs: 1000 }) },
    displayFor: () => ({ display: ':99', width: 0, height: 0 }),
    resources: res,
  });
  const over = async (ms: number) => {
    const a = res.cpuUsageUs('burn') ?? 0;
    const t = performance.now();
    await sleep(ms);
    return Number((((res.cpuUsageUs('burn') ?? 0) - a) / ((performance.now() - t) * 1000)).toFixed(3));
  };
  try {
    await sup.start('burn');
    const at03 = await over(3000);
    sup.setResources('burn', { cpuQuota: 0.6 });
    const at06 = await over(3000);
    return { cgroup: layout.mode, quota03UsedCpus: at03, quota06UsedCpus: at06 };
  } finally {
    await sup.shutdown({ force: true });
    await sleep(300);
    const parents =
      layout.mode === 'v2'
        ? [join(layout.root, group)]
        : V1_CONTROLLERS.map((c) => join(layout.root, c, group));
    for (const p of parents) if (existsSync(p)) rmdirSync(p);
    rmSync(dir, { recursive: true, force: true });
  }
}
