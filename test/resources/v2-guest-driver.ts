import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/schema.js';
import { CgroupResources, detectCgroups } from '../../src/resources/cgroup.js';
import { createCommandBackend } from '../../src/session/backends/command.js';
import { Supervisor } from '../../src/session/supervisor.js';

/**
 * Runs INSIDE the cgroup-v2 Linux guest (cgroup-v2-guest.test.ts bundles it with esbuild): kvmux's
 * own Supervisor, command backend and CgroupResources on a pure cgroup2 mount, with command VMs
 * standing for a VM's process tree. It measures and prints one `KVMUX-V2-RESULT {json}` line; the
 * host-side test judges it. Nothing here asserts: a crash prints `KVMUX-V2-ERROR`.
 */
const stateDir = process.argv[2] ?? '/run/kvmux-v2';
const layout = detectCgroups('/sys/fs/cgroup');
const res = layout ? new CgroupResources({ layout }) : null;
const out: Record<string, unknown> = { layout };

const burner = ['/bin/sh', '-c', 'while :; do :; done'];
// tail keeps everything it reads of /dev/zero (it never sees a newline): it grows until killed
const hog = ['/usr/bin/tail', '/dev/zero'];

const config = configSchema.parse({
  runDir: join(stateDir, 'run'),
  stateDir: join(stateDir, 'state'),
  vms: [
    {
      name: 'burn',
      backend: 'command',
      command: burner,
      resources: { cpuQuota: 0.3, cpuset: '1', ioWeight: 250 },
    },
    { name: 'hog', backend: 'command', command: hog, resources: { memoryMaxMiB: 64 } },
    { name: 'calm', backend: 'command', command: ['/bin/sleep', '600'] },
  ],
});

const file = (vm: string, f: string) => {
  try {
    return readFileSync(join(layout?.root ?? '', 'kvmux', vm, f), 'utf8').trim();
  } catch {
    return null;
  }
};
const rawFiles = (vm: string) =>
  Object.fromEntries(
    ['cpu.max', 'cpuset.cpus', 'cpuset.cpus.effective', 'memory.max', 'memory.swap.max', 'io.weight'].map(
      (f) => [f, file(vm, f)],
    ),
  );
const statusField = (pid: number, key: string) =>
  new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? null;
// field 39 of /proc/PID/stat: the CPU it last ran on
const lastCpu = (pid: number) =>
  Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[36] ?? -1);

/** The cgroup's CPU use over `ms`, in CPUs, and the CPUs the process was seen on meanwhile. */
async function cpuOver(sup: Supervisor, vm: string, ms: number) {
  const pid = sup.get(vm).pid ?? 0;
  const seen = new Set<number>();
  const a = res?.cpuUsageUs(vm) ?? 0;
  const t = performance.now();
  while (performance.now() - t < ms) {
    seen.add(lastCpu(pid));
    await sleep(50);
  }
  const used = ((res?.cpuUsageUs(vm) ?? 0) - a) / ((performance.now() - t) * 1000);
  return { used, cpusSeen: [...seen].sort() };
}

let sup: Supervisor | undefined;
/** Where main() is, for the report of a run that ends before it settles. */
let step = 'start';

/** What went wrong, for the host-side test's failure message: each VM's status and its log. */
function diagnose(): string {
  return ['burn', 'hog', 'calm']
    .map((vm) => {
      let log = '';
      try {
        log = readFileSync(join(config.runDir, 'vm', vm, 'command.log'), 'utf8').slice(-500);
      } catch {}
      return `${JSON.stringify(sup?.get(vm))}\n${log}`;
    })
    .join('\n');
}

