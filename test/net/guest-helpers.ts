import { type BootOptions, bootGuest, type Guest } from '../fixtures/linux-guest.js';

/** Modules a busybox guest needs for `-device virtio-net-pci` (Debian builds them as modules). */
export const NET_MODULES = ['virtio_pci', 'virtio_net'];

/** QEMU arguments for one NIC on an existing tap; `romfile=` skips the iPXE ROM. */
export function tapNicArgs(id: string, tap: string, mac: string): string[] {
  return [
    ...['-netdev', `tap,id=${id},ifname=${tap},script=no,downscript=no`],
    ...['-device', `virtio-net-pci,netdev=${id},mac=${mac},romfile=`],
  ];
}

export type NsGuest = Guest;

/**
 * A guest whose QEMU runs inside the test's namespace (so its taps are the ones there), with a
 * second serial port (`ttyS2`) the test writes to, read by the guest with `read`.
 */
export function bootGuestInNetns(netns: string, opts: BootOptions): Promise<Guest> {
  return bootGuest({ ...opts, netns, gate: true });
}

/** Shell: wait for the test to send a line on ttyS2. */
export const WAIT_GATE = 'stty -F /dev/ttyS2 raw -echo 2>/dev/null; read -r _gate < /dev/ttyS2';
