import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { vmSchema } from '../../src/config/schema.js';
import type { LaunchContext } from '../../src/session/backends/backend.js';
import { createVirtualboxBackend } from '../../src/session/backends/virtualbox.js';
import { withVboxSettings } from '../../src/session/vbox-settings.js';
import { isAlive } from '../../src/util/proc.js';
import { tempDir } from '../helpers/temp.js';

/**
 * VirtualBox cannot be installed on these machines: its backend runs against fake-VBoxManage and
 * fake-VirtualBoxVM, which record their argv (one tab-separated line per call) so the test can
 * assert the documented command lines. The fake VM powers off on acpipowerbutton unless told not to.
 */
const FAKE_VBOXMANAGE = `#!/bin/sh
{ printf 'VBoxManage'; for a in "$@"; do printf '\\t%s' "$a"; done; echo; } >> "$FAKE_VBOX_LOG"
case "$1" in
  showvminfo) [ -e "$FAKE_VBOX_REGISTERED" ] || { echo "VBoxManage: error: Could not find a registered machine named '$2'" >&2; exit 1; } ;;
  registervm|createvm) : > "$FAKE_VBOX_REGISTERED" ;;
  storagectl) [ -e "$FAKE_VBOX_CTL" ] && { echo "VBoxManage: error: Storage controller named 'kvmux' already exists" >&2; exit 1; }; : > "$FAKE_VBOX_CTL" ;;
esac
if [ "$1" = controlvm ]; then
  pid=$(cat "$FAKE_VBOX_PIDFILE")
  case "$3" in
    acpipowerbutton) [ -n "$FAKE_VBOX_IGNORE_ACPI" ] || kill -TERM "$pid" ;;
    poweroff) kill -KILL "$pid" ;;
  esac
fi
`;

const FAKE_VIRTUALBOXVM = `#!/usr/bin/env node
const fs = require('node:fs');
fs.appendFileSync(process.env.FAKE_VBOX_LOG, ['VirtualBoxVM', ...process.argv.slice(2), 'DISPLAY=' + process.env.DISPLAY].join('\\t') + '\\n');
fs.writeFileSync(process.env.FAKE_VBOX_PIDFILE, String(process.pid));
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 60000);
`;

function setup(extraEnv: Record<string, string> = {}) {
  const dir = tempDir('kvmux-vbox-test-');
  const bins = { vboxManage: join(dir, 'fake-VBoxManage'), virtualBoxVm: join(dir, 'fake-VirtualBoxVM') };
  writeFileSync(bins.vboxManage, FAKE_VBOXMANAGE);
  writeFileSync(bins.virtualBoxVm, FAKE_VIRTUALBOXVM.replace('#!/usr/bin/env node', `#!${process.execPath}`));
  chmodSync(bins.vboxManage, 0o755);
  chmodSync(bins.virtualBoxVm, 0o755);
  const log = join(dir, 'argv.log');
  writeFileSync(log, '');
  const env = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    KVMUX_VBOXMANAGE: bins.vboxManage,
    KVMUX_VIRTUALBOXVM: bins.virtualBoxVm,
    FAKE_VBOX_LOG: log,
    FAKE_VBOX_PIDFILE: join(dir, 'vm.pid'),
    FAKE_VBOX_REGISTERED: join(dir, 'registered'),
    FAKE_VBOX_CTL: join(dir, 'controller'),
    ...extraEnv,
  };
  const vmDir = join(dir, 'vm', 'desk');
  mkdirSync(vmDir, { recursive: true });
  const ctx: LaunchContext = { display: ':139', vmDir, width: 1024, height: 768, taps: [] };
  const calls = () =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'));
  /** The fake VM is up once it logged its argv (and wrote the pid file the fake VBoxManage reads). */
  const vmUp = async () => {
    for (let i = 0; i < 200 && !calls().some((c) => c[0] === 'VirtualBoxVM'); i++)
      await new Promise((r) => setTimeout(r, 25));
  };
  return {
    backend: createVirtualboxBackend({ env, powerdownTimeoutMs: 5000 }),
    ctx,
    calls,
    vmDir,
    vmUp,
    dir,
  };
}

const vm = vmSchema.parse({
  name: 'desk',
  backend: 'virtualbox',
  virtualbox: { vmName: 'Win 10', memoryMiB: 2048 },
  guestChannel: true,
});

