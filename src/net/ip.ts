import { NetError } from '../util/errors.js';
import { execa } from '../util/lazy-execa.js';

/** One row of `ip -j -d link show`, reduced to what kvmux reads. */
export interface Link {
  readonly ifname: string;
  readonly address: string;
  readonly flags: readonly string[];
  readonly master?: string;
  readonly ifalias?: string;
  readonly kind?: string;
  readonly tapType?: string;
}

/** One address of `ip -j addr show`. */
export interface Addr {
  readonly family: string;
  readonly local: string;
  readonly prefixlen: number;
  readonly scope: string;
}

interface RawLink {
  ifname: string;
  address?: string;
  flags?: string[];
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: { type?: string } };
}

interface RawAddr {
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope: string }>;
}

/**
 * The host side of networking: iproute2, nft and sysctl, run in `netns` when given (tests create
 * their own namespaces) or in the caller's namespace (production: the root namespace).
 */
export class NetHost {
  constructor(readonly netns?: string) {}

  /** Run a command (inside the namespace when set); errors name `subject` and quote stderr. */
  async run(subject: string, cmd: string, args: readonly string[], input?: string): Promise<string> {
    const argv = this.netns ? ['netns', 'exec', this.netns, cmd, ...args] : [...args];
    const file = this.netns ? 'ip' : cmd;
    const res = await execa(file, argv, { reject: false, ...(input === undefined ? {} : { input }) });
    if (res.exitCode !== 0) {
      const why = String(res.stderr || res.stdout).trim() || `exit ${res.exitCode}`;
      throw new NetError(subject, `${cmd} ${args.join(' ')} failed: ${why}`);
    }
    return String(res.stdout);
  }

  ip(subject: string, ...args: string[]): Promise<string> {
    return this.run(subject, 'ip', args);
  }

  async links(): Promise<Link[]> {
    const raw = JSON.parse((await this.ip('links', '-j', '-d', 'link', 'show')) || '[]') as RawLink[];
    return raw.map(toLink);
  }

  async link(ifname: string): Promise<Link | undefined> {
    return (await this.links()).find((l) => l.ifname === ifname);
  }

  async addrs(ifname: string): Promise<Addr[]> {
    const out = await this.ip(ifname, '-j', 'addr', 'show', 'dev', ifname);
    const raw = JSON.parse(out || '[]') as RawAddr[];
    return raw.flatMap((r) => r.addr_info ?? []).map((a) => ({ ...a }));
  }

  /** `key` in slash form (net/ipv6/conf/IF/disable_ipv6) so interface names with dots work. */
  async sysctlSet(subject: string, key: string, value: string): Promise<void> {
    await this.run(subject, 'sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  async sysctlGet(subject: string, key: string): Promise<string | undefined> {
    try {
      return (await this.run(subject, 'sysctl', ['-n', key])).trim();
    } catch {
      return undefined;
    }
  }

  /** Apply an nft script in one transaction (`nft -f -`). */
  async nft(subject: string, script: string): Promise<void> {
    await this.run(subject, 'nft', ['-f', '-'], script);
  }

  async nftJson(subject: string, ...args: string[]): Promise<unknown> {
    return JSON.parse(await this.run(subject, 'nft', ['-j', ...args]));
  }
}

function toLink(r: RawLink): Link {
  const kind = r.linkinfo?.info_kind;
  const tapType = r.linkinfo?.info_data?.type;
  return {
    ifname: r.ifname,
    address: r.address ?? '',
    flags: r.flags ?? [],
    ...(r.master === undefined ? {} : { master: r.master }),
    ...(r.ifalias === undefined ? {} : { ifalias: r.ifalias }),
    ...(kind === undefined ? {} : { kind }),
    ...(tapType === undefined ? {} : { tapType }),
  };
}
