#!/usr/bin/env -S node --max-semi-space-size=2 --expose-gc
import { Command, Option } from 'commander';
import { KvmuxError } from '../util/errors.js';
import { packageVersion } from '../util/version.js';

const configOption = () =>
  new Option('-c, --config <file>', 'config file (default: $KVMUX_CONFIG, then /etc/kvmux/kvmux.yaml)');
const socketOption = () =>
  new Option('-s, --socket <path>', 'control socket (default: <runDir>/control.sock)');

/** Each subcommand lives in its own module, loaded only when used so `kvmux ctl` starts fast. */
function lazy<T extends unknown[]>(
  load: () => Promise<{ default: (...args: T) => Promise<number | undefined> }>,
) {
  return async (...args: T) => {
    const mod = await load();
    const code = await mod.default(...args);
    if (typeof code === 'number') process.exitCode = code;
  };
}

export function buildProgram(): Command {
  const program = new Command('kvmux')
    .description(
      'A hardware-style KVM switch for virtual machines: every VM full-screen on its own display, ' +
        'double-tap Scroll Lock for the switcher menu, host escape keys swallowed.',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('run')
    .description('run the service in the foreground (JSON log lines on stderr)')
    .addOption(configOption())
    .action(lazy(() => import('./run.js')));

  program
    .command('check')
    .description('validate a config and print the effective one (defaults filled in)')
    .addOption(configOption())
    .option('--json', 'print JSON instead of YAML')
    .action(lazy(() => import('./check.js')));

  program
    .command('ctl')
    .description('make one JSON-RPC call to the service and print its result as JSON')
    .argument('<method>', 'method name, e.g. vm.list')
    .argument('[params]', 'JSON params, e.g. \'{"name":"alpha"}\'')
    .addOption(configOption())
    .addOption(socketOption())
    .action(lazy(() => import('./ctl.js')));

  program
    .command('admin')
    .description('the host admin screen (TUI); --remote talks over a guest channel device')
    .addOption(configOption())
    .addOption(socketOption())
    .option('-r, --remote <device>', 'guest channel device, e.g. /dev/virtio-ports/org.kvmux.control')
    .option('--idle-lock <seconds>', 'lock after this many idle seconds (default: admin.idleLockSeconds)')
    .action(lazy(() => import('./admin.js')));

  program
    .command('passwd')
    .description('set the host admin password (read from stdin when stdin is not a TTY)')
    .addOption(configOption())
    .action(lazy(() => import('./passwd.js')));

  program
    .command('doctor')
    .description('check the prerequisites of this machine and print how to fix what is missing')
    .addOption(configOption())
    .action(lazy(() => import('./doctor.js')));

  program
    .command('monitor')
    .description('print decoded input events and hotkey/guard decisions live (does not grab)')
    .addOption(configOption())
    .option('-d, --device <path...>', 'devices or FIFOs to read (default: from config)')
    .action(lazy(() => import('./monitor.js')));

  const image = program
    .command('image')
    .description('disk images: move them to and from the host, and build the bootable kvmux appliance');
  const imageCmd = <A extends unknown[]>(
    pick: (m: typeof import('./image.js')) => (...args: A) => Promise<number>,
  ) => lazy(async () => ({ default: pick(await import('./image.js')) }));
  image
    .command('upload')
    .description('upload a disk image into the first image folder (sha256 checked by the host)')
    .argument('<file>', 'local image file')
    .option('-n, --name <name>', 'file name on the host (default: the local name)')
    .option('--replace', 'replace an existing image of that name (refused while a VM runs from it)')
    .option('--base64', 'send base64 JSON chunks instead of binary attachments')
    .addOption(configOption())
    .addOption(socketOption())
    .action(imageCmd((m) => m.upload));
  image
    .command('download')
    .description('download an image from the image folders (sha256 checked here)')
    .argument('<name>', 'image file name on the host, e.g. alpha.qcow2')
    .option('-o, --out <file>', 'where to write it (default: ./NAME)')
    .option('--base64', 'receive base64 JSON chunks instead of binary attachments')
    .addOption(configOption())
    .addOption(socketOption())
    .action(imageCmd((m) => m.download));
  image
    .command('list')
    .description('images with size, sha256 and the VMs using each')
    .addOption(configOption())
    .addOption(socketOption())
    .action(imageCmd((m) => m.list));
  image
    .command('build')
    .description(
      'build vmlinuz, initrd.img, root.squashfs and a bootable BIOS+UEFI disk.img (GRUB; partitions boot, ' +
        'slot A, slot B, data) from the Debian apt sources in /etc/apt. Needs root, mmdebstrap, ' +
        'squashfs-tools, grub-pc-bin, grub-efi-amd64-bin, mtools, dosfstools. The root is cached in ' +
        '--cache-dir; rebuilding the same inputs gives the same root.squashfs (SOURCE_DATE_EPOCH). ' +
        'Write disk.img to a USB stick with `dd if=disk.img of=/dev/sdX bs=4M conv=fsync`.',
    )
    .requiredOption('-o, --out <dir>', 'output folder')
    .option(
      '-c, --config <file>',
      'host config baked in as /etc/kvmux/kvmux.yaml (default: no VMs, state on /data)',
    )
    .option('--splash <ppm>', 'boot logo, binary PPM (P6); default: KVMUX in block letters')
    .option('--cache-dir <dir>', 'cache of the Debian root and Node (default /var/tmp/kvmux-image-cache)')
    .option('--no-disk', 'skip disk.img')
    .action(lazy(() => import('./image-build.js')));
  program
    .command('import-subhost')
    .description('print the VM entry for a seed subhost folder (DIR/config with DISKS and BRIDGES, DIR/root)')
    .argument('<dir>', 'the subhost folder, e.g. /opt/sub/mysubhost')
    .option('--base <dir>', 'common read-only base: DIR/root becomes the subhost layer over it')
    .action(lazy(() => import('./import-subhost.js')));

  const config = program.command('config').description('config helpers');
  config
    .command('schema')
    .description('print the JSON Schema of the config file, for editors')
    .addOption(configOption()) // accepted like every subcommand; the schema does not depend on it
    .action(lazy(() => import('./config-schema.js')));

  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof KvmuxError) {
      process.stderr.write(`kvmux: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

await main();
