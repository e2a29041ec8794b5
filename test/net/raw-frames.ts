import { execa } from 'execa';

/**
 * Hand-built Ethernet frames and a raw sender/receiver (python3, AF_PACKET) for bridge filter
 * tests inside network namespaces. Checksums are left zero: bridges and nftables never verify
 * them, and the receiver only looks for each frame's marker.
 */
const hex = (n: number, bytes: number) => n.toString(16).padStart(bytes * 2, '0');
const macHex = (mac: string) => mac.split(':').join('');

export function ipv6Hex(addr: string): string {
  const [head = '', tail] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join('');
}
const ipv4Hex = (addr: string) =>
  addr
    .split('.')
    .map((o) => hex(Number(o), 1))
    .join('');
const text = (s: string) => Buffer.from(s).toString('hex');

export interface Eth {
  src: string;
  dst?: string;
  /** 802.1Q tag (VLAN id) in front of the payload's ethertype. */
  vlan?: number;
}

function eth(e: Eth, type: number, payload: string): string {
  const tag = e.vlan === undefined ? '' : `8100${hex(e.vlan, 2)}`;
  return `${macHex(e.dst ?? 'ff:ff:ff:ff:ff:ff')}${macHex(e.src)}${tag}${hex(type, 2)}${payload}`;
}

function udp(sport: number, dport: number, data: string): string {
  return `${hex(sport, 2)}${hex(dport, 2)}${hex(8 + data.length / 2, 2)}0000${data}`;
}

export function udp4(e: Eth, src: string, dst: string, sport: number, dport: number, marker: string): string {
  const l4 = udp(sport, dport, text(marker));
  const ip = `4500${hex(20 + l4.length / 2, 2)}0000400040110000${ipv4Hex(src)}${ipv4Hex(dst)}`;
  return eth(e, 0x0800, `${ip}${l4}`);
}

function ip6(src: string, dst: string, next: number, hop: number, l4: string): string {
  return `60000000${hex(l4.length / 2, 2)}${hex(next, 1)}${hex(hop, 1)}${ipv6Hex(src)}${ipv6Hex(dst)}${l4}`;
}

export function udp6(e: Eth, src: string, dst: string, sport: number, dport: number, marker: string): string {
  return eth(e, 0x86dd, ip6(src, dst, 17, 64, udp(sport, dport, text(marker))));
}

/** ICMPv6 router advertisement (type 134) to all nodes. */
export function routerAdvert(e: Eth, src: string, marker: string): string {
  const ra = `86000000400000000000000000000000${text(marker)}`;
  return eth({ dst: '33:33:00:00:00:01', ...e }, 0x86dd, ip6(src, 'ff02::1', 58, 255, ra));
}

const SENDER = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for h in sys.argv[2:]:
    s.send(bytes.fromhex(h))
`;

const RECEIVER = `
import socket, sys, time, select
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
markers = [m.encode() for m in sys.argv[3:]]
seen = set()
print('ready', flush=True)
end = time.time() + float(sys.argv[2])
done = False
while time.time() < end and not done:
    r, _, _ = select.select([s], [], [], 0.1)
    if r:
        f = s.recv(65535)
        done = b'KG-end' in f
        for m in markers:
            if m in f:
                seen.add(m.decode())
print(' '.join(sorted(seen)), flush=True)
`;

/**
 * Send `frames` (hex) from `from` while `to` listens; the markers that arrived. `end` is a frame
 * the filter lets through, marked `KG-end` and sent last: its arrival means everything before it
 * was decided (frames on one port keep their order), so the wait is no guess about timing.
 */
export async function deliver(
  from: { netns: string; ifname: string },
  to: { netns: string; ifname: string },
  frames: readonly string[],
  markers: readonly string[],
  end: string,
): Promise<string[]> {
  const rx = execa('ip', ['netns', 'exec', to.netns, 'python3', '-c', RECEIVER, to.ifname, '30', ...markers]);
  await new Promise<void>((resolve, reject) => {
    rx.stdout!.once('data', () => resolve());
    rx.catch(reject);
  });
  await execa('ip', ['netns', 'exec', from.netns, 'python3', '-c', SENDER, from.ifname, ...frames, end]);
  const { stdout } = await rx;
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return last === 'ready' ? [] : last.split(' ').filter(Boolean);
}
