import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/config.js';
import { passwdPath, writePasswordFile } from '../../src/control/auth/auth.js';
import { type ControlPlane, startControlPlane } from '../../src/control/plane.js';
import { guestChannelArgs } from '../../src/session/backends/qemu-argv.js';
import { controlSocketOf } from '../../src/session/vm-paths.js';
import {
  bootGuest,
  buildInitramfs,
  findKernel,
  findVirtioPortShell,
  type Guest,
  type GuestFile,
} from '../fixtures/linux-guest.js';
import { PASSWORD, tempDir, testVmList } from './helpers.js';

/**
 * The client that `kvmux admin --remote` uses (src/control/rpc/client.ts), running on node INSIDE a real
 * Linux guest over /dev/vportNpM: log in, list VMs, upload an image with sendFile, and exit cleanly
 * (a blocking device read would keep node alive forever).
 */
const VM = 'node-guest';
const ROOT = join(import.meta.dirname, '../..');
const CLIENT_SOURCES = ['src/control/rpc/client.ts', 'src/control/transfer/transfer-client.ts'];

/** node and the shared objects it needs, at their own paths, executable. */
function nodeFiles(): Record<string, GuestFile> {
  const files: Record<string, GuestFile> = {
    '/opt/node': { data: readFileSync(process.execPath), mode: 0o755 },
  };
  for (const line of execFileSync('ldd', [process.execPath], { encoding: 'utf8' }).split('\n')) {
    const lib = /=> (\/\S+)|^\s*(\/\S+)/.exec(line);
    const path = lib?.[1] ?? lib?.[2];
    if (path) files[path] = { data: readFileSync(path), mode: 0o755 };
  }
  return files;
}