async function main(): Promise<void> {
  if (!res) throw new Error('no cgroup hierarchy found under /sys/fs/cgroup');
  sup = new Supervisor({
    config,
    backends: { command: createCommandBackend({ termTimeoutMs: 1000 }) },
    displayFor: () => ({ display: ':99', width: 0, height: 0 }),
    resources: res,
  });

  step = 'limits';
  // 1. limits at start: quota, cpuset, io weight, measured and read back
  const burn = await sup.start('burn');
  out['subtreeControl'] = [layout!.root, join(layout!.root, 'kvmux')].map((d) =>
    readFileSync(join(d, 'cgroup.subtree_control'), 'utf8').trim(),
  );
  out['burn'] = {
    pid: burn.pid,
    inCgroup: res.pids('burn').includes(burn.pid ?? -1),
    procCgroup: readFileSync(`/proc/${burn.pid}/cgroup`, 'utf8').trim(),
    cpusAllowed: statusField(burn.pid ?? 0, 'Cpus_allowed_list'),
    applied: sup.appliedResources('burn'),
    files: rawFiles('burn'),
    ...(await cpuOver(sup, 'burn', 3000)),
  };

  step = 'live change';
  // 2. live change (what vm.setResources does for a running VM), measured and read back
  const live = sup.setResources('burn', { cpuQuota: 0.6, cpuset: '0', ioWeight: 40, memoryMaxMiB: 100 });
  await sleep(200);
  out['changed'] = {
    live,
    cpusAllowed: statusField(burn.pid ?? 0, 'Cpus_allowed_list'),
    applied: sup.appliedResources('burn'),
    files: rawFiles('burn'),
    ...(await cpuOver(sup, 'burn', 3000)),
  };
  // every limit dropped: the burner takes a whole CPU again
  sup.setResources('burn', {});
  await sleep(200);
  out['dropped'] = {
    applied: sup.appliedResources('burn'),
    files: rawFiles('burn'),
    ...(await cpuOver(sup, 'burn', 1500)),
  };

  step = 'freeze';
  // 3. hibernate in memory: cgroup.freeze
  res.freeze('burn', true);
  await sleep(300);
  const frozen = await cpuOver(sup, 'burn', 1000);
  res.freeze('burn', false);
  out['freeze'] = { frozenUsed: frozen.used, thawedUsed: (await cpuOver(sup, 'burn', 1000)).used };

  step = 'oom';
  // 4. memory.max: an OOM kill inside the hog's cgroup, everything else goes on
  const calm = await sup.start('calm');
  // the first run's pid: a crashed hog is restarted (with backoff) by the supervisor
  let hogPid = 0;
  sup.on('state', (st) => {
    if (st.name === 'hog' && st.pid && !hogPid) hogPid = st.pid;
  });
  await sup.start('hog').catch(() => {});
  const end = Date.now() + 60_000;
  while (sup.get('hog').state === 'running' && Date.now() < end) await sleep(100);
  const kmsg = execFileSync('dmesg', { encoding: 'utf8' });
  out['hog'] = {
    pid: hogPid,
    state: sup.get('hog').state,
    lastError: sup.get('hog').lastError,
    oomKillLine: kmsg.split('\n').find((l) => l.includes(`Killed process ${hogPid} `)) ?? null,
    globalOomKills: kmsg.split('\n').filter((l) => /Out of memory: Killed process/.test(l)),
    calm: { pid: sup.get('calm').pid, startPid: calm.pid, state: sup.get('calm').state },
    burn: { pid: sup.get('burn').pid, state: sup.get('burn').state },
    driverAlive: true,
  };

  step = 'shutdown';
  // 5. stop: nothing left of the VMs' cgroups
  await sup.shutdown({ force: true });
  await sleep(500);
  out['afterStop'] = ['burn', 'hog', 'calm'].filter((vm) =>
    [...res.dirs(vm).values()].some((d) => existsSync(d)),
  );
}

/**
 * Exit once the line has left this process. Should the event loop run empty before main() settles
 * (it did in CI: `rc=0` on the console and no result line; goneWithin now holds the loop until a
 * stopped VM's exit is seen), the exit handler says so, with the step reached and the VMs' states.
 */
let said = false;
const say = (line: string, code: number) => {
  said = true;
  process.stdout.write(line, () => process.exit(code));
};
process.on('exit', (code) => {
  if (!said)
    writeSync(
      1,
      `KVMUX-V2-ERROR the event loop ran empty (exit ${code}) at step "${step}" before main() settled\n${diagnose()}\n`,
    );
});

main().then(
  () => say(`KVMUX-V2-RESULT ${JSON.stringify(out)}\n`, 0),
  (err: unknown) =>
    say(`KVMUX-V2-ERROR ${String(err instanceof Error ? err.stack : err)}\n${diagnose()}\n`, 1),
);
