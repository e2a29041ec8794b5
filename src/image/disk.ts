import {
  closeSync,
  copyFileSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  BOOT_LABEL,
  BOOT_PARTITION_NUMBER,
  type CmdlineOptions,
  DATA_LABEL,
  diskPlan,
  diskSizes,
  ESP_LABEL,
  grubCfg,
  kernelCmdline,
  type Partition,
  patchBiosBoot,
  SLOT_LABELS,
  sfdiskScript,
  stableUuid,
} from './layout.js';

export interface DiskOptions {
  out: string;
  work: string;
  vmlinuz: string;
  initrd: string;
  squashfs: string;
  metaJson: string;
  seed: string;
  cmdline: CmdlineOptions;
  grubDir?: string;
}

/** GRUB modules built into the core images, so no module folder is needed at boot. */
const GRUB_MODULES = [
  'part_gpt',
  'ext2',
  'normal',
  'linux',
  'echo',
  'test',
  'probe',
  'serial',
  'terminal',
  'all_video',
  'gfxterm',
  'search',
  'configfile',
  'sleep',
  'reboot',
];

async function grubImage(grubDir: string, format: 'i386-pc' | 'x86_64-efi', out: string): Promise<void> {
  const extra = format === 'i386-pc' ? ['biosdisk'] : ['efi_gop'];
  await execa('grub-mkimage', [
    '-O',
    format,
    '-d',
    join(grubDir, format),
    '-o',
    out,
    '-p',
    `(,gpt${BOOT_PARTITION_NUMBER})/grub`,
    ...GRUB_MODULES,
    ...extra,
  ]);
}

/** An ext4 filesystem filled from `dir`, written straight into the disk at the partition's offset. */
async function ext4Into(disk: string, p: Partition, label: string, dir: string, seed: string): Promise<void> {
  await execa('mke2fs', [
    '-q',
    '-F',
    '-t',
    'ext4',
    '-L',
    label,
    '-U',
    stableUuid(seed, `fs-${p.name}`).toLowerCase(),
    '-O',
    '^metadata_csum_seed,^orphan_file',
    '-E',
    `offset=${p.startSector * 512},root_owner=0:0`,
    '-d',
    dir,
    disk,
    `${p.sectors / 2}k`,
  ]);
}

function writeAt(file: string, data: Buffer, offset: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * disk.img: GPT with BIOS boot (GRUB core), ESP (GRUB EFI as the removable-media path), boot
 * (kernel, initrd, grub.cfg, the A/B pointer), slot A and slot B (the same root.squashfs at first,
 * so the factory image can roll back from its first boot) and data.
 */
export async function assembleDisk(o: DiskOptions): Promise<void> {
  const grubDir = o.grubDir ?? '/usr/lib/grub';
  const w = o.work;
  mkdirSync(w, { recursive: true });
  const bootFiles = statSync(o.vmlinuz).size + statSync(o.initrd).size;
  const plan = diskPlan(diskSizes(statSync(o.squashfs).size, bootFiles), o.seed);
  const part = (name: string) => {
    const p = plan.partitions.find((x) => x.name === name);
    if (!p) throw new Error(`no partition ${name}`);
    return p;
  };
  writeFileSync(o.out, '');
  await execa('truncate', ['-s', String(plan.totalSectors * 512), o.out]);
  await execa('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', o.out], { input: sfdiskScript(plan) });

  // boot partition
  const boot = join(w, 'boot');
  for (const d of ['grub', 'slot-a', 'slot-b']) mkdirSync(join(boot, d), { recursive: true });
  linkOrCopy(o.vmlinuz, join(boot, 'vmlinuz'));
  linkOrCopy(o.initrd, join(boot, 'initrd.img'));
  writeFileSync(join(boot, 'grub/grub.cfg'), grubCfg(kernelCmdline(o.cmdline)));
  writeFileSync(join(boot, 'next'), 'a\n');
  await ext4Into(o.out, part('boot'), BOOT_LABEL, boot, o.seed);

  for (const s of ['a', 'b'] as const) {
    const dir = join(w, `slot-${s}`);
    mkdirSync(dir, { recursive: true });
    linkOrCopy(o.squashfs, join(dir, 'root.squashfs'));
    linkOrCopy(o.metaJson, join(dir, 'meta.json'));
    await ext4Into(o.out, part(`slot-${s}`), SLOT_LABELS[s], dir, o.seed);
  }
  const data = join(w, 'data');
  for (const d of ['kvmux/state', 'images']) mkdirSync(join(data, d), { recursive: true });
  await ext4Into(o.out, part('data'), DATA_LABEL, data, o.seed);

  // UEFI: GRUB at the removable-media path of the ESP
  const esp = part('efi');
  const espImg = join(w, 'esp.img');
  await execa('mkfs.fat', ['-C', '-n', ESP_LABEL, '-i', o.seed.slice(0, 8), espImg, String(esp.sectors / 2)]);
  const efi = join(w, 'BOOTX64.EFI');
  await grubImage(grubDir, 'x86_64-efi', efi);
  await execa('mmd', ['-i', espImg, '::/EFI', '::/EFI/BOOT']);
  await execa('mcopy', ['-i', espImg, efi, '::/EFI/BOOT/BOOTX64.EFI']);
  writeAt(o.out, readFileSync(espImg), esp.startSector * 512);

  // BIOS: boot.img in the MBR, core.img in the BIOS boot partition
  const bios = part('bios');
  const coreImg = join(w, 'core.img');
  await grubImage(grubDir, 'i386-pc', coreImg);
  const core = readFileSync(coreImg);
  if (core.length > bios.sectors * 512)
    throw new Error(`GRUB core.img (${core.length} bytes) exceeds the BIOS boot partition`);
  const mbr = Buffer.alloc(512);
  const fd = openSync(o.out, 'r');
  readSync(fd, mbr, 0, 512, 0);
  closeSync(fd);
  const patched = patchBiosBoot(readFileSync(join(grubDir, 'i386-pc/boot.img')), core, mbr, bios.startSector);
  writeAt(o.out, patched.mbr, 0);
  writeAt(o.out, patched.core, bios.startSector * 512);
}

/** Hard-links `src` to `dst` when on one filesystem, else copies. */
function linkOrCopy(src: string, dst: string): void {
  try {
    linkSync(src, dst);
  } catch {
    copyFileSync(src, dst);
  }
}
