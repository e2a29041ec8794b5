import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Config, configSchema } from '../../src/config/schema.js';
import { createCommandBackend } from '../../src/session/backends/command.js';
import { savePaths } from '../../src/session/jobs/saved-state.js';
import { Supervisor, type VmStatus } from '../../src/session/supervisor.js';
import { vmDirOf } from '../../src/session/vm-paths.js';
import { VmRecordStore } from '../../src/session/vm-records.js';
import { isAlive, readProcStat } from '../../src/util/proc.js';
import { tempDir } from '../helpers/temp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(20))
    if (Date.now() > end) throw new Error('not in time');
}
const supervisors: Supervisor[] = [];
const children: ChildProcess[] = [];

function setup(vms: unknown[]): { config: Config; sup: () => Supervisor } {
  const dir = tempDir('kvmux-sup-test-');
  const config = configSchema.parse({ runDir: join(dir, 'run'), stateDir: join(dir, 'state'), vms });
  const sup = () => {
    const s = new Supervisor({
      config,
      backends: { command: createCommandBackend({ termTimeoutMs: 2000 }) },
      displayFor: () => ({ display: ':139', width: 1024, height: 768 }),
      policy: { baseMs: 50, maxMs: 200, maxCrashes: 3, windowMs: 60_000 },
    });
    supervisors.push(s);
    return s;
  };
  return { config, sup };
}

function waitState(sup: Supervisor, pred: (st: VmStatus) => boolean): Promise<VmStatus> {
  return new Promise((resolve) => {
    const on = (st: VmStatus) => {
      if (!pred(st)) return;
      sup.off('state', on);
      resolve(st);
    };
    sup.on('state', on);
  });
}

