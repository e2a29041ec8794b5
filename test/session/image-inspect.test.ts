import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { externalRefs, inspectImage, judgeImage, vdiProblem } from '../../src/session/image-inspect.js';
import { tempDir } from '../helpers/temp.js';

describe('image inspection (pure verdicts on qemu-img info)', () => {
  const img = '/images/x.qcow2';
  it.each([
    ['a plain qcow2', { format: 'qcow2', 'format-specific': { type: 'qcow2', data: {} } }, null],
    [
      'a backing file',
      { 'backing-filename': '/etc/shadow', 'full-backing-filename': '/etc/shadow' },
      /backing file \(\/etc\/shadow\)/,
    ],
    [
      'a data file',
      { 'format-specific': { type: 'qcow2', data: { 'data-file': '/dev/sda' } } },
      /names another file \(\/dev\/sda\)/,
    ],
    [
      'a VMDK listing itself',
      { 'format-specific': { type: 'vmdk', data: { extents: [{ filename: img }] } } },
      null,
    ],
    [
      'a VMDK listing itself by a relative name',
      { 'format-specific': { type: 'vmdk', data: { extents: [{ filename: 'x.qcow2' }] } } },
      null,
    ],
    [
      'a VMDK extent elsewhere',
      { 'format-specific': { type: 'vmdk', data: { extents: [{ filename: 'x-flat.vmdk' }] } } },
      /x-flat.vmdk/,
    ],
    [
      'a VMDK with a parent',
      { 'format-specific': { type: 'vmdk', data: { 'parent-cid': 7, extents: [] } } },
      /parent CID 7/,
    ],
    [
      'a VMDK without parent',
      { 'format-specific': { type: 'vmdk', data: { 'parent-cid': 0xffffffff, extents: [] } } },
      null,
    ],
    ['garbage', 'not an object', null],
  ] as const)('%s', (_l, info, want) => {
    const got = judgeImage(info, img);
    if (want === null) expect(got).toBeNull();
    else expect(got).toMatch(want);
  });

  it('allows backing files only when the admin says so, never data files', () => {
    expect(judgeImage({ 'backing-filename': 'base.img' }, img, { allowBackingFiles: true })).toBeNull();
    expect(
      judgeImage({ 'format-specific': { data: { 'data-file': 'd' } } }, img, { allowBackingFiles: true }),
    ).toMatch(/names another file/);
    expect(externalRefs({ 'backing-filename': 'a', 'full-backing-filename': 'a' }, img).backing).toEqual([
      'a',
    ]);
  });

  it.each([
    [1, null],
    [2, null],
    [3, /type 3/],
    [4, /differencing/],
  ])('VDI image type %i', (type, want) => {
    const h = Buffer.alloc(0x200);
    h.writeUInt32LE(0xbeda107f, 0x40);
    h.writeUInt32LE(type, 0x4c);
    const got = vdiProblem(h);
    if (want === null) expect(got).toBeNull();
    else expect(got).toMatch(want);
    expect(vdiProblem(Buffer.alloc(0x200))).toMatch(/not a VDI/);
  });
});

describe('image inspection against qemu-img', () => {
  it('inspects with the format QEMU will be given: a qcow2 header in a .img is raw, harmless', async () => {
    const t = tempDir('kvmux-inspect-');
    const q = join(t, 'evil.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '/etc/shadow', '-F', 'raw', q, '1M']);
    expect(await inspectImage(q)).toMatch(/backing file \(\/etc\/shadow\)/);
    // the same bytes named .img are opened format=raw: QEMU never reads the header's backing file
    expect(await inspectImage(q, { asName: 'evil.img' })).toBeNull();
    const vdi = join(t, 'ok.vdi');
    execFileSync('qemu-img', ['create', '-q', '-f', 'vdi', vdi, '1M']);
    expect(await inspectImage(vdi)).toBeNull();
    writeFileSync(join(t, 'junk.qcow2'), 'junk');
    expect(await inspectImage(join(t, 'junk.qcow2'))).toMatch(/not a usable qcow2 image/);
  });
});
