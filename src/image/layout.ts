import { createHash } from 'node:crypto';

/**
 * What the appliance image is made of, as data: labels, the partition table, the kernel command
 * line, GRUB's config, the package list. Pure: no I/O, so every rule is tested without building.
 */

export const BOOT_LABEL = 'KVMUX_BOOT';
export const SLOT_LABELS = { a: 'KVMUX_A', b: 'KVMUX_B' } as const;
export const DATA_LABEL = 'KVMUX_DATA';
export const ESP_LABEL = 'KVMUX_EFI';
/** Where the running system finds the boot partition; the config's hostUpdate.bootDir. */
export const BOOT_DIR = '/boot/kvmux';
/** The data partition's mount point: stateDir, images and the admin's config live here. */
export const DATA_DIR = '/data';

/** Debian packages of the root, beyond mmdebstrap's minbase (Node comes separately, see node.ts). */
export const ROOT_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'udev',
  'kmod',
  'linux-image-amd64',
  'busybox-static', // the initrd's one binary, taken from the root so both come from one apt run
  'xserver-xorg-core', // Xorg and its modesetting driver
  'xserver-xorg-video-fbdev',
  'xterm', // the admin screen's terminal
  'xfonts-base',
  'qemu-system-x86',
  'qemu-system-gui', // QEMU's gtk window on each VM's display
  'squashfs-tools', // host.update checks a staged slot with unsquashfs -s
  'iproute2',
  'nftables',
  'procps',
  'e2fsprogs',
] as const;

/** Paths dropped from the root: documentation and translations nobody reads on a kiosk. */
export const DPKG_EXCLUDES = [
  '/usr/share/doc/*',
  '/usr/share/man/*',
  '/usr/share/info/*',
  '/usr/share/locale/*',
];

/** Kernel modules the initrd loads (with their dependencies): every common way to reach a disk. */
export const INITRD_MODULES = [
  'ext4',
  'squashfs',
  'overlay',
  'loop',
  'sd_mod',
  'sr_mod',
  'ahci',
  'ata_piix',
  'virtio_pci',
  'virtio_blk',
  'virtio_scsi',
  'nvme',
  'xhci_pci',
  'ehci_pci',
  'ohci_pci',
  'uhci_hcd',
  'usb_storage',
  'uas',
  'mmc_block',
  'sdhci_pci',
] as const;

export interface CmdlineOptions {
  /** Boots a slot may start without reaching "kvmux ready" before it counts as bad. */
  tries?: number;
  /** `sha256`: hash the slot's squashfs against meta.json before mounting; `size`: size only. */
  verify?: 'sha256' | 'size';
  extra?: readonly string[];
}

/**
 * The default kernel command line: quiet on the screen (the splash shows), the boot log on ttyS0
 * (the last console= is /dev/console), SysRq off from the first instruction, no blinking cursor.
 */
export function kernelCmdline(opts: CmdlineOptions = {}): string {
  return [
    'quiet',
    'loglevel=3',
    'console=tty1',
    'console=ttyS0,115200n8',
    'sysctl.kernel.sysrq=0',
    'panic=10',
    'vt.global_cursor_default=0',
    `kvmux.tries=${opts.tries ?? 3}`,
    `kvmux.verify=${opts.verify ?? 'sha256'}`,
    ...(opts.extra ?? []),
  ].join(' ');
}

/**
 * GRUB's config on the boot partition. Locked: `superusers` names a user with no password, so
 * neither the command line nor editing is open to anyone (no `rdinit=/bin/sh` at the console), input
 * comes from the console only, and a kernel that fails to load restarts the box instead of
 * leaving a `grub>` prompt. The core image's prefix is `(,gpt3)/grub`: the boot partition
 * of the disk the firmware booted, whatever its number; its UUID goes to the initrd so that, with two
 * kvmux disks plugged in, the initrd picks the one that booted.
 */
