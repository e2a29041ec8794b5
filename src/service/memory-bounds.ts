import { totalmem } from 'node:os';
import type { VmConfig } from '../config/schema.js';
import { RpcCode, RpcError } from '../util/errors.js';

/** A guest may not shrink a VM below a bootable size nor ask for more than the VM or the host has. */
export const GUEST_MIN_MEMORY_MIB = 64;

export function hostMemoryMiB(): number {
  return Math.floor(totalmem() / (1 << 20));
}

/** Pure: the range a guest may set for `vm` (qemu.maxMemoryMiB when set, else the host's RAM). */
export function guestMemoryBounds(vm: VmConfig | undefined, hostMiB: number): { min: number; max: number } {
  const ceiling = vm?.qemu?.maxMemoryMiB;
  return { min: GUEST_MIN_MEMORY_MIB, max: Math.min(ceiling ?? hostMiB, hostMiB) };
}

/** Throws -32602 naming the range when a guest's `memoryMiB` for `name` is outside it. */
export function checkGuestMemory(
  name: string,
  memoryMiB: number,
  vm: VmConfig | undefined,
  hostMiB = hostMemoryMiB(),
): void {
  const { min, max } = guestMemoryBounds(vm, hostMiB);
  if (memoryMiB < min || memoryMiB > max)
    throw new RpcError(
      RpcCode.invalidParams,
      `memoryMiB: ${memoryMiB} is outside ${min}..${max} MiB for "${name}" (a guest's limits)`,
    );
}
