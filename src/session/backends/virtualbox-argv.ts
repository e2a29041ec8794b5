import { join } from 'node:path';
import type { VmConfig } from '../../config/schema.js';

/**
 * VirtualBox command lines per its documented CLI, pure. The host key is disabled ("0"), menus and
 * status bar hidden and runtime menus restricted, so nothing in the VM window escapes to the host.
 */
export interface VboxBinaries {
  readonly vboxManage: string;
  readonly virtualBoxVm: string;
}

export function vboxBinaries(vm: VmConfig, env: NodeJS.ProcessEnv = process.env): VboxBinaries {
  return {
    vboxManage: vm.virtualbox?.vboxManage ?? env['KVMUX_VBOXMANAGE'] ?? 'VBoxManage',
    virtualBoxVm: vm.virtualbox?.virtualBoxVm ?? env['KVMUX_VIRTUALBOXVM'] ?? 'VirtualBoxVM',
  };
}

/** The registered VirtualBox VM name (or UUID). */
export function vboxName(vm: VmConfig): string {
  return vm.virtualbox?.vmName ?? vm.name;
}

export function vboxControlPath(vmDir: string): string {
  return join(vmDir, 'control.sock');
}

/** kvmux's own storage controller for `virtualbox.disk`. */
export const VBOX_CONTROLLER = 'kvmux';

/** `showvminfo` exits non-zero when the VM is not registered. */
export function vboxShowArgs(vm: VmConfig): string[] {
  return ['showvminfo', vboxName(vm), '--machinereadable'];
}

/**
 * Registering a VM that VirtualBox does not know yet: its `.vbox` file (registervm), or a new
 * machine around `disk` (createvm --register plus kvmux's SATA controller).
 */
export function vboxRegisterCommands(vm: VmConfig): string[][] {
  const v = vm.virtualbox;
  if (v?.settingsFile) return [['registervm', v.settingsFile]];
  if (!v?.disk) return [];
  const name = vboxName(vm);
  return [
    ['createvm', '--name', name, '--ostype', 'Other_64', '--register'],
    ['storagectl', name, '--name', VBOX_CONTROLLER, '--add', 'sata', '--controller', 'IntelAhci'],
  ];
}

/** A tap as VirtualBox wants it: bridged adapter n on the tap, MAC without colons. */
function nicArgs(taps: ReadonlyArray<{ ifname: string; mac: string }>): string[] {
  return taps.flatMap((t, i) => [
    `--nic${i + 1}`,
    'bridged',
    `--bridgeadapter${i + 1}`,
    t.ifname,
    `--macaddress${i + 1}`,
    t.mac.replace(/:/g, '').toUpperCase(),
  ]);
}

/** VBoxManage argument lists to run (in order) before starting the VM; the VM must be powered off. */
export function vboxSetupCommands(
  vm: VmConfig,
  vmDir: string,
  memoryMiB?: number,
  taps: ReadonlyArray<{ ifname: string; mac: string }> = [],
): string[][] {
  const name = vboxName(vm);
  const cmds: string[][] = [
    ['setextradata', 'global', 'GUI/Input/HostKeyCombination', '0'],
    ['setextradata', 'global', 'GUI/Customizations', 'noMenuBar,noStatusBar'],
    ['setextradata', name, 'GUI/RestrictedRuntimeMenus', 'ALL'],
    ['setextradata', name, 'GUI/ShowMiniToolBar', 'false'],
  ];
  const mem = memoryMiB ?? vm.virtualbox?.memoryMiB;
  if (mem !== undefined) cmds.push(['modifyvm', name, '--memory', String(mem)]);
  if (vm.virtualbox?.cpus !== undefined) cmds.push(['modifyvm', name, '--cpus', String(vm.virtualbox.cpus)]);
  if (vm.virtualbox?.disk)
    cmds.push(
      ['storagectl', name, '--name', VBOX_CONTROLLER, '--add', 'sata', '--controller', 'IntelAhci'],
      [
        ...['storageattach', name, '--storagectl', VBOX_CONTROLLER, '--port', '0', '--device', '0'],
        ...['--type', 'hdd', '--medium', vm.virtualbox.disk],
      ],
    );
  if (taps.length > 0) cmds.push(['modifyvm', name, ...nicArgs(taps)]);
  if (vm.guestChannel)
    cmds.push(['modifyvm', name, '--uart1', '0x3F8', '4', '--uartmode1', 'server', vboxControlPath(vmDir)]);
  return cmds;
}

export function vboxStartArgs(vm: VmConfig): string[] {
  return ['--startvm', vboxName(vm), '--fullscreen'];
}

export function vboxStopArgs(vm: VmConfig, force: boolean): string[] {
  return ['controlvm', vboxName(vm), force ? 'poweroff' : 'acpipowerbutton'];
}