afterEach(async () => {
  for (const s of supervisors.splice(0)) await s.shutdown({ force: true });
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

describe('supervisor with real processes (command backend)', () => {
  it('restarts a crashing VM with backoff, then gives up and says so in the list', async () => {
    const { sup: make } = setup([{ name: 'flaky', backend: 'command', command: ['sh', '-c', 'exit 3'] }]);
    const sup = make();
    const pids = new Set<number>();
    sup.on('state', (st) => st.pid && pids.add(st.pid));
    const gaveUp = waitState(sup, (st) => st.gaveUp);
    await sup.start('flaky').catch(() => {});
    const final = await gaveUp;
    expect(final).toMatchObject({
      name: 'flaky',
      backend: 'command',
      state: 'crashed',
      pid: null,
      crashes: 3,
    });
    expect(pids.size).toBe(3);
    expect(sup.list()[0]).toMatchObject({ state: 'crashed', gaveUp: true, nextRestartAt: null });
    expect(sup.list()[0]!.lastError).toMatch(/code 3/);
  });

  it('a program that exits 0 is stopped, not restarted', async () => {
    const { sup: make } = setup([{ name: 'once', backend: 'command', command: ['sh', '-c', 'sleep 0.2'] }]);
    const sup = make();
    await sup.start('once');
    const st = await waitState(sup, (s) => s.state !== 'running');
    expect(st).toMatchObject({ state: 'stopped', crashes: 0 });
  });

  it('gives the program a temp folder of its own, emptied at each start (not /tmp)', async () => {
    const script = 'd=$(mktemp -d); echo "$d" > "$KVMUX_VM_DIR/made"; exec sleep 1000';
    const { config, sup: make } = setup([{ name: 'tmp', backend: 'command', command: ['sh', '-c', script] }]);
    const sup = make();
    const vmTmp = join(vmDirOf(config.runDir, 'tmp'), 'tmp');
    const made = join(vmDirOf(config.runDir, 'tmp'), 'made');
    await sup.start('tmp');
    await until(() => existsSync(made));
    const first = readFileSync(made, 'utf8').trim();
    expect(first.startsWith(`${vmTmp}/`)).toBe(true);
    expect(existsSync(first)).toBe(true);
    await sup.stop('tmp');
    rmSync(made);
    await sup.start('tmp');
    await until(() => existsSync(made));
    expect(existsSync(first)).toBe(false); // what the last run left is gone
    expect(readdirSync(vmTmp)).toHaveLength(1);
  });

  it('stops gracefully with SIGTERM and forgets its record', async () => {
    const { config, sup: make } = setup([{ name: 'idle', backend: 'command', command: ['sleep', '1000'] }]);
    const sup = make();
    const { pid } = await sup.start('idle');
    const store = new VmRecordStore(config.stateDir);
    expect(store.load('idle')).toMatchObject({ pid, startTime: readProcStat(pid!)!.startTime });
    expect(await sup.stop('idle')).toMatchObject({ state: 'stopped', pid: null });
    expect(isAlive(pid!)).toBe(false);
    expect(existsSync(store.path('idle'))).toBe(false);
  });

  it('refuses receive and restore on a running VM; its next start is a normal boot, not a wait for a stream', async () => {
    const script = 'echo $$ >> "$KVMUX_VM_DIR/boots"; exec sleep 1000';
    const { config, sup: make } = setup([
      { name: 'busy', backend: 'command', command: ['sh', '-c', script] },
    ]);
    // a saved state (no disks, like the VM), so restore gets past "has no saved state" to the guard
    const saved = savePaths(config.stateDir, 'busy');
    mkdirSync(saved.dir, { recursive: true });
    writeFileSync(saved.file, '');
    const meta = { vm: 'busy', savedAt: new Date().toISOString(), bytes: 0, memoryMiB: null, disks: [] };
    writeFileSync(saved.meta, JSON.stringify(meta));
    const sup = make();
    const boots = join(vmDirOf(config.runDir, 'busy'), 'boots');
    const bootCount = () => (existsSync(boots) ? readFileSync(boots, 'utf8').trim().split('\n').length : 0);
    const first = await sup.start('busy');
    await until(() => bootCount() === 1);

    await expect(sup.receive('busy', 'tcp:127.0.0.1:1')).rejects.toThrow(
      /is running: stop it before a receive/,
    );
    await expect(sup.restore('busy')).rejects.toThrow(/is running: stop it before a restore/);
    expect(sup.get('busy')).toMatchObject({ state: 'running', pid: first.pid, job: null, lastError: null });
    expect(sup.get('busy').savedAt).toBe(meta.savedAt);

    // nothing of the refused intake may linger: the next launch boots the program, no stream job
    await sup.stop('busy');
    const again = await sup.start('busy');
    expect(again.pid).not.toBe(first.pid);
    await until(() => bootCount() === 2);
    expect(new VmRecordStore(config.stateDir).load('busy')).toMatchObject({ pid: again.pid });
    expect(new VmRecordStore(config.stateDir).load('busy')).not.toHaveProperty('job');
    await sleep(200); // a launch taking a stream would fail it (no QMP) and stop the VM by now
    expect(sup.get('busy')).toMatchObject({ state: 'running', pid: again.pid, job: null, lastError: null });
    expect(isAlive(again.pid!)).toBe(true);
  });

  it('a second supervisor adopts the running VM (same pid) instead of starting a duplicate', async () => {
    const { sup: make } = setup([{ name: 'keep', backend: 'command', command: ['sleep', '1000'] }]);
    const first = make();
    const { pid } = await first.start('keep');
    const second = make();
    await second.autostart();
    expect(second.get('keep')).toMatchObject({ state: 'running', pid });
    await second.stop('keep', { force: true });
    expect(isAlive(pid!)).toBe(false);
  });

  it('a record whose pid was reused by another process is not adopted', async () => {
    const { config, sup: make } = setup([
      { name: 'reuse', backend: 'command', command: ['sleep', '1000'], autostart: false },
    ]);
    const other = spawn('sleep', ['1000']);
    children.push(other);
    const real = readProcStat(other.pid!)!;
    new VmRecordStore(config.stateDir).save({
      name: 'reuse',
      backend: 'command',
      pid: other.pid!,
      startTime: real.startTime - 1,
      display: ':139',
      sockets: {},
    });
    const sup = make();
    expect(await sup.adoptAll()).toEqual([]);
    expect(sup.get('reuse').state).toBe('stopped');
  });

  it('a zombie counts as dead: not adopted, and autostart launches a fresh VM', async () => {
    const { config, sup: make } = setup([{ name: 'undead', backend: 'command', command: ['sleep', '1000'] }]);
    // The parent forks a child that exits at once and is not reaped until stdin closes: a zombie.
    const parent = spawn(
      'python3',
      [
        '-c',
        'import os,sys\np=os.fork()\nif p==0: os._exit(0)\nprint(p,flush=True)\nsys.stdin.read()\nos.waitpid(p,0)',
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    children.push(parent);
    const zpid = Number(await new Promise<string>((r) => parent.stdout!.once('data', (d) => r(String(d)))));
    let st = readProcStat(zpid);
    for (let i = 0; i < 50 && st?.state !== 'Z'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      st = readProcStat(zpid);
    }
    expect(st?.state).toBe('Z');
    const store = new VmRecordStore(config.stateDir);
    store.save({
      name: 'undead',
      backend: 'command',
      pid: zpid,
      startTime: st!.startTime,
      display: ':139',
      sockets: {},
    });
    const sup = make();
    await sup.autostart();
    const now = sup.get('undead');
    expect(now.state).toBe('running');
    expect(now.pid).not.toBe(zpid);
    parent.stdin!.end();
  });
});

describe('autostart with a lead (the VM on the display shown first)', () => {
  const three = ['a', 'b', 'c'].map((name) => ({ name, backend: 'command', command: ['sleep', '1000'] }));

  it('starts the lead alone, then afterLead, then the others in config order', async () => {
    const { sup: make } = setup(three);
    const sup = make();
    const events: string[] = [];
    sup.on('state', (st) => events.push(`${st.name} ${st.state}`));
    await sup.autostart({ lead: 'b', afterLead: () => events.push('afterLead') });
    expect(events).toEqual([
      'b starting',
      'b running',
      'afterLead',
      'a starting',
      'a running',
      'c starting',
      'c running',
    ]);
  });

  it('a lead that takes too long shares the start after leadMs; autostart still waits for it', async () => {
    const dir = tempDir('kvmux-sup-lead-');
    const config = configSchema.parse({ runDir: join(dir, 'run'), stateDir: join(dir, 'state'), vms: three });
    let showB: () => void = () => {};
    const bDisplay = new Promise<void>((r) => (showB = r));
    const sup = new Supervisor({
      config,
      backends: { command: createCommandBackend({ termTimeoutMs: 2000 }) },
      // b's display is slow to come up: its launch waits for it
      displayFor: async (vm) => {
        if (vm.name === 'b') await bDisplay;
        return { display: ':139', width: 1024, height: 768 };
      },
    });
    supervisors.push(sup);
    const events: string[] = [];
    sup.on('state', (st) => events.push(`${st.name} ${st.state}`));
    let done = false;
    const all = sup
      .autostart({ lead: 'b', leadMs: 300, afterLead: () => events.push('afterLead') })
      .then(() => (done = true));
    try {
      const cUp = waitState(sup, (st) => st.name === 'c' && st.state === 'running').then(() => true);
      expect(await Promise.race([cUp, sleep(5000).then(() => false)])).toBe(true);
      expect(events).toEqual([
        'b starting',
        'afterLead',
        'a starting',
        'a running',
        'c starting',
        'c running',
      ]);
      expect(done).toBe(false);
    } finally {
      showB(); // also when it failed: shutdown in afterEach must not wait for b's display
    }
    await all;
    expect(sup.get('b').state).toBe('running');
  });
});
