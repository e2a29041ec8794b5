import { join } from 'node:path';
import type { VmConfig } from '../config-schema.js';

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

/** VBoxManage argument lists to run (in order) before starting the VM; the VM must be powered off. */
export function vboxSetupCommands(vm: VmConfig, vmDir: string, memoryMiB?: number): string[][] {
  const name = vboxName(vm);
  const cmds: string[][] = [
    ['setextradata', 'global', 'GUI/Input/HostKeyCombination', '0'],
    ['setextradata', 'global', 'GUI/Customizations', 'noMenuBar,noStatusBar'],
    ['setextradata', name, 'GUI/RestrictedRuntimeMenus', 'ALL'],
    ['setextradata', name, 'GUI/ShowMiniToolBar', 'false'],
  ];
  const mem = memoryMiB ?? vm.virtualbox?.memoryMiB;
  if (mem !== undefined) cmds.push(['modifyvm', name, '--memory', String(mem)]);
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
