import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { sleep } from '../../src/demo/fifo-keys.js';
import { type Kvmux, startKvmux } from '../../src/demo/kvmux-process.js';
import { buildInitramfs, DONE_MARKER, findVirtioPortShell, linuxGuestQemu } from '../fixtures/linux-guest.js';

/**
 * A VM added while `kvmux run` runs is complete: a disk image copied into a watched image folder
 * (inotify, no upload, no RPC) with a sidecar saying guestChannel + autostart becomes a VM with
 * its display, starts, and the real Linux guest (Debian kernel + busybox initramfs, TCG) logs in
 * over its guest channel. A bad sidecar adds nothing at all.
 */
const PASSWORD = 'hot-add-pw';
let k: Kvmux;
let images: string;

const rpcLine = (id: number, method: string, params?: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

/** Copy a file in the way a person does: written elsewhere, renamed into the folder. */
function dropIn(name: string, data: string | Buffer): void {
  const tmp = join(images, `..${name}.part`);
  writeFileSync(tmp, data);
  renameSync(tmp, join(images, name));
}

async function until<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}\n${k.log().slice(-3000)}`);
    await sleep(250);
  }
}

beforeAll(async () => {
  images = mkdtempSync('/tmp/kvmux-hotadd-images-');
  k = await startKvmux({
    firstDisplay: 170,
    password: PASSWORD,
    vms: [],
    extra: { imageDirs: [images], policy: [{ from: '*', method: 'vm.list', action: 'allow' }] },
  });
}, 90_000);

afterAll(async () => {
  await k?.stop();
  rmSync(images, { recursive: true, force: true });
});

describe('a VM added at run time', () => {
  it('with a bad sidecar is not added at all: no VM, no display, the problem logged', async () => {
    writeFileSync(join(images, 'broken.yaml'), stringify({ nics: [{ network: 'nowhere' }] }));
    dropIn('broken.img', Buffer.alloc(1 << 20));
    await until(
      async () => (k.log().includes('no network named \\"nowhere\\"') ? true : undefined),
      'the problem logged',
    );
    expect((await k.call<Array<{ name: string }>>('vm.list')).map((v) => v.name)).toEqual([]);
    expect(await k.call('display.list')).toEqual([]);
  });

  it('gets its guest channel: the Linux guest logs in over it and lists the VMs', async () => {
    const initrd = await buildInitramfs({
      outDir: join(images, '..initrd'),
      modules: ['virtio_pci', 'virtio_console'],
      init: `
${findVirtioPortShell('org.kvmux.control')}
[ -n "$PORT" ] || { echo "RESP none NO-PORT"; exit 1; }
exec 3<>"$PORT"
rpc() {
  printf '%s\\n' "$2" >&3
  if read -r -t 20 line <&3; then echo "RESP $1 $line"; else echo "RESP $1 TIMEOUT"; fi
}
rpc prelogin '${rpcLine(1, 'vm.list')}'
rpc login '${rpcLine(2, 'auth.login', { password: PASSWORD })}'
rpc vmlist '${rpcLine(3, 'vm.list')}'
`,
    });
    // sidecar first, so the image is never seen without it
    writeFileSync(
      join(images, 'guest.yaml'),
      stringify({
        guestChannel: true,
        autostart: true,
        qemu: linuxGuestQemu(initrd, { memoryMiB: 192, tablet: false }),
      }),
    );
    dropIn('guest.img', Buffer.alloc(1 << 20));
    process.stdout.write('hot-added guest runs under TCG (accel: tcg)\n');
    await until(
      async () =>
        (await k.call<Array<{ name: string; display: string }>>('display.list')).find(
          (d) => d.name === 'guest' && d.display,
        ),
      'a display for the new VM',
    );
    const serialLog = join(k.dir, 'run', 'vm', 'guest', 'serial.log');
    const serial = await until(
      async () => {
        const text = (() => {
          try {
            return readFileSync(serialLog, 'utf8');
          } catch {
            return '';
          }
        })();
        return text.includes(DONE_MARKER) ? text : undefined;
      },
      'the guest script to finish',
      120_000,
    );
    const reply = (name: string) => {
      const line = serial.split('\n').find((l) => l.startsWith(`RESP ${name} `));
      if (!line) throw new Error(`no RESP ${name}:\n${serial}`);
      return JSON.parse(line.slice(`RESP ${name} `.length).trim());
    };
    expect(reply('prelogin')).toMatchObject({ id: 1, error: { code: -32001 } });
    expect(reply('login')).toEqual({ jsonrpc: '2.0', id: 2, result: { ok: true, as: 'guest' } });
    expect(reply('vmlist').result.map((v: { name: string }) => v.name)).toEqual(['guest']);
  }, 180_000);
});
