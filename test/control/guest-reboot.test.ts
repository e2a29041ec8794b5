import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/config.js';
import { passwdPath, writePasswordFile } from '../../src/control/auth/auth.js';
import { type ControlPlane, startControlPlane } from '../../src/control/plane.js';
import type { VmHandle } from '../../src/session/backends/backend.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import { vmDirOf } from '../../src/session/vm-paths.js';
import { buildInitramfs, findKernel, findVirtioPortShell } from '../fixtures/linux-guest.js';
import { startTestDisplay, type TestDisplay } from '../session/helpers/display.js';
import { PASSWORD, tempDir, testVmList } from './helpers.js';

/**
 * Issue 11 finding 7: a guest's session ends when it reboots. A reboot inside the VM keeps QEMU,
 * and so the channel's socket, alive: without QMP's RESET the host would keep the old session and
 * whatever runs after the reboot would inherit the login. A real Linux guest (TCG) logs in, then
 * `reboot -f`; on every boot its first call comes before any login.
 */
const VM = 'rebooter';
const rpc = (id: number, method: string, params?: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

describe('a guest that reboots is logged out', () => {
  const t = tempDir('kvmux-reboot-');
  let display: TestDisplay;
  let plane: ControlPlane;
  let handle: VmHandle | undefined;
  let serialLog = '';

  beforeAll(async () => {
    display = await startTestDisplay(137);
    const runDir = join(t.dir, 'run');
    const stateDir = join(t.dir, 'state');
    await writePasswordFile(passwdPath(stateDir), PASSWORD, { N: 1024, r: 8, p: 1 });
    const kernel = findKernel().path;
    const config = parseConfigText(`
runDir: ${runDir}
stateDir: ${stateDir}
vms:
  - { name: ${VM}, backend: qemu, guestChannel: true, qemu: { kernel: ${kernel}, accel: tcg } }
policy:
  - { from: "*", method: vm.list, action: allow }
`);
    plane = await startControlPlane(config, { methods: [testVmList] });
    const initrd = await buildInitramfs({
      outDir: join(t.dir, 'initrd'),
      modules: ['virtio_pci', 'virtio_console'],
      init: `
${findVirtioPortShell('org.kvmux.control')}
exec 3<>"$PORT"
call() { printf '%s\\n' "$2" >&3; if read -r -t 20 line <&3; then echo "RESP $1 $line"; else echo "RESP $1 TIMEOUT"; fi; }
call before '${rpc(1, 'vm.list')}'
call login '${rpc(2, 'auth.login', { password: PASSWORD })}'
call after '${rpc(3, 'vm.list')}'
echo KG-REBOOTING
reboot -f
`,
    });
    const vm = parseConfigText(
      `vms: [{ name: ${VM}, backend: qemu, guestChannel: true, qemu: { kernel: ${kernel}, initrd: ${initrd}, append: "console=ttyS1 quiet loglevel=3", accel: tcg, memoryMiB: 128 } }]`,
    ).vms[0]!;
    const vmDir = vmDirOf(runDir, VM);
    mkdirSync(vmDir, { recursive: true });
    serialLog = join(vmDir, 'serial.log');
    handle = await createQemuBackend().start(vm, {
      display: display.display,
      vmDir,
      width: 1024,
      height: 768,
      taps: [],
      onGuestReset: () => plane.resetVm(VM),
    });
  }, 120_000);

  afterAll(async () => {
    await handle?.stop({ force: true });
    await plane?.close();
    await display?.stop();
    t.cleanup();
  });

  const replies = (step: string) => {
    const text = (() => {
      try {
        return readFileSync(serialLog, 'utf8');
      } catch {
        return '';
      }
    })();
    return text
      .split('\n')
      .filter((l) => l.startsWith(`RESP ${step} `))
      .map((l) => l.slice(`RESP ${step} `.length).trim());
  };

  it('the second boot starts logged out', async () => {
    const deadline = Date.now() + 150_000;
    while (replies('before').length < 2) {
      if (Date.now() > deadline) throw new Error(`no second boot:\n${readFileSync(serialLog, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const [first, second] = replies('before').map((l) => JSON.parse(l));
    expect(JSON.parse(replies('after')[0]!).result).toHaveLength(2); // logged in on the first boot
    expect(first.error?.code).toBe(-32001);
    expect(second.error?.code).toBe(-32001);
  }, 160_000);
});
