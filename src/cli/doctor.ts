import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
} from 'node:fs';
import { execa } from 'execa';
import { type Config, loadConfigFile, resolveConfigPath } from '../config/config.js';
import { errnoName, errText } from '../util/errors.js';

type Verdict = 'ok' | 'warn' | 'fail' | 'skip';
interface Finding {
  verdict: Verdict;
  detail: string;
  fix?: string;
}
interface Check {
  name: string;
  run(cfg: Config | undefined): Finding | Promise<Finding>;
}

const ok = (detail: string): Finding => ({ verdict: 'ok', detail });
const fail = (detail: string, fix: string): Finding => ({ verdict: 'fail', detail, fix });
const warn = (detail: string, fix: string): Finding => ({ verdict: 'warn', detail, fix });

function canOpen(path: string, flags: number): string | undefined {
  try {
    closeSync(openSync(path, flags));
    return undefined;
  } catch (err) {
    return errnoName(err);
  }
}

async function which(bin: string): Promise<string | undefined> {
  const r = await execa('sh', ['-c', `command -v ${bin}`], { reject: false });
  return r.exitCode === 0 ? String(r.stdout).trim() : undefined;
}

function binary(bin: string, pkg: string, why: string): Check {
  return {
    name: bin,
    run: async () => {
      const path = await which(bin);
      return path ? ok(path) : fail(`not found (${why})`, `apt-get install ${pkg}`);
    },
  };
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** One row per prerequisite; each says what is wrong and the command that fixes it. */
const CHECKS: Check[] = [
  {
    name: 'root',
    run: () =>
      process.getuid?.() === 0
        ? ok('running as root')
        : fail('not root', 'run kvmux as root (it grabs input and owns VTs)'),
  },
  {
    name: 'node',
    run: () => {
      const major = Number(process.versions.node.split('.')[0]);
      return major >= 20
        ? ok(process.version)
        : fail(`${process.version} is too old`, 'install Node.js 20 or newer');
    },
  },
  {
    name: '/dev/kvm',
    run: () => {
      if (!existsSync('/dev/kvm'))
        return warn(
          'absent: VMs fall back to TCG (slow)',
          'enable VT-x/AMD-V in firmware; modprobe kvm_intel or kvm_amd',
        );
      const err = canOpen('/dev/kvm', constants.O_RDWR);
      return err
        ? warn(`cannot open: ${err}; VMs fall back to TCG`, 'check permissions on /dev/kvm')
        : ok('usable');
    },
  },
  {
    name: '/dev/tty0',
    run: (cfg) => {
      if (cfg?.console === 'virtual') return { verdict: 'skip', detail: 'console: virtual needs no VT' };
      const err = canOpen('/dev/tty0', constants.O_RDWR);
      return err
        ? fail(
            `cannot open: ${err}`,
            'run as root on a machine with virtual terminals, or set console: virtual',
          )
        : ok('VT switching possible');
    },
  },
  {
    name: 'X server',
    run: async (cfg) => {
      if (cfg?.console === 'virtual') {
        return (await which('Xvfb')) ? ok('Xvfb present') : fail('Xvfb not found', 'apt-get install xvfb');
      }
      if (!(await which('Xorg'))) return fail('Xorg not found', 'apt-get install xserver-xorg-core');
      const driver = cfg?.x.driver ?? 'dummy';
      const dir = '/usr/lib/xorg/modules/drivers';
      const have = existsSync(dir) ? readdirSync(dir) : [];
      return have.includes(`${driver}_drv.so`)
        ? ok(`Xorg with the ${driver} driver`)
        : fail(
            `Xorg driver "${driver}" missing`,
            driver === 'dummy'
              ? 'apt-get install xserver-xorg-video-dummy'
              : 'apt-get install xserver-xorg-core',
          );
    },
  },
  {
    name: 'qemu',
    run: async () => {
      if (!(await which('qemu-system-x86_64')))
        return fail('qemu-system-x86_64 not found', 'apt-get install qemu-system-x86');
      const r = await execa('qemu-system-x86_64', ['-display', 'help'], { reject: false });
      return /gtk/.test(String(r.stdout))
        ? ok('qemu-system-x86_64 with gtk display')
        : warn('no gtk display in QEMU', 'apt-get install qemu-system-gui');
    },
  },
  binary('xterm', 'xterm', 'the admin display runs in xterm'),
  binary('import', 'imagemagick', 'screenshots'),
  binary('nft', 'nftables', 'anti-spoofing on VM networks'),
  binary('ip', 'iproute2', 'bridges and taps'),
  binary('unsquashfs', 'squashfs-tools', 'host image update validation'),
  {
    name: 'input devices',
    run: () => {
      if (!existsSync('/dev/input'))
        return warn(
          'no /dev/input: only FIFO input will work',
          'load evdev (modprobe evdev) or attach a keyboard',
        );
      const n = readdirSync('/dev/input').filter((f) => f.startsWith('event')).length;
      return n > 0 ? ok(`${n} event device(s)`) : warn('no event devices', 'attach a keyboard');
    },
  },
  {
    name: 'sysrq',
    run: () => {
      const v = readSysctl('/proc/sys/kernel/sysrq');
      if (v === undefined) return { verdict: 'skip', detail: 'kernel.sysrq not readable here' };
      // The grab already hides SysRq from the kernel's handler; 0 is defence in depth.
      return v === '0'
        ? ok('kernel.sysrq = 0')
        : warn(
            `kernel.sysrq = ${v}`,
            "echo 'kernel.sysrq = 0' > /etc/sysctl.d/90-kvmux.conf && sysctl --system",
          );
    },
  },
  {
    name: 'ctrl-alt-del',
    run: () => {
      if (!existsSync('/run/systemd/system')) return { verdict: 'skip', detail: 'systemd not running' };
      let link = '';
      try {
        link = readlinkSync('/etc/systemd/system/ctrl-alt-del.target');
      } catch {}
      return link === '/dev/null'
        ? ok('ctrl-alt-del.target masked')
        : warn(
            'ctrl-alt-del.target not masked: Ctrl+Alt+Del on a bare VT reboots the host',
            'systemctl mask ctrl-alt-del.target',
          );
    },
  },
  {
    name: 'config',
    run: (cfg) =>
      cfg
        ? ok(`${cfg.vms.length} VM(s), console: ${cfg.console}`)
        : { verdict: 'skip', detail: 'no config loaded' },
  },
];

export default async function doctor(opts: { config?: string }): Promise<number> {
  const path = resolveConfigPath(opts.config);
  let cfg: Config | undefined;
  let configProblem: string | undefined;
  try {
    accessSync(path, constants.R_OK);
    cfg = loadConfigFile(path);
  } catch (err) {
    configProblem = errText(err);
  }
  let failed = 0;
  const out = (f: Finding, name: string) => {
    const tag = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' }[f.verdict];
    process.stdout.write(`${tag}  ${name.padEnd(14)} ${f.detail}\n`);
    if (f.fix) process.stdout.write(`      ${''.padEnd(14)} fix: ${f.fix}\n`);
  };
  for (const check of CHECKS) {
    const finding = await check.run(cfg);
    if (finding.verdict === 'fail') failed++;
    out(finding, check.name);
  }
  if (configProblem) out(warn(configProblem, `write ${path} (see kvmux check)`), 'config file');
  process.stdout.write(
    failed === 0 ? 'doctor: no blocking problem found\n' : `doctor: ${failed} blocking problem(s)\n`,
  );
  return failed === 0 ? 0 : 1;
}
