#!/usr/bin/env -S node --max-semi-space-size=2
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
