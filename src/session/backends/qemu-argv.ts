import { join } from 'node:path';
import type { QemuConfig, VmConfig } from '../../config/schema.js';
import type { LaunchContext } from './backend.js';

/**
 * The QEMU command line, pure. Fixed safety flags first: no monitor, serial or parallel on a VC,
 * because in gtk Ctrl+Alt+2 would open the monitor where a person can type `quit`.
 */
export type Accel = 'kvm' | 'tcg';

export interface QemuPaths {
  readonly qmp: string;
  readonly control: string;
  readonly serialLog: string;
}

export function qemuPaths(vmDir: string): QemuPaths {
  return {
    qmp: join(vmDir, 'qmp.sock'),
    control: join(vmDir, 'control.sock'),
    serialLog: join(vmDir, 'serial.log'),
  };
}

/** `auto` picks kvm when /dev/kvm is usable, else tcg with a warning for the log. */
export function resolveAccel(
  requested: QemuConfig['accel'],
  kvmUsable: boolean,
): { accel: Accel; warning?: string } {
  if (requested === 'tcg') return { accel: 'tcg' };
  if (requested === 'kvm') return { accel: 'kvm' };
  if (kvmUsable) return { accel: 'kvm' };
  return { accel: 'tcg', warning: '/dev/kvm is not usable: falling back to TCG (slow software emulation)' };
}

const DISK_FORMATS: Readonly<Record<string, string>> = {
  qcow2: 'qcow2',
  vdi: 'vdi',
  vmdk: 'vmdk',
  vhdx: 'vhdx',
  raw: 'raw',
  img: 'raw',
};

/** Image format from the file name; an explicit format stops QEMU's probing (and its raw warning). */
export function diskFormat(path: string): string {
  const ext = path.toLowerCase().split('.').pop() ?? '';
  return DISK_FORMATS[ext] ?? 'raw';
}

/**
 * gtk without `full-screen=on`: behind a minimal WM that resized without a ConfigureNotify reply,
 * gtk full-screen stayed on "Guest has not initialized the display", while this form rendered behind
 * every WM tried (the kiosk WM makes it full-screen; zoom-to-fit scales, letterboxed). sdl needs
 * full-screen=on. Both measured on Xvfb and Xorg-dummy; window-close=off ignores WM close requests.
 */
const DISPLAY_ARGS: Readonly<Record<QemuConfig['display'], string>> = {
  gtk: 'gtk,show-menubar=off,zoom-to-fit=on,window-close=off',
  sdl: 'sdl,full-screen=on,window-close=off',
};

function escapeOpt(value: string): string {
  return value.replaceAll(',', ',,');
}

function nicArgs(taps: LaunchContext['taps']): string[] {
  if (taps.length === 0) return ['-nic', 'none'];
  return taps.flatMap((tap, i) => [
    '-netdev',
    `tap,id=n${i},ifname=${tap.ifname},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=n${i},mac=${tap.mac}`,
  ]);
}

function bootArgs(q: QemuConfig): string[] {
  const out: string[] = [];
  if (q.disk) out.push('-drive', `file=${escapeOpt(q.disk)},format=${diskFormat(q.disk)},if=ide,index=0`);
  if (q.kernel) out.push('-kernel', q.kernel);
  if (q.initrd) out.push('-initrd', q.initrd);
  if (q.append !== undefined) out.push('-append', q.append);
  return out;
}

/** A VM's guest channel: QEMU listens on `socketPath` (chardev server), kvmux connects as the client. */
export function guestChannelArgs(socketPath: string): string[] {
  return [
    '-chardev',
    `socket,id=kvmuxctl,path=${escapeOpt(socketPath)},server=on,wait=off`,
    '-device',
    'virtio-serial',
    '-device',
    'virtserialport,chardev=kvmuxctl,name=org.kvmux.control',
  ];
}

/** No `-cpu host`: under this machine's kvm_pvm it aborts ("failed to set MSR 0x10a"). */
export interface QemuArgvOptions {
  readonly binary?: string;
  readonly accel: Accel;
}

/** Boot size: the configured maximum when there is one (then ballooned down), else the size itself. */
export function bootMemoryMiB(q: QemuConfig, memoryMiB: number): number {
  return Math.max(q.maxMemoryMiB ?? memoryMiB, memoryMiB);
}

export function qemuArgv(vm: VmConfig, q: QemuConfig, ctx: LaunchContext, opts: QemuArgvOptions): string[] {
  const paths = qemuPaths(ctx.vmDir);
  const memoryMiB = ctx.memoryMiB ?? q.memoryMiB;
  return [
    opts.binary ?? 'qemu-system-x86_64',
    '-name',
    `${vm.name},process=kvmux-${vm.name}`,
    '-accel',
    opts.accel,
    '-m',
    String(bootMemoryMiB(q, memoryMiB)),
    '-smp',
    String(q.cpus),
    '-monitor',
    'none',
    '-serial',
    'none',
    '-parallel',
    'none',
    ...(q.serialLog ? ['-serial', `file:${paths.serialLog}`] : []),
    '-qmp',
    `unix:${paths.qmp},server=on,wait=off`,
    '-display',
    DISPLAY_ARGS[q.display],
    '-device',
    'virtio-balloon-pci,id=balloon0',
    ...(q.tablet ? ['-usb', '-device', 'usb-tablet'] : []),
    ...bootArgs(q),
    ...nicArgs(ctx.taps),
    ...(vm.guestChannel ? guestChannelArgs(paths.control) : []),
    // the stream's URI comes later over QMP (migrate-incoming), once kvmux knows it
    ...(ctx.incoming ? ['-incoming', 'defer'] : []),
    ...q.extraArgs,
  ];
}
