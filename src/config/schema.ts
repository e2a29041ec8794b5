import { z } from 'zod';

/** VM and network names end up in paths, interface names and X window titles: keep them tame. */
export const nameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'must match [a-z0-9-]+ (1-31 chars, not starting with "-")');

const macSchema = z
  .string()
  .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, 'must be a MAC address like 52:54:00:12:34:56');

export const nicSchema = z.strictObject({
  network: nameSchema,
  mac: macSchema.optional(),
  /** Pinned source addresses (IPv4/IPv6); when set, frames with other sources are dropped. */
  ips: z.array(z.string()).optional(),
});

export const qemuSchema = z.strictObject({
  disk: z.string().min(1).optional(),
  memoryMiB: z
    .number()
    .int()
    .min(16)
    .max(1 << 22)
    .default(512),
  /**
   * Boot with this much and balloon down to memoryMiB, so vm.setMemory/vm.update can grow the VM
   * live up to here (the guest needs virtio_balloon). Without it memory only grows at next start.
   */
  maxMemoryMiB: z
    .number()
    .int()
    .min(16)
    .max(1 << 22)
    .optional(),
  cpus: z.number().int().min(1).max(256).default(1),
  kernel: z.string().optional(),
  initrd: z.string().optional(),
  append: z.string().optional(),
  accel: z.enum(['kvm', 'tcg', 'auto']).default('auto'),
  /** gtk renders on Xorg and Xvfb; sdl is the fallback. */
  display: z.enum(['gtk', 'sdl']).default('gtk'),
  /** A USB tablet, so the pointer is absolute: no pointer grab (whose release chord the guard blocks). */
  tablet: z.boolean().default(true),
  /** Serial console (guest ttyS1 under QEMU 7.2) logged to runDir/vm/NAME/serial.log. */
  serialLog: z.boolean().default(true),
  extraArgs: z.array(z.string()).default([]),
});

export const virtualboxSchema = z.strictObject({
  /** Registered VM name or UUID; defaults to the kvmux VM name. */
  vmName: z.string().optional(),
  memoryMiB: z.number().int().min(4).optional(),
  cpus: z.number().int().min(1).max(64).optional(),
  disk: z.string().optional(),
  /** The .vbox file to register when the VM is not registered yet (found images set it). */
  settingsFile: z.string().optional(),
  /** VBoxManage and VirtualBoxVM binaries; default $KVMUX_VBOXMANAGE / $KVMUX_VIRTUALBOXVM, then PATH. */
  vboxManage: z.string().min(1).optional(),
  virtualBoxVm: z.string().min(1).optional(),
});

export const vmSchema = z.strictObject({
  name: nameSchema,
  backend: z.enum(['qemu', 'command', 'virtualbox']),
  qemu: qemuSchema.optional(),
  virtualbox: virtualboxSchema.optional(),
  command: z.array(z.string().min(1)).min(1).optional(),
  nics: z.array(nicSchema).default([]),
  guestChannel: z.boolean().default(false),
  autostart: z.boolean().default(true),
  /** Extra chords to swallow while this VM's display is active, e.g. "ctrl+alt+h". */
  blockedKeys: z.array(z.string()).default([]),
});

export const networkSchema = z.strictObject({
  name: nameSchema,
  uplink: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,15}$/, 'must be an interface name')
    .optional(),
  /** Bridge name on the host; derived from the network name when absent (≤15 chars). */
  bridge: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,15}$/)
    .optional(),
  antiSpoof: z.boolean().default(true),
});

export const policyRuleSchema = z.strictObject({
  from: z.string().min(1),
  method: z.string().min(1),
  action: z.enum(['allow', 'deny', 'ask']),
});

export const configSchema = z.strictObject({
  runDir: z.string().default('/run/kvmux'),
  stateDir: z.string().default('/var/lib/kvmux'),
  console: z.enum(['vt', 'virtual']).default('vt'),
  imageDirs: z.array(z.string()).default([]),
  /** Graceful VM stop (ACPI powerdown / SIGTERM): how long to wait before killing. */
  vmStopTimeoutSeconds: z.number().int().min(1).max(3600).default(30),
  input: z
    .strictObject({
      devices: z.union([z.literal('auto'), z.array(z.string().min(1))]).default('auto'),
      hotkey: z
        .strictObject({
          windowMs: z.number().int().min(50).max(5000).default(500),
          key: z.string().default('scrolllock'),
          /** After a double tap: show the next / previous display (as hardware KVM switches do). */
          next: z.string().default('right'),
          previous: z.string().default('left'),
        })
        .prefault({}),
      /** Chords swallowed on every display, replacing the defaults when given. */
      blocked: z.array(z.string()).optional(),
      /** Ctrl+Alt+Del reaches the active VM (Windows logins need it). */
      ctrlAltDelToVm: z.boolean().default(true),
    })
    .prefault({}),
  x: z
    .strictObject({
      /** Xorg video driver for `console: vt`. */
      driver: z.enum(['dummy', 'modesetting']).default('dummy'),
      width: z.number().int().min(320).max(8192).default(1024),
      height: z.number().int().min(200).max(8192).default(768),
      /** First X display number kvmux allocates from. */
      firstDisplay: z.number().int().min(1).max(999).default(20),
      /** First VT kvmux allocates from for `console: vt`. */
      firstVt: z.number().int().min(2).max(63).default(8),
      /** How long an X server may take to start (a slow machine, or one under emulation). */
      readySeconds: z.number().int().min(1).max(3600).default(20),
    })
    .prefault({}),
  menu: z
    .strictObject({
      /** Host-chosen phrase shown in the menu so a guest cannot fake it; generated when absent. */
      phrase: z.string().min(1).max(64).optional(),
      font: z.string().default('-misc-fixed-bold-r-normal--18-*-*-*-*-*-iso8859-1'),
      /**
       * Map the menu this long after the double tap. 0 (default) shows it within a frame; a
       * typist's gap (e.g. 250) lets `ScrLk ScrLk <digit>` switch without the menu flashing.
       */
      showDelayMs: z.number().int().min(0).max(2000).default(0),
    })
    .prefault({}),
  admin: z
    .strictObject({
      enabled: z.boolean().default(true),
      idleLockSeconds: z.number().int().min(10).default(300),
    })
    .prefault({}),
  hostUpdate: z.strictObject({ bootDir: z.string().default('/boot/kvmux') }).prefault({}),
  vms: z.array(vmSchema).default([]),
  networks: z.array(networkSchema).default([]),
  policy: z.array(policyRuleSchema).default([]),
});

export type Config = z.infer<typeof configSchema>;
export type VmConfig = z.infer<typeof vmSchema>;
export type NicConfig = z.infer<typeof nicSchema>;
export type NetworkConfig = z.infer<typeof networkSchema>;
export type PolicyRule = z.infer<typeof policyRuleSchema>;
export type QemuConfig = z.infer<typeof qemuSchema>;
