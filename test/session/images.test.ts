import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { vmSchema } from '../../src/config/schema.js';
import { allVms, discoverImages, nameFromFile } from '../../src/session/images.js';
import { tempDir } from '../helpers/temp.js';

/** Empty .qcow2/.vdi entries become real (1 MiB) images: discovery inspects every disk. */
function imageDir(files: Record<string, string>): string {
  const dir = tempDir('kvmux-images-');
  for (const [name, text] of Object.entries(files)) {
    const fmt = /\.(qcow2|vdi)$/.exec(name)?.[1];
    if (fmt && text === '') execFileSync('qemu-img', ['create', '-q', '-f', fmt, join(dir, name), '1M']);
    else writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('image discovery', () => {
  it.each([
    ['Windows 11 (x64).qcow2', 'windows-11-x64'],
    ['alpha.img', 'alpha'],
    ['../../etc/passwd.raw', 'passwd'],
    ['___.vdi', 'image-x'],
    ['admin.img', 'image-admin'],
    [`${'a'.repeat(40)}.img`, 'a'.repeat(31)],
  ])('names %j as %j', (file, name) => {
    expect(nameFromFile(file)).toBe(name);
    expect(() => vmSchema.shape.name.parse(nameFromFile(file))).not.toThrow();
  });

  it('turns every image into a stopped VM; other files are ignored', () => {
    const dir = imageDir({
      'a.qcow2': '',
      'b.raw': '',
      'c.img': '',
      'd.vdi': '',
      'e.vbox': '',
      'notes.txt': '',
    });
    const { vms, problems } = discoverImages([dir]);
    expect(problems).toEqual([]);
    expect(vms.map((v) => [v.name, v.backend, v.autostart])).toEqual([
      ['a', 'qemu', false],
      ['b', 'qemu', false],
      ['c', 'qemu', false],
      ['d', 'qemu', false],
      ['e', 'virtualbox', false],
    ]);
    expect(vms[0]!.qemu?.disk).toBe(join(dir, 'a.qcow2'));
    expect(vms[4]!.virtualbox?.vmName).toBe('e');
  });

  it('applies a sidecar <image>.yaml (settings, autostart, a name of its own)', () => {
    const dir = imageDir({
      'win.qcow2': '',
      'win.qcow2.yaml':
        'name: desk\nautostart: true\nqemu: { memoryMiB: 4096, cpus: 2 }\nguestChannel: true\n',
      'lab.img': '',
      'lab.yaml': 'qemu: { accel: tcg }\n',
    });
    const { vms, problems } = discoverImages([dir]);
    expect(problems).toEqual([]);
    expect(vms.find((v) => v.name === 'desk')).toMatchObject({
      autostart: true,
      guestChannel: true,
      qemu: { disk: join(dir, 'win.qcow2'), memoryMiB: 4096, cpus: 2 },
    });
    expect(vms.find((v) => v.name === 'lab')?.qemu).toMatchObject({
      accel: 'tcg',
      disk: join(dir, 'lab.img'),
    });
  });

  it('reports a bad sidecar by file and key, and skips only that image', () => {
    const dir = imageDir({
      'a.img': '',
      'a.img.yaml': 'qemu: { memoryMiB: "lots" }\nbogus: 1\n',
      'b.img': '',
    });
    const { vms, problems } = discoverImages([dir]);
    expect(vms.map((v) => v.name)).toEqual(['b']);
    expect(problems.join('\n')).toContain(`${join(dir, 'a.img.yaml')}: qemu.memoryMiB:`);
    expect(problems.join('\n')).toMatch(/bogus/);
  });

  it('lets explicit vms entries win by name and by disk', () => {
    const dir = imageDir({ 'alpha.img': '', 'other.img': '', 'beta.img': '' });
    const explicit = [
      vmSchema.parse({ name: 'alpha', backend: 'qemu', qemu: { disk: '/elsewhere.img' } }),
      vmSchema.parse({ name: 'main', backend: 'qemu', qemu: { disk: join(dir, 'other.img') } }),
    ];
    const { vms } = allVms({ imageDirs: [dir], vms: explicit });
    expect(vms.map((v) => v.name)).toEqual(['alpha', 'main', 'beta']);
  });

  it('keeps names unique across image dirs', () => {
    const a = imageDir({ 'disk.img': '' });
    const b = imageDir({ 'disk.qcow2': '' });
    expect(discoverImages([a, b]).vms.map((v) => v.name)).toEqual(['disk', 'disk-2']);
  });

  it('reports a missing image dir without failing', () => {
    const missing = join(tmpdir(), 'kvmux-no-such-dir-xyz');
    const { vms, problems } = discoverImages([missing]);
    expect(vms).toEqual([]);
    expect(problems[0]).toContain(`${missing}: cannot scan image dir: ENOENT`);
  });

  it('ignores a directory that merely looks like an image', () => {
    const dir = imageDir({});
    mkdirSync(join(dir, 'folder.img'));
    expect(discoverImages([dir]).vms).toEqual([]);
  });

  it('refuses a found disk that names a host file, and says why', () => {
    const dir = imageDir({ 'ok.qcow2': '', 'plain.img': '' });
    execFileSync('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      '/etc/shadow',
      '-F',
      'raw',
      join(dir, 'evil.qcow2'),
      '1M',
    ]);
    const { vms, problems } = discoverImages([dir]);
    expect(vms.map((v) => v.name)).toEqual(['ok', 'plain']);
    expect(problems).toEqual([
      expect.stringMatching(/evil.qcow2: has a backing file \(\/etc\/shadow\): refused/),
    ]);
    // the admin may allow backing files for the images they drop in
    expect(discoverImages([dir], [], { imageDefaults: { allowBackingFiles: true } }).vms).toHaveLength(3);
  });

  it('autostarts found images by imageDefaults.autostart unless their sidecar says otherwise', () => {
    const dir = imageDir({ 'a.img': '', 'b.img': '', 'b.img.yaml': 'autostart: false\n' });
    const auto = (d: object) => discoverImages([dir], [], d).vms.map((v) => [v.name, v.autostart]);
    expect(auto({})).toEqual([
      ['a', false],
      ['b', false],
    ]);
    expect(auto({ imageDefaults: { autostart: true } })).toEqual([
      ['a', true],
      ['b', false],
    ]);
  });
});
