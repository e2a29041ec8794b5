import { createHash } from 'node:crypto';

/** Linux IFNAMSIZ is 16 including the NUL. */
export const IFNAME_MAX = 15;

/** Prefixes mark interfaces kvmux owns, so reconcile never touches anything else. */
export const PREFIX = { bridge: 'kvbr-', tap: 'kvt-', veth: 'kvv-' } as const;

/** Interface alias (`ip link set ... alias`) recording who an interface belongs to; survives restarts. */
export const ALIAS_TAG = 'kvmux';
/** The longest interface alias the kernel keeps (IFALIASZ, less its NUL): `ip` refuses more. */
export const ALIAS_MAX_BYTES = 255;
/** The longest name of a subhost's network namespace (its prefix and VM name, cut). */
export const NETNS_NAME_MAX = 40;

function hex(text: string, chars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, chars);
}

/** `<prefix><body><suffix>` when it fits, else the body is cut and a short hash keeps it unique. */
function fitName(prefix: string, body: string, suffix = ''): string {
  const full = `${prefix}${body}${suffix}`;
  if (full.length <= IFNAME_MAX) return full;
  const hash = hex(body, 4);
  const room = IFNAME_MAX - prefix.length - suffix.length - hash.length;
  return `${prefix}${body.slice(0, Math.max(0, room))}${hash}${suffix}`;
}

/** Bridge of a network: `kvbr-lan`, or `kvbr-verylo1a2b` when the name is too long. */
export function bridgeName(network: string): string {
  return fitName(PREFIX.bridge, network);
}

/** Tap of a VM NIC: `kvt-alpha-0`, or `kvt-longn1a2b-0` when too long. */
export function tapName(vm: string, index: number): string {
  return fitName(PREFIX.tap, vm, `-${index}`);
}

/** Host end of a namespace veth; the hash covers namespace and interface (both may be long). */
export function vethName(nsName: string, ifname: string): string {
  return `${PREFIX.veth}${hex(`${nsName}/${ifname}`, IFNAME_MAX - PREFIX.veth.length)}`;
}

function macFromBytes(bytes: Buffer): string {
  return [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Locally administered (bit 1 set), unicast (bit 0 clear), first byte < 0x80 (never a tap's 0xfe). */
export function macFromSeed(seed: string): string {
  const bytes = createHash('sha256').update(seed).digest();
  bytes[0] = ((bytes[0] ?? 0) & 0x7c) | 0x02;
  return macFromBytes(bytes);
}

/** The guest's MAC for NIC `index` of `vm`: stable across restarts, unless the config gives one. */
export function guestMac(vm: string, index: number, given?: string): string {
  return given ? given.toLowerCase() : macFromSeed(`kvmux/vm/${vm}/nic/${index}`);
}

/**
 * Host-side MAC of a tap: the guest MAC with first byte 0xfe, as libvirt does. A bridge takes the
 * lowest port MAC unless set; 0xfe keeps taps from lending theirs, and the tap never equals the guest.
 */
export function tapHostMac(guest: string): string {
  return `fe${guest.slice(2)}`;
}

/** Fixed bridge MAC, so the bridge's identity does not change as ports come and go. */
export function bridgeMac(network: string): string {
  return macFromSeed(`kvmux/net/${network}`);
}

export function isMac(text: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text);
}

/** What an interface's alias says about its owner: kind plus key=value fields. */
export interface Ownership {
  readonly kind: 'bridge' | 'tap' | 'ns';
  readonly fields: Readonly<Record<string, string>>;
}

/** `kvmux tap vm=alpha nic=0 net=lan mac=...`: values are names/MACs, never contain spaces. */
export function encodeAlias(owner: Ownership): string {
  const fields = Object.entries(owner.fields).map(([k, v]) => `${k}=${v}`);
  return [ALIAS_TAG, owner.kind, ...fields].join(' ');
}

export function decodeAlias(alias: string | undefined): Ownership | undefined {
  const [tag, kind, ...rest] = (alias ?? '').split(' ');
  if (tag !== ALIAS_TAG || (kind !== 'bridge' && kind !== 'tap' && kind !== 'ns')) return undefined;
  const fields: Record<string, string> = {};
  for (const kv of rest) {
    const eq = kv.indexOf('=');
    if (eq > 0) fields[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { kind, fields };
}
