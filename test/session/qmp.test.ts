import { type ChildProcess, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/session/qmp.js';
import { BackendError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/temp.js';

/** A real headless QEMU (TCG, no disk: SeaBIOS finds nothing to boot and idles) to talk QMP to. */
const sock = join(tempDir('kvmux-qmp-'), 'qmp.sock');
let qemu: ChildProcess;

beforeAll(() => {
  const args = ['-accel', 'tcg', '-m', '32', '-display', 'none', '-nic', 'none', '-monitor', 'none'];
  qemu = spawn(
    'qemu-system-x86_64',
    [...args, '-serial', 'none', '-qmp', `unix:${sock},server=on,wait=off`],
    {
      stdio: 'ignore',
    },
  );
});

afterAll(() => {
  qemu.kill('SIGKILL');
});

describe('QMP client against real QEMU', () => {
  it('waits for the socket, reads the greeting, negotiates capabilities and executes with ids', async () => {
    const qmp = await QmpClient.connect(sock, { label: 'probe', timeoutMs: 10_000 });
    expect(qmp.greeting.QMP.version.qemu.major).toBeGreaterThanOrEqual(7);
    const [a, b] = await Promise.all([
      qmp.execute<{ status: string }>('query-status'),
      qmp.execute<{ name?: string }>('query-name'),
    ]);
    expect(a.status).toBe('running');
    expect(b).toEqual({});
    qmp.close();
  });

  it('turns a QMP error into a BackendError naming the VM and the error class', async () => {
    const qmp = await QmpClient.connect(sock, { label: 'probe' });
    const err = await qmp.execute('no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(/^probe: QMP error CommandNotFound/);
    qmp.close();
  });

  it('delivers asynchronous events (STOP on stop, RESUME on cont)', async () => {
    const qmp = await QmpClient.connect(sock, { label: 'probe' });
    const stopped = qmp.waitEvent('STOP', 5000);
    await qmp.execute('stop');
    expect((await stopped)?.event).toBe('STOP');
    expect((await qmp.execute<{ status: string }>('query-status')).status).toBe('paused');
    const resumed = qmp.waitEvent('RESUME', 5000);
    await qmp.execute('cont');
    expect((await resumed)?.event).toBe('RESUME');
    qmp.close();
  });

  it('reconnects after a client went away (what adoption does) and sees QEMU quit as close', async () => {
    const first = await QmpClient.connect(sock, { label: 'probe' });
    first.close();
    const second = await QmpClient.connect(sock, { label: 'probe' });
    const closed = new Promise<void>((r) => second.once('close', () => r()));
    const shutdown = second.waitEvent('SHUTDOWN', 5000);
    await second.execute('quit').catch(() => {});
    expect((await shutdown)?.event).toBe('SHUTDOWN');
    await closed;
    expect(second.isClosed).toBe(true);
    await expect(second.execute('query-status')).rejects.toThrow(/connection closed/);
  });

  it('gives up with a clear error when nothing listens', async () => {
    await expect(
      QmpClient.connect(join(tmpdir(), 'kvmux-no-qmp.sock'), { label: 'ghost', timeoutMs: 300 }),
    ).rejects.toThrow(/^ghost: QMP .*kvmux-no-qmp\.sock: cannot connect: ENOENT/);
  });
});
