import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { vmSchema } from '../../../src/config/schema.js';
import { bashArray, importSubhost, parseSubhostConfig } from '../../../src/session/subhost-import.js';
import { tempDir } from '../../helpers/temp.js';

const SEED = `# subhost config (bash include)
DISKS=( vda:1:/disks/disk1.raw vdb:1:/disks/disk2.raw )
BRIDGES=( homenet:06:a7:dd:b4:02:f2
  dmz )
`;

describe('the seed subhost config', () => {
  it('reads DISKS and BRIDGES as the seed defines them (first ":" ends the bridge name)', () => {
    expect(parseSubhostConfig(SEED, 'x/config')).toEqual({
      disks: [
        { dev: 'vda', part: 1, image: '/disks/disk1.raw' },
        { dev: 'vdb', part: 1, image: '/disks/disk2.raw' },
      ],
      bridges: [{ bridge: 'homenet', mac: '06:a7:dd:b4:02:f2' }, { bridge: 'dmz' }],
    });
  });

  it('quoted words and comments; unset arrays are null', () => {
    expect(bashArray(`DISKS=( "a:0:/x" # root\n 'b:2:/y' )`, 'DISKS')).toEqual(['a:0:/x', 'b:2:/y']);
    expect(bashArray('FOO=1', 'DISKS')).toBeNull();
  });

  it.each([
    ['DISKS=( vda:/x )', /DISKS entry "vda:\/x" is not dev:part:image/],
    ['BRIDGES=( lan:zz:zz )', /BRIDGES entry "lan:zz:zz" has no valid MAC/],
  ])('names the bad entry: %s', (text, err) => {
    expect(() => parseSubhostConfig(text, 'x/config')).toThrow(err);
  });

  it('becomes a valid subhost VM entry', () => {
    const vm = vmSchema.parse(importSubhost('/opt/sub/My_Sub', SEED, false));
    expect(vm).toMatchObject({
      name: 'my-sub',
      backend: 'subhost',
      nics: [{ network: 'homenet', mac: '06:a7:dd:b4:02:f2' }, { network: 'dmz' }],
      subhost: { disks: [{ dev: 'vda' }, { dev: 'vdb' }], importedFrom: '/opt/sub/My_Sub/config' },
    });
    expect(() => importSubhost('/opt/sub/x', 'BRIDGES=( lan )', false)).toThrow(/neither .* nor DISKS/);
  });

  it('kvmux import-subhost prints it, with --base making DIR/root the upper layer', async () => {
    const dir = join(tempDir('kvmux-import-'), 'future');
    mkdirSync(join(dir, 'root'), { recursive: true });
    writeFileSync(join(dir, 'config'), 'BRIDGES=( lan:06:00:00:00:00:01 )\n');
    const cli = join(import.meta.dirname, '../../../src/cli/main.ts');
    const tsx = join(import.meta.dirname, '../../../node_modules/.bin/tsx');
    const text = (await execa(tsx, [cli, 'import-subhost', dir, '--base', '/srv/base'])).stdout;
    expect(parse(text).vms[0]).toMatchObject({
      name: 'future',
      backend: 'subhost',
      subhost: { root: '/srv/base', upper: join(dir, 'root'), overlay: true },
      nics: [{ network: 'lan', mac: '06:00:00:00:00:01' }],
    });
  }, 60_000);
});
