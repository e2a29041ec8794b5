import { describe, expect, it } from 'vitest';
import { vmSchema } from '../../src/config/schema.js';
import type { LaunchContext } from '../../src/session/backends/backend.js';
import {
  diskFormat,
  guestChannelArgs,
  qemuArgv,
  resolveAccel,
} from '../../src/session/backends/qemu-argv.js';

const ctx: LaunchContext = {
  display: ':21',
  vmDir: '/run/kvmux/vm/alpha',
  width: 1024,
  height: 768,
  taps: [],
};

function argv(vm: Record<string, unknown>, over: Partial<LaunchContext> = {}, accel: 'kvm' | 'tcg' = 'kvm') {
  const parsed = vmSchema.parse({ name: 'alpha', backend: 'qemu', ...vm });
  return qemuArgv(parsed, parsed.qemu!, { ...ctx, ...over }, { accel });
}

/** The value following each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe('qemu argv', () => {
  const base = argv({ qemu: { disk: '/srv/alpha.img' } });

  it.each([
    ['-monitor', ['none']],
    ['-parallel', ['none']],
    ['-serial', ['none', 'file:/run/kvmux/vm/alpha/serial.log']],
    ['-qmp', ['unix:/run/kvmux/vm/alpha/qmp.sock,server=on,wait=off']],
    ['-display', ['gtk,show-menubar=off,zoom-to-fit=on,window-close=off']],
    ['-m', ['512']],
    ['-smp', ['1']],
    ['-accel', ['kvm']],
    ['-drive', ['file=/srv/alpha.img,format=raw,if=ide,index=0']],
    ['-nic', ['none']],
    ['-device', ['virtio-balloon-pci,id=balloon0', 'usb-tablet']],
  ])('defaults: %s %j', (flag, expected) => {
    expect(values(base, flag)).toEqual(expected);
  });

  it('never gives the monitor, a serial port or the parallel port a VC', () => {
    expect(base.some((a) => /^(vc|mon:)/.test(a))).toBe(false);
    expect(base.indexOf('-monitor')).toBeLessThan(base.indexOf('-qmp'));
  });

  it.each([
    [{ qemu: { disk: '/a.img', display: 'sdl' } }, '-display', ['sdl,full-screen=on,window-close=off']],
    [{ qemu: { disk: '/a.img', memoryMiB: 2048, cpus: 4 } }, '-m', ['2048']],
    [{ qemu: { disk: '/a.img', cpus: 4 } }, '-smp', ['4']],
    // boots with the ceiling, then balloons down to memoryMiB: growth up to it is live
    [{ qemu: { disk: '/a.img', memoryMiB: 256, maxMemoryMiB: 1024 } }, '-m', ['1024']],
    [{ qemu: { disk: '/w/win,1.qcow2' } }, '-drive', ['file=/w/win,,1.qcow2,format=qcow2,if=ide,index=0']],
    [{ qemu: { kernel: '/k', initrd: '/i', append: 'console=ttyS1' } }, '-kernel', ['/k']],
    [{ qemu: { kernel: '/k', initrd: '/i', append: 'console=ttyS1' } }, '-append', ['console=ttyS1']],
    [{ qemu: { disk: '/a.img', serialLog: false } }, '-serial', ['none']],
    [{ qemu: { disk: '/a.img', tablet: false } }, '-device', ['virtio-balloon-pci,id=balloon0']],
  ])('%j → %s %j', (vm, flag, expected) => {
    expect(values(argv(vm), flag)).toEqual(expected);
  });

  it('a memory change that could not apply live is used at the next start', () => {
    expect(values(argv({ qemu: { disk: '/a.img' } }, { memoryMiB: 768 }), '-m')).toEqual(['768']);
  });

  it('wires the guest channel as a virtio-serial port on runDir/vm/NAME/control.sock', () => {
    const a = argv({ qemu: { disk: '/a.img' }, guestChannel: true });
    expect(values(a, '-chardev')).toEqual([
      'socket,id=kvmuxctl,path=/run/kvmux/vm/alpha/control.sock,server=on,wait=off',
    ]);
    expect(values(a, '-device')).toEqual([
      'virtio-balloon-pci,id=balloon0',
      'usb-tablet',
      'virtio-serial',
      'virtserialport,chardev=kvmuxctl,name=org.kvmux.control',
    ]);
  });

  it('one tap netdev and virtio-net device per NIC, with its MAC', () => {
    const a = argv(
      { qemu: { disk: '/a.img' } },
      {
        taps: [
          { ifname: 'kvt-alpha0', mac: '52:54:00:00:00:01' },
          { ifname: 'kvt-alpha1', mac: '52:54:00:00:00:02' },
        ],
      },
    );
    expect(values(a, '-nic')).toEqual([]);
    expect(values(a, '-netdev')).toEqual([
      'tap,id=n0,ifname=kvt-alpha0,script=no,downscript=no',
      'tap,id=n1,ifname=kvt-alpha1,script=no,downscript=no',
    ]);
    expect(values(a, '-device')).toContain('virtio-net-pci,netdev=n1,mac=52:54:00:00:00:02');
  });

  it('appends extraArgs last', () => {
    const a = argv({ qemu: { disk: '/a.img', extraArgs: ['-vga', 'virtio'] } });
    expect(a.slice(-2)).toEqual(['-vga', 'virtio']);
  });

  it.each([
    ['auto', true, 'kvm', false],
    ['auto', false, 'tcg', true],
    ['kvm', false, 'kvm', false],
    ['tcg', true, 'tcg', false],
  ] as const)('accel %s with kvm usable=%s → %s (warning %s)', (req, usable, accel, warns) => {
    const r = resolveAccel(req, usable);
    expect(r.accel).toBe(accel);
    expect(r.warning !== undefined).toBe(warns);
  });

  it.each([
    ['/x/a.qcow2', 'qcow2'],
    ['/x/a.IMG', 'raw'],
    ['/x/a.vdi', 'vdi'],
    ['/x/a.raw', 'raw'],
    ['/x/a', 'raw'],
  ])('disk %s has format %s', (path, fmt) => {
    expect(diskFormat(path)).toBe(fmt);
  });

  it('the guest channel socket path is one option value, even with a comma in it', () => {
    const args = guestChannelArgs('/run/kvmux,x/vm/alpha/guest.sock');
    const chardev = args[args.indexOf('-chardev') + 1];
    // a bare comma would end the path there, and QEMU would read the rest as more options
    expect(chardev).toBe('socket,id=kvmuxctl,path=/run/kvmux,,x/vm/alpha/guest.sock,server=on,wait=off');
  });
});
