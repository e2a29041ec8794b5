import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { rememberOriginalVt } from '../../src/service/original-vt.js';
import { Switcher } from '../../src/service/switcher.js';
import { consoleLock } from '../../src/x/console-lock.js';
import { activeVt, rememberActiveVt, switchVt } from '../../src/x/vt.js';
import { loudSkip, whyNoVts } from '../helpers/skips.js';
import { tempDir } from '../helpers/temp.js';
import { lockVts } from '../helpers/x-servers.js';

/** The Switcher in-process on real VTs (Xorg dummy): what the monitor shows and where input goes agree. */
const why = whyNoVts();
if (why) loudSkip('service/switcher-vt (Switcher on real VTs)', why);

/** VT_SETMODE VT_PROCESS on argv[1]; on the release signal, VT_RELDISP after argv[2] seconds. */
const slowVtOwner = `
import fcntl, os, signal, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
def release(*_):
    time.sleep(float(sys.argv[2])); fcntl.ioctl(fd, 0x5605, 1)
def acquire(*_):
    fcntl.ioctl(fd, 0x5605, 2)
signal.signal(signal.SIGUSR1, release)
signal.signal(signal.SIGUSR2, acquire)
fcntl.ioctl(fd, 0x5602, struct.pack('bbhhh', 1, 0, signal.SIGUSR1, signal.SIGUSR2, 0))
print('ready', flush=True)
while True: signal.pause()
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => boolean, what: string, ms = 8000): Promise<void> {
  for (const t0 = Date.now(); !fn(); await sleep(20))
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
}

describe.skipIf(why !== null)('switcher on real VTs (Xorg dummy)', () => {
  let lock: { release(): Promise<void> };
  let original: ReturnType<typeof rememberActiveVt>;
  let switcher: Switcher;
  const vtOf = (name: string) => switcher.list().find((d) => d.name === name)?.vt ?? null;

  beforeAll(async () => {
    lock = await lockVts();
    original = rememberActiveVt();
    const dir = tempDir('kvmux-switcher-vt-');
    const config = configSchema.parse({
      runDir: join(dir, 'run'),
      stateDir: join(dir, 'state'),
      console: 'vt',
      x: { firstDisplay: 170, firstVt: 40, width: 640, height: 480 },
    });
    switcher = new Switcher({ config });
    switcher.add('a', 'vm');
    switcher.add('b', 'vm');
    await switcher.startAll();
    await until(() => vtOf('b') !== null && activeVt() === vtOf('a'), 'both up, a shown');
  }, 60_000);

  afterAll(async () => {
    try {
      await switcher?.stop();
      await original?.restore();
      expect(activeVt()).toBe(original.vt);
    } finally {
      await lock?.release();
    }
  });

  it('a switch waits while the console is held; input moves only once the monitor shows the display', async () => {
    const switched: Array<[string, number]> = [];
    switcher.on('switched', (name) => switched.push([name, activeVt()]));
    void consoleLock.run(() => new Promise<void>(() => {}), { what: 'stuck xorg start', maxHoldMs: 800 });
    const done = switcher.switchTo('b');
    await sleep(400);
    // the monitor still shows a: so do the keyboard and the menu
    expect(activeVt()).toBe(vtOf('a'));
    expect(switcher.active).toBe('a');
    expect(switched).toEqual([]);
    const r = await done;
    expect(r.vt).toBe(vtOf('b'));
    expect(switched).toEqual([['b', vtOf('b')]]);
    expect(switcher.active).toBe('b');
    switcher.removeAllListeners('switched');
  });

  it("the shown display's Xorg dies and comes back on another VT: the monitor follows it", async () => {
    expect(switcher.active).toBe('b');
    const dead = switcher.live('b')!.server;
    process.kill(dead.pid, 'SIGKILL');
    await until(() => switcher.live('b') === null, 'b gone');
    // -novtswitch and the dummy driver: the console stays on the dead display's VT, like input
    expect(activeVt()).toBe(dead.vt);
    await until(() => switcher.live('b') !== null, 'b restarted', 10_000);
    const again = switcher.live('b')!.server;
    // the VT that is active is never handed out again, so the new server is elsewhere
    expect(again.vt).not.toBe(dead.vt);
    await until(() => activeVt() === again.vt, 'the monitor shows the restarted b', 3000);
    expect(switcher.active).toBe('b');
  }, 20_000);

  it('a switch that times out behind a slow VT owner fails, and input follows when the VT comes late', async () => {
    await switcher.switchTo('a');
    const vtA = vtOf('a')!;
    // a stand-in for a busy Xorg: owns VT a in VT_PROCESS mode and lets go 4.5 s after asked
    const owner = spawn('python3', ['-c', slowVtOwner, `/dev/tty${vtA}`, '4.5'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise((r) => owner.stdout.once('data', r));
      const switched: string[] = [];
      switcher.on('switched', (name) => switched.push(name));
      await expect(switcher.switchTo('b')).rejects.toThrow(/did not become active within 3000 ms/);
      // the monitor still shows a: input stays there too
      expect(activeVt()).toBe(vtA);
      expect(switcher.active).toBe('a');
      expect(switched).toEqual([]);
      await until(() => activeVt() === vtOf('b'), 'the late VT switch', 5000);
      await until(() => switcher.active === 'b', 'input following the late switch', 1000);
      expect(switched).toEqual(['b']);
    } finally {
      switcher.removeAllListeners('switched');
      owner.kill('SIGTERM');
      await new Promise((r) => (owner.exitCode !== null ? r(null) : owner.once('exit', r)));
    }
  }, 20_000);

  it('Xorg runs with -novtswitch (a KMS Xorg exiting must not pick the VT)', async () => {
    const { readFileSync } = await import('node:fs');
    const argv = readFileSync(`/proc/${switcher.live('a')!.server.pid}/cmdline`, 'latin1').split('\0');
    expect(argv).toContain('-novtswitch');
  });

  it('the VT restore at shutdown waits for the console lock', async () => {
    await switchVt(vtOf('a')!);
    const guard = rememberOriginalVt(tempDir('kvmux-orig-vt-'));
    await switchVt(vtOf('b')!);
    let release = () => {};
    void consoleLock.run(() => new Promise<void>((r) => (release = r)), { what: 'xorg start' });
    const restored = guard.restore();
    await sleep(300);
    expect(activeVt()).toBe(vtOf('b'));
    release();
    await restored;
    expect(activeVt()).toBe(vtOf('a'));
  });
});
