import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/config.js';
import { initScript } from '../../src/image/initrd-init.js';
import {
  defaultApplianceConfig,
  diskPlan,
  diskSizes,
  grubCfg,
  imageSources,
  kernelCmdline,
  parseAptSources,
  patchBiosBoot,
  sfdiskScript,
  stableUuid,
} from '../../src/image/layout.js';
import { packageRoot, runtimeDependencyDirs } from '../../src/image/payload.js';
import { defaultSplash, splashFromPpm } from '../../src/image/splash.js';

import { tempDir } from '../helpers/temp.js';

const MiB = 2048; // sectors

describe('disk plan', () => {
  const plan = diskPlan(diskSizes(300 * 2 ** 20, 40 * 2 ** 20), 'seed');

  it('lays BIOS boot, ESP, boot, slot A, slot B, data out back to back on MiB boundaries', () => {
    expect(plan.partitions.map((p) => p.name)).toEqual(['bios', 'efi', 'boot', 'slot-a', 'slot-b', 'data']);
    let next = MiB;
    for (const p of plan.partitions) {
      expect(p.startSector).toBe(next);
      expect(p.startSector % MiB).toBe(0);
      next += p.sectors;
    }
    expect(plan.totalSectors).toBe(next + MiB); // room for the backup GPT
    expect(plan.partitions[2]?.number).toBe(3); // GRUB's prefix names (,gpt3)
  });

  it('gives a slot room for two root images (an update is staged beside the old one)', () => {
    const s = diskSizes(300 * 2 ** 20, 40 * 2 ** 20);
    expect(s.slotMiB).toBeGreaterThanOrEqual(600);
    expect(s.bootMiB).toBeGreaterThanOrEqual(80);
    expect(diskSizes(1, 1).slotMiB).toBe(128);
  });

  it('derives UUIDs from the seed: stable, distinct, valid version 4 form', () => {
    const again = diskPlan(diskSizes(300 * 2 ** 20, 40 * 2 ** 20), 'seed');
    expect(again).toEqual(plan);
    const uuids = [plan.diskUuid, ...plan.partitions.map((p) => p.uuid)];
    expect(new Set(uuids).size).toBe(uuids.length);
    for (const u of uuids)
      expect(u).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
    expect(stableUuid('other', 'disk')).not.toBe(plan.diskUuid);
  });

  it('writes an sfdisk script with every partition', () => {
    const s = sfdiskScript(plan);
    expect(s).toContain('label: gpt');
    expect(s).toContain(`label-id: ${plan.diskUuid}`);
    for (const p of plan.partitions)
      expect(s).toContain(`start=${p.startSector}, size=${p.sectors}, type=${p.type}`);
  });
});

describe('GRUB BIOS boot patch', () => {
  const bootImg = Buffer.alloc(512, 0xb0);
  const core = Buffer.alloc(512 * 5 + 100, 0xc0);
  const mbr = Buffer.alloc(512, 0);
  mbr.fill(0xee, 0x1be, 0x1ce); // the protective partition entry
  mbr.writeUInt32LE(0x12345678, 0x1b8); // disk signature
  const { mbr: out, core: c } = patchBiosBoot(bootImg, core, mbr, 2048);

  it('points boot.img at core.img and keeps the partition table', () => {
    expect(out.readBigUInt64LE(0x5c)).toBe(2048n);
    expect(out.subarray(0x1b8, 0x1fe)).toEqual(mbr.subarray(0x1b8, 0x1fe));
    expect(out[0x1fe]).toBe(0x55);
    expect(out[0x1ff]).toBe(0xaa);
    expect(out[0]).toBe(0xb0);
  });

  it("lists core.img's remaining sectors in diskboot's blocklist, with a terminator before it", () => {
    expect(c.length).toBe(512 * 6);
    expect(c.readBigUInt64LE(500)).toBe(2049n);
    expect(c.readUInt16LE(508)).toBe(5);
    expect(c.readUInt16LE(510)).toBe(0x820);
    expect(c.subarray(488, 500).every((b) => b === 0)).toBe(true);
  });

  it('refuses a boot.img that is not one sector', () => {
    expect(() => patchBiosBoot(Buffer.alloc(100), core, mbr, 2048)).toThrow(/512/);
  });
});