export function grubCfg(cmdline: string): string {
  return `set timeout=0
set timeout_style=hidden
set superusers=kvmux
export superusers
serial --unit=0 --speed=115200
terminal_input console
terminal_output console serial
insmod all_video
set gfxmode=1024x768x32,800x600x32,auto
set gfxpayload=1024x768x32,800x600x32,keep
probe --fs-uuid --set=bootuuid $root
echo "kvmux: GRUB loading the kernel from $root"
linux /vmlinuz ${cmdline} kvmux.boot=UUID=$bootuuid
initrd /initrd.img
boot
echo "kvmux: the kernel did not start; restarting in 10 s"
sleep 10
reboot
`;
}

/** Partition number of the boot partition (GRUB's prefix names it). */
export const BOOT_PARTITION_NUMBER = 3;

export const GPT_TYPES = {
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69C8477DE4',
} as const;

export interface PartitionSpec {
  name: string;
  type: string;
  sizeMiB: number;
}
export interface Partition extends PartitionSpec {
  number: number;
  startSector: number;
  sectors: number;
  uuid: string;
}
export interface DiskPlan {
  partitions: Partition[];
  totalSectors: number;
  diskUuid: string;
}

const SECTOR = 512;
const MIB_SECTORS = (1024 * 1024) / SECTOR;

