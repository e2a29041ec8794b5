import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/config.js';
import { passwdPath, writePasswordFile } from '../../src/control/auth/auth.js';
import { type ControlPlane, startControlPlane } from '../../src/control/plane.js';
import { guestChannelArgs } from '../../src/session/backends/qemu-argv.js';
import { controlSocketOf } from '../../src/session/vm-paths.js';
import {
  bootGuest,
  buildInitramfs,
  findKernel,
  findVirtioPortShell,
  type Guest,
} from '../fixtures/linux-guest.js';
import { PASSWORD, tempDir, testVmList, testVmStop } from './helpers.js';

/**
 * The seed's central promise, end to end: a real Linux guest (Debian's kernel, a busybox initramfs
 * built here) administers the host over its virtio-serial port, with no network at all. The guest's
 * side is plain shell: `exec 3<>/dev/vportNpM`, printf a JSON line, `read` the reply.
 */
const VM = 'debian-guest';

function rpcLine(id: number, method: string, params?: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
}

const script = (steps: [string, string][]) => `
${findVirtioPortShell('org.kvmux.control')}
[ -n "$PORT" ] || { echo "RESP none NO-PORT"; exit 1; }
echo "PORT $PORT"
exec 3<>"$PORT"
rpc() {
  printf '%s\\n' "$2" >&3
  if read -r -t 20 line <&3; then echo "RESP $1 $line"; else echo "RESP $1 TIMEOUT"; fi
}
${steps.map(([name, line]) => `rpc ${name} '${line}'`).join('\n')}
`;

describe('a real Linux guest on the guest channel', () => {
  let t: ReturnType<typeof tempDir>;
  let plane: ControlPlane;
  let guest: Guest | undefined;
  let serial = '';

  beforeAll(async () => {
    t = tempDir('kvmux-guest-');
    const runDir = join(t.dir, 'run');
    const stateDir = join(t.dir, 'state');
    await writePasswordFile(passwdPath(stateDir), PASSWORD);
    const config = parseConfigText(`
runDir: ${runDir}
stateDir: ${stateDir}
vms:
  - { name: ${VM}, backend: qemu, guestChannel: true, qemu: { kernel: ${findKernel().path}, accel: tcg } }
policy:
  - { from: "*", method: vm.list, action: allow }
`);
    // the VM's socket directory is the qemu backend's job; here we stand in for it
    mkdirSync(dirname(controlSocketOf(runDir, VM)), { recursive: true });
    plane = await startControlPlane(config, { methods: [testVmList, testVmStop] });
    const initrd = await buildInitramfs({
      outDir: join(t.dir, 'initrd'),
      modules: ['virtio_pci', 'virtio_console'],
      init: script([
        ['prelogin', rpcLine(1, 'vm.list')],
        ['wrongpw', rpcLine(2, 'auth.login', { password: 'letmein' })],
        ['login', rpcLine(3, 'auth.login', { password: PASSWORD })],
        ['vmlist', rpcLine(4, 'vm.list')],
        ['denied', rpcLine(5, 'vm.stop', { name: 'alpha' })],
        ['garbage', '{"jsonrpc":"2.0","id":6,'],
        ['after', rpcLine(7, 'vm.list')],
      ]),
    });
    guest = await bootGuest({
      initrd,
      serialLog: join(t.dir, 'serial.log'),
      qemuArgs: guestChannelArgs(controlSocketOf(runDir, VM)),
    });
    serial = await guest.waitFor('KVMUX-GUEST-DONE', 90_000);
  }, 150_000);

  afterAll(async () => {
    await guest?.stop();
    await plane?.close();
    // stopped and reaped: no zombie left behind
    if (guest) expect(existsSync(`/proc/${guest.pid}`)).toBe(false);
    if (!process.env['KVMUX_KEEP_TMP']) t.cleanup();
  });

  /** The reply the guest printed for step `name`, parsed. */
  const reply = (name: string) => {
    const line = serial.split('\n').find((l) => l.startsWith(`RESP ${name} `));
    if (!line) throw new Error(`no RESP ${name} in serial log:\n${serial}`);
    return JSON.parse(line.slice(`RESP ${name} `.length).trim());
  };

  it('is refused before login (-32001)', () => {
    expect(reply('prelogin')).toMatchObject({ id: 1, error: { code: -32001 } });
  });

  it('gets an error for a wrong password, and logs in with the right one', () => {
    expect(reply('wrongpw')).toMatchObject({ id: 2, error: { code: -32001, message: 'wrong password' } });
    expect(reply('login')).toEqual({ jsonrpc: '2.0', id: 3, result: { ok: true, as: VM } });
  });

  it('lists the VMs once logged in', () => {
    const r = reply('vmlist');
    expect(r.id).toBe(4);
    expect(r.result.map((v: { name: string }) => v.name)).toEqual(['alpha', 'beta']);
  });

  it('is forbidden a method the policy does not allow (-32003)', () => {
    expect(reply('denied')).toMatchObject({ id: 5, error: { code: -32003 } });
  });

  it('survives a malformed line from the guest', () => {
    expect(reply('garbage')).toMatchObject({ id: null, error: { code: -32700 } });
    expect(reply('after')).toMatchObject({ id: 7, result: [{ name: 'alpha' }, { name: 'beta' }] });
  });

  it('records the session in the audit log under the channel name, without the password', () => {
    const audit = readFileSync(join(t.dir, 'state', 'audit.log'), 'utf8');
    expect(audit).not.toContain(PASSWORD);
    expect(audit).not.toContain('letmein');
    const rows = audit
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.every((r) => r.from === VM)).toBe(true);
    expect(rows.map((r) => `${r.method}:${r.code ?? 'ok'}`)).toEqual([
      'vm.list:-32001',
      'auth.login:-32001',
      'auth.login:ok',
      'vm.list:ok',
      'vm.stop:-32003',
      'vm.list:ok',
    ]);
  });
});