describe('kernel command line and GRUB config', () => {
  it('logs on ttyS0 (the last console, so /dev/console), shows tty1, turns SysRq off', () => {
    const c = kernelCmdline().split(' ');
    expect(c).toContain('console=tty1');
    expect(c.filter((w) => w.startsWith('console=')).at(-1)).toMatch(/^console=ttyS0/);
    expect(c).toContain('sysctl.kernel.sysrq=0');
    expect(c).toContain('kvmux.tries=3');
    expect(c).toContain('kvmux.verify=sha256');
    expect(kernelCmdline({ tries: 5, verify: 'size', extra: ['x=1'] })).toMatch(
      /kvmux\.tries=5 kvmux\.verify=size x=1$/,
    );
  });

  it('passes the boot partition UUID GRUB found, so two kvmux disks cannot be mixed', () => {
    const g = grubCfg('quiet');
    expect(g).toContain('probe --fs-uuid --set=bootuuid $root');
    expect(g).toContain('linux /vmlinuz quiet kvmux.boot=UUID=$bootuuid');
    expect(g).toContain('initrd /initrd.img');
  });

  it('locks GRUB: a superuser without a password, console input only, a restart if the kernel fails', () => {
    const g = grubCfg('quiet');
    // GRUB opens its command line and entry editor to superusers only; kvmux has no password line
    expect(g).toMatch(/^set superusers=\S+$/m);
    expect(g).not.toContain('password');
    expect(g).toMatch(/^terminal_input console$/m);
    const after = g.slice(g.indexOf('\nboot\n') + 6);
    expect(after).toMatch(/^sleep \d+$/m);
    expect(after).toMatch(/^reboot$/m);
  });
});

describe('initrd failure', () => {
  it('never gives a shell: it says why and restarts the machine', async () => {
    const dir = tempDir('kvmux-initrd-fail-');
    const fail = initScript()
      .split('\n')
      .find((l) => l.startsWith('fail() '));
    expect(fail).toBeDefined();
    // busybox sh runs the real fail(); sleep and reboot are stubs, and the script's stdin holds a
    // command that would print SHELL if fail() ever handed the console to a shell
    writeFileSync(
      join(dir, 't.sh'),
      `say() { echo "$*"; }\nsleep() { :; }\nreboot() { echo REBOOT; exit 0; }\n${fail}\nfail "no disk"\n`,
    );
    const r = await execa('busybox', ['sh', join(dir, 't.sh')], { input: 'echo SHELL\n', reject: false });
    expect(r.stdout).toContain('FATAL: no disk');
    expect(r.stdout).toContain('REBOOT');
    expect(r.stdout).not.toContain('SHELL');
  });
});

describe('apt sources', () => {
  const deb822 = `Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://deb.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://other.example/node
Suites: nodistro
Components: main
`;
  const oneLine = `deb [arch=amd64 signed-by=/k.gpg] http://deb.example/debian bookworm main non-free
# deb http://commented.example/debian bookworm main
deb http://cloud.example/apt cloud-sdk-bookworm main
deb http://deb.example/debian trixie main`;

  it('keeps the Debian sources of the suite, its updates and security, main only', () => {
    expect(imageSources(parseAptSources(deb822), 'bookworm')).toEqual([
      'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian bookworm main',
      'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian bookworm-updates main',
      'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian-security bookworm-security main',
    ]);
    expect(imageSources(parseAptSources(oneLine), 'bookworm')).toEqual([
      'deb [signed-by=/k.gpg] http://deb.example/debian bookworm main',
    ]);
  });

  it('leaves out a deb822 stanza that says Enabled: no, and deb-src ones', () => {
    const text = `Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://on.example/debian
Suites: bookworm
Components: main
Enabled: yes
`;
    expect(parseAptSources(text).map((s) => s.uri)).toEqual(['http://on.example/debian']);
  });
});

