import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendFile } from '../../src/control/transfer/transfer-client.js';
import { writeDemoDisk } from '../../src/demo/demo-disk.js';
import { tempDir } from '../helpers/temp.js';
import { adoptOrphans, isAlive, type Kvmux, reapOrphans, startKvmux } from './kvmux-harness.js';

/**
 * The service's own life cycle: an uploaded image becomes a VM with a display while kvmux runs,
 * and SIGUSR1 ends kvmux cleanly while VMs and X servers keep running for the next start.
 */
interface VmRow {
  name: string;
  backend: string;
  state: string;
  pid: number | null;
}

describe('kvmux run life cycle', () => {
  let k: Kvmux;
  const images = tempDir('kvmux-images-');
  const list = () => k.call<VmRow[]>('vm.list');

  beforeAll(async () => {
    adoptOrphans();
    mkdirSync(images, { recursive: true });
    k = await startKvmux({
      vms: [{ name: 'base', backend: 'command', command: ['xterm'] }],
      extra: { imageDirs: [images] },
    });
  }, 90_000);

  afterAll(async () => {
    await k?.stop();
    reapOrphans();
  });

  it('turns an uploaded image into a stopped VM with its own display, which then starts', async () => {
    const src = writeDemoDisk(join(tempDir('kvmux-src-'), 'src.img'), { text: 'fresh' });
    const result = await sendFile(k.client, {
      prefix: 'image.upload',
      file: src,
      begin: { name: 'fresh.img' },
    });
    expect(result).toMatchObject({ path: join(images, 'fresh.img') });
    let rows = await list();
    for (let i = 0; i < 50 && !rows.some((r) => r.name === 'fresh'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await list();
    }
    expect(rows.find((r) => r.name === 'fresh')).toMatchObject({ backend: 'qemu', state: 'stopped' });
    const displays = await k.call<Array<{ name: string; display: string }>>('display.list');
    expect(displays.map((d) => d.name)).toEqual(['base', 'fresh']);
    const started = await k.call<VmRow>('vm.start', { name: 'fresh' });
    expect(started.state).toBe('running');
    expect(isAlive(started.pid!)).toBe(true);
    // an upload may not replace the disk of a running VM
    await expect(
      sendFile(k.client, { prefix: 'image.upload', file: src, begin: { name: 'fresh.img', replace: true } }),
    ).rejects.toMatchObject({ code: expect.any(Number) });
    await k.call('vm.stop', { name: 'fresh', force: true });
  }, 60_000);

  it('restarts a display whose X server dies, and the VM on it comes back', async () => {
    const display = async () =>
      (await k.call<Array<{ name: string; display: string }>>('display.list')).find(
        (d) => d.name === 'base',
      )!;
    const before = (await list()).find((r) => r.name === 'base')!;
    const record = readFileSync(join(k.dir, 'state', 'displays', 'base.json'), 'utf8');
    const xPid = (JSON.parse(record) as { pid: number }).pid;
    process.kill(xPid, 'SIGKILL');
    let after = before;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await list()).find((r) => r.name === 'base')!;
      if (after.state === 'running' && after.pid !== before.pid && (await display()).display) break;
    }
    expect(after.state).toBe('running');
    expect(after.pid).not.toBe(before.pid);
    expect((await display()).display).not.toBe('');
    expect(isAlive(xPid)).toBe(false);
    expect(k.log()).toContain('X server died; restarting it');
  }, 30_000);

  it('SIGUSR1 exits cleanly and leaves the VMs running; the next start adopts them and shows the same display', async () => {
    const before = await list();
    const running = before.filter((r) => r.state === 'running');
    expect(running.length).toBeGreaterThan(0);
    await k.call('display.switch', { name: 'fresh' });
    expect(await k.crash('SIGUSR1')).toBe(0);
    for (const r of running) expect(isAlive(r.pid!)).toBe(true);
    k = await k.restart();
    const after = await list();
    for (const r of running) expect(after.find((a) => a.name === r.name)?.pid).toBe(r.pid);
    expect(k.log()).toMatch(/adopted/);
    // the person at the console keeps seeing what they saw
    const displays = await k.call<Array<{ name: string; active: boolean }>>('display.list');
    expect(displays.find((d) => d.active)?.name).toBe('fresh');
  }, 60_000);
});