/** A UUID derived from a name and a seed: the same inputs give the same disk, byte for byte. */
export function stableUuid(seed: string, name: string): string {
  const h = createHash('sha256').update(`${seed}\0${name}`).digest('hex');
  const v = `4${h.slice(13, 16)}`;
  const variant = ((Number.parseInt(h[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${v}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`.toUpperCase();
}

export interface DiskSizes {
  espMiB: number;
  bootMiB: number;
  slotMiB: number;
  dataMiB: number;
}

/** Partition sizes for a root image of `squashBytes`: a slot holds two (an update's temp file). */
export function diskSizes(squashBytes: number, bootFilesBytes: number, dataMiB = 256): DiskSizes {
  const mib = (b: number) => Math.ceil(b / 2 ** 20);
  return {
    espMiB: 16,
    bootMiB: Math.max(64, 2 * mib(bootFilesBytes) + 16),
    slotMiB: Math.max(128, 2 * mib(squashBytes) + 64),
    dataMiB,
  };
}

/** The GPT: BIOS boot, ESP, boot, slot A, slot B, data, 1 MiB aligned, one spare MiB at the end. */
export function diskPlan(sizes: DiskSizes, seed: string): DiskPlan {
  const specs: PartitionSpec[] = [
    { name: 'bios', type: GPT_TYPES.biosBoot, sizeMiB: 1 },
    { name: 'efi', type: GPT_TYPES.esp, sizeMiB: sizes.espMiB },
    { name: 'boot', type: GPT_TYPES.linux, sizeMiB: sizes.bootMiB },
    { name: 'slot-a', type: GPT_TYPES.linux, sizeMiB: sizes.slotMiB },
    { name: 'slot-b', type: GPT_TYPES.linux, sizeMiB: sizes.slotMiB },
    { name: 'data', type: GPT_TYPES.linux, sizeMiB: sizes.dataMiB },
  ];
  let next = MIB_SECTORS;
  const partitions = specs.map((s, i) => {
    const p: Partition = {
      ...s,
      number: i + 1,
      startSector: next,
      sectors: s.sizeMiB * MIB_SECTORS,
      uuid: stableUuid(seed, s.name),
    };
    next += p.sectors;
    return p;
  });
  return { partitions, totalSectors: next + MIB_SECTORS, diskUuid: stableUuid(seed, 'disk') };
}

/** sfdisk's script for the plan (sfdisk writes GPT into a plain file). */
export function sfdiskScript(plan: DiskPlan): string {
  const lines = ['label: gpt', `label-id: ${plan.diskUuid}`, 'unit: sectors', 'first-lba: 2048', ''];
  for (const p of plan.partitions)
    lines.push(`start=${p.startSector}, size=${p.sectors}, type=${p.type}, uuid=${p.uuid}, name="${p.name}"`);
  return `${lines.join('\n')}\n`;
}

/**
 * GRUB's BIOS boot: boot.img in the MBR points at core.img in the BIOS boot partition, and core.img's
 * first sector (diskboot) lists the sectors of the rest. What grub-bios-setup does, without needing a
 * block device. Returns the patched copies; the MBR's partition table area is kept from `mbr`.
 */
export function patchBiosBoot(
  bootImg: Buffer,
  coreImg: Buffer,
  mbr: Buffer,
  coreSector: number,
): { mbr: Buffer; core: Buffer } {
  if (bootImg.length !== SECTOR) throw new Error(`boot.img is ${bootImg.length} bytes, not 512`);
  const out = Buffer.from(mbr);
  // code and BPB area from boot.img; 0x1b8.. (disk signature, partition table, 55AA) stay
  bootImg.copy(out, 0, 0, 0x1b8);
  out.writeBigUInt64LE(BigInt(coreSector), 0x5c); // GRUB_BOOT_MACHINE_KERNEL_SECTOR
  out[0x1fe] = 0x55;
  out[0x1ff] = 0xaa;
  const core = Buffer.alloc(Math.ceil(coreImg.length / SECTOR) * SECTOR);
  coreImg.copy(core);
  const sectors = core.length / SECTOR;
  const bl = SECTOR - 12; // the last blocklist entry of diskboot: start u64, len u16, segment u16
  core.writeBigUInt64LE(BigInt(coreSector + 1), bl);
  core.writeUInt16LE(sectors - 1, bl + 8);
  core.writeUInt16LE(0x820, bl + 10);
  core.fill(0, bl - 12, bl); // the entry before it: the terminator
  return { mbr: out, core };
}

/** Config of the appliance when `--config` is not given: no VMs yet, state on the data partition. */
export function defaultApplianceConfig(): string {
  return `# kvmux appliance default config. VMs are added from the admin screen (Scroll Lock twice → admin)
# and are kept on the data partition (${DATA_DIR}/kvmux/state/config.yaml).
console: vt
x: { driver: modesetting, readySeconds: 120 }   # the real KMS driver of the machine's GPU
stateDir: ${DATA_DIR}/kvmux/state
imageDirs: [${DATA_DIR}/images]
hostUpdate: { bootDir: ${BOOT_DIR} }
vms: []
`;
}

/** One line of apt sources kept for the image: a Debian archive of the wanted suite, main only. */
export interface AptSource {
  uri: string;
  suite: string;
  components: string[];
  signedBy: string | null;
}

/** Parses deb822 `.sources` and one-line `.list` text (types deb only, disabled stanzas skipped). */
export function parseAptSources(text: string): AptSource[] {
  const out: AptSource[] = [];
  if (/^\s*Types:/im.test(text)) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (k: string) =>
        new RegExp(`^${k}:\\s*(.+)$`, 'im').exec(stanza.replace(/^#.*$/gm, ''))?.[1]?.trim() ?? '';
      if (!field('Types').split(/\s+/).includes('deb')) continue;
      if (/^no$/i.test(field('Enabled'))) continue;
      for (const uri of field('URIs').split(/\s+/).filter(Boolean))
        for (const suite of field('Suites').split(/\s+/).filter(Boolean))
          out.push({
            uri,
            suite,
            components: field('Components').split(/\s+/),
            signedBy: field('Signed-By') || null,
          });
    }
    return out;
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(line);
    if (!m) continue;
    const signed = /signed-by=(\S+)/.exec(m[1] ?? '')?.[1] ?? null;
    out.push({ uri: m[2] ?? '', suite: m[3] ?? '', components: (m[4] ?? '').split(/\s+/), signedBy: signed });
  }
  return out;
}

/** The sources for mmdebstrap: those of `suite` (and its -updates/-security) carrying `main`. */
export function imageSources(all: readonly AptSource[], suite: string): string[] {
  const suites = new Set([suite, `${suite}-updates`, `${suite}-security`]);
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const s of all) {
    if (!suites.has(s.suite) || !s.components.includes('main')) continue;
    const line = `deb${s.signedBy ? ` [signed-by=${s.signedBy}]` : ''} ${s.uri} ${s.suite} main`;
    if (!seen.has(line)) lines.push(line);
    seen.add(line);
  }
  return lines;
}