beforeAll(() => {
  process.stdout.write(
    '\n*** VirtualBox is NOT installed on this machine (not installable here): the virtualbox backend is\n' +
      '*** tested only against recording fakes of VBoxManage/VirtualBoxVM that check its documented\n' +
      '*** command lines. Nothing here has run a real VirtualBox VM. ***\n\n',
  );
});

describe('virtualbox backend against fake-VBoxManage / fake-VirtualBoxVM', () => {
  it('locks the GUI down, sets memory and the guest-channel UART, then starts full-screen on the display', async () => {
    const { backend, ctx, calls, vmDir, vmUp } = setup();
    const h = await backend.start(vm, ctx);
    await vmUp();
    expect(calls()).toEqual([
      ['VBoxManage', 'setextradata', 'global', 'GUI/Input/HostKeyCombination', '0'],
      ['VBoxManage', 'setextradata', 'global', 'GUI/Customizations', 'noMenuBar,noStatusBar'],
      ['VBoxManage', 'setextradata', 'Win 10', 'GUI/RestrictedRuntimeMenus', 'ALL'],
      ['VBoxManage', 'setextradata', 'Win 10', 'GUI/ShowMiniToolBar', 'false'],
      ['VBoxManage', 'modifyvm', 'Win 10', '--memory', '2048'],
      [
        'VBoxManage',
        'modifyvm',
        'Win 10',
        '--uart1',
        '0x3F8',
        '4',
        '--uartmode1',
        'server',
        join(vmDir, 'control.sock'),
      ],
      ['VirtualBoxVM', '--startvm', 'Win 10', '--fullscreen', 'DISPLAY=:139'],
    ]);
    expect(h.record.sockets).toEqual({ control: join(vmDir, 'control.sock') });
    expect(await h.setMemory(1024)).toBe(false);
    await h.stop({ force: true });
  });

  it('graceful stop presses the ACPI power button and the VM powers off', async () => {
    const { backend, ctx, calls, vmUp } = setup();
    const h = await backend.start(vm, ctx);
    await vmUp();
    await h.stop({ force: false });
    expect((await h.exited).clean).toBe(true);
    expect(calls().slice(7)).toEqual([['VBoxManage', 'controlvm', 'Win 10', 'acpipowerbutton']]);
  });

  it('a guest that ignores ACPI is powered off after the timeout', async () => {
    const { backend, ctx, calls, vmUp } = setup({ FAKE_VBOX_IGNORE_ACPI: '1' });
    const h = await backend.start(vm, ctx);
    await vmUp();
    await h.stop({ force: false, timeoutMs: 300 });
    expect(isAlive(h.pid)).toBe(false);
    expect(calls().slice(7)).toEqual([
      ['VBoxManage', 'controlvm', 'Win 10', 'acpipowerbutton'],
      ['VBoxManage', 'controlvm', 'Win 10', 'poweroff'],
    ]);
  });

  it('force stop powers off at once', async () => {
    const { backend, ctx, calls, vmUp } = setup();
    const h = await backend.start(vm, ctx);
    await vmUp();
    await h.stop({ force: true });
    expect((await h.exited).signal).toBe('SIGKILL');
    expect(calls().slice(7)).toEqual([['VBoxManage', 'controlvm', 'Win 10', 'poweroff']]);
  });

  it('a VM without memory or guest channel settings gets only the lock-down calls', async () => {
    const { backend, ctx, calls, vmUp } = setup();
    const plain = vmSchema.parse({ name: 'plain', backend: 'virtualbox' });
    const h = await backend.start(plain, ctx);
    await vmUp();
    expect(calls().map((c) => c.slice(1, 3).join(' '))).toEqual([
      'setextradata global',
      'setextradata global',
      'setextradata plain',
      'setextradata plain',
      '--startvm plain',
    ]);
    await h.stop({ force: true });
  });

  it('registers a .vbox VM at its first start, attaches its disk, bridges its NICs onto the taps, sets CPUs', async () => {
    const { backend, ctx, calls, vmUp, dir } = setup();
    const settingsFile = join(dir, 'seed.vbox');
    const desk = vmSchema.parse({
      name: 'desk',
      backend: 'virtualbox',
      virtualbox: { vmName: 'Seed VM', settingsFile, disk: '/srv/seed.vdi', cpus: 2, memoryMiB: 1024 },
    });
    const taps = [
      { ifname: 'kvt-desk-0', mac: '52:54:00:aa:bb:01' },
      { ifname: 'kvt-desk-1', mac: '52:54:00:aa:bb:02' },
    ];
    const h = await backend.start(desk, { ...ctx, taps });
    await vmUp();
    expect(calls()).toEqual([
      ['VBoxManage', 'showvminfo', 'Seed VM', '--machinereadable'],
      ['VBoxManage', 'registervm', settingsFile],
      ['VBoxManage', 'setextradata', 'global', 'GUI/Input/HostKeyCombination', '0'],
      ['VBoxManage', 'setextradata', 'global', 'GUI/Customizations', 'noMenuBar,noStatusBar'],
      ['VBoxManage', 'setextradata', 'Seed VM', 'GUI/RestrictedRuntimeMenus', 'ALL'],
      ['VBoxManage', 'setextradata', 'Seed VM', 'GUI/ShowMiniToolBar', 'false'],
      ['VBoxManage', 'modifyvm', 'Seed VM', '--memory', '1024'],
      ['VBoxManage', 'modifyvm', 'Seed VM', '--cpus', '2'],
      [
        'VBoxManage',
        'storagectl',
        'Seed VM',
        '--name',
        'kvmux',
        '--add',
        'sata',
        '--controller',
        'IntelAhci',
      ],
      [
        'VBoxManage',
        ...['storageattach', 'Seed VM', '--storagectl', 'kvmux', '--port', '0', '--device', '0'],
        ...['--type', 'hdd', '--medium', '/srv/seed.vdi'],
      ],
      [
        'VBoxManage',
        ...['modifyvm', 'Seed VM', '--nic1', 'bridged', '--bridgeadapter1', 'kvt-desk-0'],
        ...['--macaddress1', '525400AABB01', '--nic2', 'bridged', '--bridgeadapter2', 'kvt-desk-1'],
        ...['--macaddress2', '525400AABB02'],
      ],
      ['VirtualBoxVM', '--startvm', 'Seed VM', '--fullscreen', 'DISPLAY=:139'],
    ]);
    // memory cannot change live: it applies at the next start (modifyvm --memory then)
    expect(await h.setMemory(2048)).toBe(false);
    await h.stop({ force: true });
    const h2 = await backend.start(desk, { ...ctx, taps, memoryMiB: 2048 });
    const all = calls();
    const second = all.slice(all.findIndex((c) => c[1] === 'controlvm') + 1);
    expect(second[0]).toEqual(['VBoxManage', 'showvminfo', 'Seed VM', '--machinereadable']);
    expect(second.map((c) => c[1])).not.toContain('registervm'); // registered now
    expect(second).toContainEqual(['VBoxManage', 'modifyvm', 'Seed VM', '--memory', '2048']);
    await h2.stop({ force: true });
  });

  it('a bare disk with no .vbox becomes a new registered machine with kvmux controller', async () => {
    const { backend, ctx, calls, vmUp } = setup();
    const bare = vmSchema.parse({
      name: 'bare',
      backend: 'virtualbox',
      virtualbox: { disk: '/srv/bare.vdi' },
    });
    const h = await backend.start(bare, ctx);
    await vmUp();
    expect(calls().slice(0, 4)).toEqual([
      ['VBoxManage', 'showvminfo', 'bare', '--machinereadable'],
      ['VBoxManage', 'createvm', '--name', 'bare', '--ostype', 'Other_64', '--register'],
      ['VBoxManage', 'storagectl', 'bare', '--name', 'kvmux', '--add', 'sata', '--controller', 'IntelAhci'],
      ['VBoxManage', 'setextradata', 'global', 'GUI/Input/HostKeyCombination', '0'],
    ]);
    // the controller exists already: that storagectl failure is tolerated, the disk is attached
    expect(calls().map((c) => c[1])).toContain('storageattach');
    await h.stop({ force: true });
  });

  it('a .vbox file found in an image folder is that VM settings file, under its own machine name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmux-vbox-images-'));
    const file = join(dir, 'Seed Desk.vbox');
    writeFileSync(
      file,
      '<?xml version="1.0"?>\n<VirtualBox xmlns="http://www.virtualbox.org/">\n  <Machine uuid="{1}" name="Seed &amp; Desk" OSType="Debian_64">\n  </Machine>\n</VirtualBox>\n',
    );
    const found = vmSchema.parse({
      name: 'seed-desk',
      backend: 'virtualbox',
      virtualbox: { vmName: 'seed-desk' },
    });
    expect(withVboxSettings(found, [dir]).virtualbox).toMatchObject({
      vmName: 'Seed & Desk',
      settingsFile: file,
    });
    rmSync(dir, { recursive: true, force: true });
  });
});
