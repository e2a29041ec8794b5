import { join } from 'node:path';

/** Where a VM's sockets and logs live: runDir/vm/NAME (made by the supervisor before launch). */
export function vmDirOf(runDir: string, name: string): string {
  return join(runDir, 'vm', name);
}

/** The guest channel's host end: a QEMU chardev server socket or a VirtualBox UART host pipe. */
export function controlSocketOf(runDir: string, name: string): string {
  return join(vmDirOf(runDir, name), 'control.sock');
}
