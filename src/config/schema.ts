import { z } from 'zod';

/** VM and network names end up in paths, interface names and X window titles: keep them tame. */
export const nameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'must match [a-z0-9-]+ (1-31 chars, not starting with "-")');

const macSchema = z
  .string()
  .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, 'must be a MAC address like 52:54:00:12:34:56');

/** What a NIC may be allowed to send that kvmux drops by default (nics[].allow; net/firewall.ts). */
export const PORT_ROLES = ['router-advertisements', 'dhcp-server', 'vlan'] as const;

export const nicSchema = z.strictObject({
  network: nameSchema,
  mac: macSchema.optional(),
  /** Pinned source addresses (IPv4/IPv6); when set, frames with other sources are dropped. */
  ips: z.array(z.string()).optional(),
  /**
   * Server roles this NIC may play on its network; without them kvmux drops, from this VM's port,
   * IPv6 router advertisements, DHCP/DHCPv6 server replies and VLAN-tagged frames.
   */
  allow: z.array(z.enum(PORT_ROLES)).optional(),
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
  /** Bandwidth cap of vm.migrate and vm.save streams (QMP max-bandwidth); absent = QEMU's default. */
  migrationBandwidthMiB: z
    .number()
    .int()
    .min(1)
    .max(1 << 20)
    .optional(),
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

/** A cpuset list as the kernel writes it: "0", "0-1", "0,2-3". */
export const cpusetSchema = z
  .string()
  .regex(/^\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?)*$/, 'must be a CPU list like "0-1" or "0,2"');

/**
 * Per-VM resources, enforced by cgroups on the VM's process tree (v2: cpu.max, cpuset.cpus,
 * memory.max, io.weight; v1 fallback: cfs quota, cpuset, memory limit, blkio weight). Absent = no limit.
 */
export const resourcesSchema = z.strictObject({
  /** CPU time as a number of CPUs, e.g. 0.5 = half of one CPU, 2 = two full CPUs. */
  cpuQuota: z.number().min(0.01).max(256).optional(),
  cpuset: cpusetSchema.optional(),
  /** Hard memory ceiling of the whole VM process (QEMU: guest RAM plus QEMU itself). */
  memoryMaxMiB: z
    .number()
    .int()
    .min(8)
    .max(1 << 22)
    .optional(),
  /** Proportional block-I/O weight, 1..10000 (cgroup v2 scale; default 100). */
  ioWeight: z.number().int().min(1).max(10_000).optional(),
});

/** One DISKS entry of a subhost config: `dev:part:image` (the first one is the root filesystem). */
export const subhostDiskSchema = z.strictObject({
  /** Name inside the subhost, e.g. vda; the partition is mounted at /mnt/<dev><part>. */
  dev: z.string().regex(/^[a-z][a-z0-9]{0,15}$/),
  /** Partition number in the image; 0 = the image is itself a filesystem. */
  part: z.number().int().min(0).max(128),
  image: z.string().min(1),
});

/**
 * A namespace "subhost" (seed 003) on systemd-nspawn: an overlay root (read-only `root` below a
 * per-subhost upper layer in stateDir), its own netns with a veth per NIC on kvmux's anonymous
 * bridges, its console in a terminal on its display.
 */
export const subhostSchema = z.strictObject({
  /** The root filesystem directory (the read-only base when `overlay` is on). */
  root: z.string().min(1).optional(),
  /** Writable layer over `root`; default <stateDir>/subhost/<name>/upper. */
  upper: z.string().min(1).optional(),
  overlay: z.boolean().default(true),
  /** Extra partitions, loop-mounted and bound in at /mnt/<dev><part>; a first one with part>0 and no root is the root. */
  disks: z.array(subhostDiskSchema).default([]),
  /** What nspawn sends the subhost's init on a graceful stop (systemd: SIGRTMIN+3, busybox: SIGUSR2 or SIGTERM). */
  killSignal: z
    .string()
    .regex(/^SIG[A-Z0-9+]+$/)
    .default('SIGRTMIN+3'),
  /** The seed's subhost config file this entry came from (kvmux import-subhost), for people. */
  importedFrom: z.string().optional(),
});

export const vmSchema = z.strictObject({
  name: nameSchema,
  backend: z.enum(['qemu', 'command', 'virtualbox', 'subhost']),
  qemu: qemuSchema.optional(),
  subhost: subhostSchema.optional(),
  virtualbox: virtualboxSchema.optional(),
  command: z.array(z.string().min(1)).min(1).optional(),
  nics: z.array(nicSchema).default([]),
  guestChannel: z.boolean().default(false),
  autostart: z.boolean().default(true),
  /** Extra chords to swallow while this VM's display is active, e.g. "ctrl+alt+h". */
  blockedKeys: z.array(z.string()).default([]),
  resources: resourcesSchema.optional(),
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
  /** What the call may name (`params.name`): `self`, a VM/display name or a glob. Default: `self` for vm.* and display.switch, `*` otherwise. */
  target: z.string().min(1).optional(),
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
      /**
       * The input thread runs SCHED_RR 2, and the X server on screen SCHED_RR 1, so a key is not
       * queued behind a busy CPU; false, or a refusal by the kernel, leaves the input thread at
       * nice -10 and every X server normal.
       */
      realtime: z.boolean().default(true),
      /**
       * With `realtime`: the input thread keeps to one CPU (the last), and the X server on screen
       * joins it there, so a key wakes no second CPU on its way. False: both run anywhere.
       */
      pinCpu: z.boolean().default(true),
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
      /** A guest's `ask` question unanswered this long is a deny (stays below the session idle timeout). */
      askTimeoutSeconds: z.number().int().min(5).max(600).default(60),
      /** After the console denies a VM's question, that VM's next questions are refused this long. */
      askCooldownSeconds: z.number().int().min(0).max(3600).default(30),
    })
    .prefault({}),
  admin: z
    .strictObject({
      enabled: z.boolean().default(true),
      idleLockSeconds: z.number().int().min(10).default(300),
    })
    .prefault({}),
  /** The control audit log (stateDir/audit.log): rotated by size, N old files kept. */
  audit: z
    .strictObject({
      maxFileMiB: z.number().int().min(1).max(4096).default(16),
      keepFiles: z.number().int().min(0).max(100).default(4),
    })
    .prefault({}),
  hostUpdate: z.strictObject({ bootDir: z.string().default('/boot/kvmux') }).prefault({}),
  /** Found images (admin-dropped disks) and uploads: defaults and limits. */
  imageDefaults: z
    .strictObject({
      /** Found images without a sidecar saying otherwise start with kvmux; never images a guest uploaded. */
      autostart: z.boolean().default(false),
      /** Images with a backing file are refused unless this is on (data files and foreign extents always are). */
      allowBackingFiles: z.boolean().default(false),
      /** What one VM may hold in open uploads plus images it uploaded (MiB); absent = no quota beyond free space. */
      guestQuotaMiB: z.number().int().min(1).optional(),
      /** Space always left free on an image folder's filesystem by uploads (MiB). */
      reserveMiB: z.number().int().min(0).default(256),
      /** An upload or download with no call for this long is aborted and its space released. */
      transferIdleSeconds: z.number().int().min(5).max(86400).default(300),
    })
    .prefault({}),
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
export type Resources = z.infer<typeof resourcesSchema>;
export type SubhostConfig = z.infer<typeof subhostSchema>;