describe('splash', () => {
  it('converts a binary PPM to BGRA rows', () => {
    const ppm = Buffer.concat([Buffer.from('P6\n# logo\n2 1\n255\n'), Buffer.from([255, 0, 0, 0, 0, 255])]);
    const s = splashFromPpm(ppm);
    expect([s.width, s.height]).toEqual([2, 1]);
    expect([...s.bgra]).toEqual([0, 0, 255, 255, 255, 0, 0, 255]);
  });

  it('refuses what is not a whole 8-bit P6 image, naming the problem', () => {
    expect(() => splashFromPpm(Buffer.from('P3\n1 1\n255\n0 0 0'))).toThrow(/P6/);
    expect(() => splashFromPpm(Buffer.from('P6\n1 1\n65535\n\0\0\0\0\0\0'))).toThrow(/maxval/);
    expect(() => splashFromPpm(Buffer.from('P6\n4 4\n255\n\0\0\0'))).toThrow(/needs 48/);
  });

  it('draws the default logo with lit pixels inside its box', () => {
    const s = defaultSplash();
    expect(s.bgra.length).toBe(s.width * s.height * 4);
    let lit = 0;
    for (let i = 0; i < s.bgra.length; i += 4) if (s.bgra[i] !== 0) lit++;
    expect(lit).toBeGreaterThan(s.width * s.height * 0.2);
    expect(lit).toBeLessThan(s.width * s.height * 0.8);
  });
});

describe('image payload', () => {
  it('carries the runtime dependencies (native koffi included) and no dev tools', () => {
    const dirs = runtimeDependencyDirs(packageRoot()).map((d) => d.replace(/.*node_modules\//, ''));
    for (const want of ['commander', 'koffi', 'x11', 'zod', 'blessed', 'pino']) expect(dirs).toContain(want);
    expect(dirs.some((d) => d.startsWith('@koromix/koffi-linux-x64'))).toBe(true);
    for (const dev of ['vitest', 'typescript', '@biomejs/biome', 'esbuild', 'tsx'])
      expect(dirs).not.toContain(dev);
  });

  it('resolves dependencies as Node does, skips a missing optional one, and refuses a missing required one', () => {
    const root = tempDir('kvmux-payload-');
    const pkg = (dir: string, deps: Record<string, string> = {}, optional: Record<string, string> = {}) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'package.json'),
        JSON.stringify({ dependencies: deps, optionalDependencies: optional }),
      );
    };
    const nm = (...parts: string[]) => join(root, 'node_modules', ...parts);
    pkg(root, { a: '1', c: '1' }, { 'not-here': '1' });
    pkg(nm('a'), { b: '2' }); // a needs its own b 2 (nested), the root's b is 1
    pkg(nm('a', 'node_modules', 'b'));
    pkg(nm('b'));
    pkg(nm('c'), { b: '1' });
    pkg(nm('unused'));
    expect(runtimeDependencyDirs(root)).toEqual(
      [nm('a'), nm('a', 'node_modules', 'b'), nm('b'), nm('c')].sort(),
    );
    // a required dependency that is not installed would leave the appliance unable to start kvmux
    pkg(nm('c'), { b: '1', gone: '1' });
    expect(() => runtimeDependencyDirs(root)).toThrow(
      `${nm('c')}: dependency gone is not installed (run npm ci)`,
    );
  });

  it('ships a default config that the config loader accepts', () => {
    const cfg = parseConfigText(defaultApplianceConfig());
    expect(cfg.stateDir).toBe('/data/kvmux/state');
    expect(cfg.hostUpdate.bootDir).toBe('/boot/kvmux');
    expect(cfg.x.driver).toBe('modesetting');
    expect(cfg.console).toBe('vt');
  });
});