/** The client modules compiled to JS with the project's TypeScript. */
function clientFiles(outDir: string): Record<string, GuestFile> {
  const tsc = join(ROOT, 'node_modules/.bin/tsc');
  const flags = [
    '--module',
    'nodenext',
    '--moduleResolution',
    'nodenext',
    '--target',
    'es2022',
    '--skipLibCheck',
  ];
  execFileSync(tsc, [
    ...flags,
    '--rootDir',
    ROOT,
    '--outDir',
    outDir,
    ...CLIENT_SOURCES.map((f) => join(ROOT, f)),
  ]);
  const files: Record<string, GuestFile> = { '/app/package.json': '{"type":"module"}' };
  const walk = (dir: string, rel: string) => {
    for (const e of execFileSync('ls', [dir], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      const p = join(dir, e);
      if (e.endsWith('.js')) files[`/app/${rel}${e}`] = readFileSync(p);
      else if (!e.includes('.')) walk(p, `${rel}${e}/`);
    }
  };
  walk(outDir, '');
  return files;
}

const ADMIN_SCRIPT = `
import { openDevice } from './src/control/rpc/client.js';
import { receiveFile, sendFile } from './src/control/transfer/transfer-client.js';
const [port, password, image] = process.argv.slice(2);
const c = openDevice(port);
try { await c.call('vm.list'); } catch (e) { console.log('PRE ' + JSON.stringify({ code: e.code })); }
console.log('LOGIN ' + JSON.stringify(await c.call('auth.login', { password })));
console.log('LIST ' + JSON.stringify(await c.call('vm.list')));
const t0 = Date.now();
const done = await sendFile(c, { prefix: 'image.upload', file: image, begin: { name: 'made-in-guest.raw' } });
console.log('UPLOAD ' + JSON.stringify({ ...done, ms: Date.now() - t0 }));
const b64 = await sendFile(c, { prefix: 'image.upload', file: image, binary: false, begin: { name: 'base64.raw' } });
console.log('BASE64 ' + JSON.stringify(b64));
const back = await receiveFile(c, { name: 'made-in-guest.raw', out: '/tmp/back.raw' });
console.log('DOWNLOAD ' + JSON.stringify(back));
try {
  await sendFile(c, { prefix: 'image.upload', file: '/app/evil.qcow2', begin: { name: 'evil.qcow2' } });
  console.log('EVIL ' + JSON.stringify({ accepted: true }));
} catch (e) { console.log('EVIL ' + JSON.stringify({ code: e.code, message: e.message })); }
c.close();
`;

describe('the node control client inside a real Linux guest', () => {
  let t: ReturnType<typeof tempDir>;
  let plane: ControlPlane;
  let guest: Guest | undefined;
  let serial = '';

  beforeAll(async () => {
    t = tempDir('kvmux-guest-node-');
    const runDir = join(t.dir, 'run');
    const stateDir = join(t.dir, 'state');
    mkdirSync(join(t.dir, 'images'));
    await writePasswordFile(passwdPath(stateDir), PASSWORD, { N: 1024, r: 8, p: 1 });
    const config = parseConfigText(`
runDir: ${runDir}
stateDir: ${stateDir}
imageDirs: [${t.dir}/images]
vms:
  - { name: ${VM}, backend: qemu, guestChannel: true, qemu: { kernel: ${findKernel().path}, accel: tcg } }
policy:
  - { from: ${VM}, method: "image.upload.*", action: allow }
  - { from: ${VM}, method: "image.download.*", action: allow }
  - { from: "*", method: vm.list, action: allow }
`);
    mkdirSync(dirname(controlSocketOf(runDir, VM)), { recursive: true });
    plane = await startControlPlane(config, { methods: [testVmList] });
    // a disk whose header names /etc/shadow as its backing file (made on the host, sent by the guest)
    const evil = join(t.dir, 'evil.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '/etc/shadow', '-F', 'raw', evil, '1M']);
    const initrd = await buildInitramfs({
      outDir: join(t.dir, 'initrd'),
      modules: ['virtio_pci', 'virtio_console'],
      files: {
        ...nodeFiles(),
        ...clientFiles(join(t.dir, 'js')),
        '/app/admin.mjs': ADMIN_SCRIPT,
        '/app/evil.qcow2': { data: readFileSync(evil), mode: 0o644 },
      },
      init: `
${findVirtioPortShell('org.kvmux.control')}
dd if=/dev/urandom of=/tmp/img.raw bs=1024 count=3000 2>/dev/null
echo "SHA $(sha256sum /tmp/img.raw | cut -d' ' -f1)"
cd /app && /opt/node admin.mjs "$PORT" '${PASSWORD}' /tmp/img.raw
echo "NODE-EXIT $?"
`,
    });
    guest = await bootGuest({
      initrd,
      memoryMiB: 768,
      serialLog: join(t.dir, 'serial.log'),
      qemuArgs: guestChannelArgs(controlSocketOf(runDir, VM)),
    });
    serial = await guest.waitFor('KVMUX-GUEST-DONE', 240_000);
  }, 300_000);

  afterAll(async () => {
    await guest?.stop();
    await plane?.close();
    if (guest) expect(existsSync(`/proc/${guest.pid}`)).toBe(false);
    t.cleanup();
  });

  const line = (tag: string) => {
    const l = serial.split('\n').find((x) => x.startsWith(`${tag} `));
    if (!l) throw new Error(`no ${tag} line in serial log:\n${serial}`);
    return l.slice(tag.length + 1).trim();
  };

  it('is refused before login, then logs in and lists the VMs', () => {
    expect(JSON.parse(line('PRE'))).toEqual({ code: -32001 });
    expect(JSON.parse(line('LOGIN'))).toEqual({ ok: true, as: VM });
    expect(JSON.parse(line('LIST')).map((v: { name: string }) => v.name)).toEqual(['alpha', 'beta']);
  });

  it('uploads an image from inside the guest, byte for byte', () => {
    const up = JSON.parse(line('UPLOAD'));
    const path = join(t.dir, 'images', 'made-in-guest.raw');
    expect(up).toMatchObject({ path, size: 3000 * 1024, sha256: line('SHA') });
    expect(createHash('sha256').update(readFileSync(path)).digest('hex')).toBe(line('SHA'));
  });

  it('uploads as base64 too, and downloads it back with the sha256 checked in the guest', () => {
    expect(JSON.parse(line('BASE64'))).toMatchObject({ size: 3000 * 1024, sha256: line('SHA') });
    expect(JSON.parse(line('DOWNLOAD'))).toEqual({
      path: '/tmp/back.raw',
      size: 3000 * 1024,
      sha256: line('SHA'),
    });
  });

  it('is refused a qcow2 whose backing file is /etc/shadow, and nothing of it is left', () => {
    expect(JSON.parse(line('EVIL'))).toEqual({
      code: -32602,
      message: expect.stringMatching(/backing file \(\/etc\/shadow\).*refused/),
    });
    expect(readdirSync(join(t.dir, 'images')).sort()).toEqual(['base64.raw', 'made-in-guest.raw']);
  });

  it('lets node exit on its own once the client is closed', () => {
    expect(line('NODE-EXIT')).toBe('0');
  });
});
