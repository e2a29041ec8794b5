import { closeSync, existsSync, openSync } from 'node:fs';
import { kvmUsable } from '../../src/session/backends/qemu.js';

/** Print why a test (or part of one) does not run, so a green run cannot hide it. */
export function loudSkip(what: string, why: string): void {
  process.stderr.write(`\n*** SKIPPING ${what}: ${why} ***\n\n`);
}

/** Why Xorg cannot run on real VTs here (root, /dev/tty0, Xorg and its dummy driver), or null. */
export function whyNoVts(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync('/usr/bin/Xorg')) return '/usr/bin/Xorg missing';
  if (!existsSync('/usr/lib/xorg/modules/drivers/dummy_drv.so')) return 'Xorg dummy driver missing';
  try {
    closeSync(openSync('/dev/tty0', 'r+'));
  } catch (err) {
    return `/dev/tty0: ${String(err)}`;
  }
  return null;
}

/** The accelerator `accel: auto` resolves to on this machine, said once per test file. */
export function autoAccel(what: string): 'kvm' | 'tcg' {
  const accel = kvmUsable() ? 'kvm' : 'tcg';
  process.stderr.write(
    accel === 'kvm'
      ? `[${what}] accel auto → kvm (/dev/kvm usable)\n`
      : `\n*** ${what}: /dev/kvm is not usable: accel auto falls back to TCG, so the KVM path is NOT tested here ***\n\n`,
  );
  return accel;
}
