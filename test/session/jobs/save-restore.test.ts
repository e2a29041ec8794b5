import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, configSchema } from '../../../src/config/schema.js';
import { createQemuBackend } from '../../../src/session/backends/qemu.js';
import { savePaths } from '../../../src/session/jobs/saved-state.js';
import { Supervisor } from '../../../src/session/supervisor.js';
import { vmDirOf } from '../../../src/session/vm-paths.js';
import { isAlive } from '../../../src/util/proc.js';
import { buildInitramfs, counterInit, linuxGuestQemu } from '../../fixtures/linux-guest.js';
import { tempDir } from '../../helpers/temp.js';
import { startTestDisplay, type TestDisplay } from '../helpers/display.js';

/**
 * save → restore of a real Linux guest (Debian kernel + busybox initramfs, TCG): a counter the guest
 * prints every 100 ms on its serial console and screen goes on from where it was, not from 1.
 */
const dir = tempDir('kvmux-save-restore-');
let display: TestDisplay;
let config: Config;
let sup: Supervisor;
const disk = join(dir, 'disk.img');

const serial = () => readFileSync(join(vmDirOf(config.runDir, 'tux'), 'serial.log'), 'utf8');
const counts = (text: string) => [...text.matchAll(/count (\d+)/g)].map((m) => Number(m[1]));

async function waitCount(atLeast: number, timeoutMs = 60_000): Promise<number[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const c = counts(serial());
    if (c.length >= atLeast) return c;
    if (Date.now() > end)
      throw new Error(`no ${atLeast} counts on the serial console: ${serial().slice(-300)}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  display = await startTestDisplay(137);
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  const initrd = await buildInitramfs({
    init: counterInit({ screen: true }),
    outDir: join(dir, 'initrd'),
  });
  config = configSchema.parse({
    runDir: join(dir, 'run'),
    stateDir: join(dir, 'state'),
    vms: [
      {
        name: 'tux',
        backend: 'qemu',
        qemu: linuxGuestQemu(initrd, { disk, memoryMiB: 128 }),
      },
    ],
  });
  sup = new Supervisor({
    config,
    backends: { qemu: createQemuBackend() },
    displayFor: () => ({ display: display.display, width: 1024, height: 768 }),
  });
}, 120_000);

afterAll(async () => {
  await sup?.shutdown({ force: true });
  await display?.stop();
});

describe('vm.save and vm.restore of a running QEMU guest', () => {
  it('the counter continues from where it was saved', async () => {
    await sup.start('tux');
    const pid = sup.get('tux').pid ?? 0;
    await waitCount(5);
    const meta = await sup.save('tux');
    const before = counts(serial());
    const last = before.at(-1) ?? 0;
    const paths = savePaths(config.stateDir, 'tux');
    expect(sup.get('tux')).toMatchObject({ state: 'stopped', crashes: 0, savedAt: meta.savedAt });
    expect(sup.get('tux').job).toMatchObject({ kind: 'save', status: 'completed', percent: 100 });
    expect(isAlive(pid)).toBe(false);
    expect(statSync(paths.file).size).toBe(meta.bytes);
    expect(meta.disks).toEqual([expect.objectContaining({ path: disk, size: 1024 * 1024 })]);

    const r = await sup.restore('tux');
    expect(r.job).toMatchObject({ kind: 'restore', status: 'completed' });
    expect(sup.get('tux')).toMatchObject({ state: 'running', savedAt: null });
    const after = await waitCount(3);
    process.stderr.write(
      `[save-restore] saved at count ${last}, restored counts ${after.slice(0, 3).join(',')}\n`,
    );
    // the guest's memory came back: it counts on from `last`, a fresh boot would start at 1
    expect(after[0]).toBeGreaterThanOrEqual(last);
    expect(after[0]).toBeLessThanOrEqual(last + 2);
    expect(after[2]).toBe((after[0] ?? 0) + 2);
    expect(() => statSync(paths.file)).toThrow();
  }, 180_000);

  it('a disk written after the save makes restore refuse, and keeps the saved state', async () => {
    expect(sup.get('tux').state).toBe('running');
    await sup.save('tux');
    const t = new Date(Date.now() + 5000);
    utimesSync(disk, t, t);
    await expect(sup.restore('tux')).rejects.toThrow(
      /does not match its disk: disk .* changed since the save/,
    );
    expect(sup.get('tux')).toMatchObject({ state: 'stopped' });
    expect(sup.get('tux').savedAt).not.toBeNull();
  }, 120_000);
});
