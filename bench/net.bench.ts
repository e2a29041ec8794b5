import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { renderRuleset } from '../src/net/firewall.js';
import { NetworkManager } from '../src/net/manager.js';
import { summarize } from './stats.js';

/**
 * Throughput through an anonymous kvmux bridge between two namespace members (veth ports), with
 * no kvmux table, with the MAC-only anti-spoofing rules, and with MAC + pinned IPs. One TCP stream
 * (a tiny node blaster); modes interleave round by round so machine noise hits all of them alike.
 * Guests under TCG would be far slower than the filter, hiding its cost: namespaces are the strict case.
 */
const BYTES = 128 * 1024 * 1024;
const ROUNDS = 25;

const BLAST = `
import net from 'node:net';
const [mode, host, total] = process.argv.slice(2);
if (mode === 'server') {
  net.createServer((s) => {
    let got = 0;
    s.on('data', (d) => { got += d.length; if (got >= Number(total)) s.end('done'); });
  }).listen(5001, host, () => console.log('listening'));
} else {
  const buf = Buffer.alloc(1 << 16, 7);
  const s = net.connect(5001, host);
  let sent = 0; const t0 = process.hrtime.bigint();
  const pump = () => { while (sent < Number(total)) { sent += buf.length; if (!s.write(buf)) return s.once('drain', pump); } };
  s.on('connect', pump);
  s.on('data', () => { const ns = Number(process.hrtime.bigint() - t0); console.log(JSON.stringify({ mbps: (sent * 8) / ns * 1000 })); s.destroy(); });
}
`;

type Mode = 'noTable' | 'macOnly' | 'macAndIps';

export async function run(): Promise<Record<string, unknown>> {
  const tag = randomBytes(3).toString('hex');
  const [host, a, b] = [`kvmux-t-bh-${tag}`, `kvmux-t-ba-${tag}`, `kvmux-t-bb-${tag}`];
  const dir = mkdtempSync(join(tmpdir(), 'kvmux-net-bench-'));
  const script = join(dir, 'blast.mjs');
  writeFileSync(script, BLAST);
  for (const ns of [host, a, b]) await execa('ip', ['netns', 'add', ns]);
  let server: ReturnType<typeof execa> | undefined;
  try {
    const mgr = new NetworkManager({ netns: host });
    await mgr.ensureNetworks([{ name: 'bench', antiSpoof: true }]);
    const pa = await mgr.attachNamespace('bench', a, 'eth0', { ips: ['10.77.9.1'] });
    const pb = await mgr.attachNamespace('bench', b, 'eth0', { ips: ['10.77.9.2'] });
    await execa('ip', ['-n', a, 'addr', 'add', '10.77.9.1/24', 'dev', 'eth0']);
    await execa('ip', ['-n', b, 'addr', 'add', '10.77.9.2/24', 'dev', 'eth0']);
    server = execa('ip', [
      'netns',
      'exec',
      b,
      process.execPath,
      script,
      'server',
      '10.77.9.2',
      String(BYTES),
    ]);
    await new Promise<void>((resolve) => server?.stdout?.once('data', () => resolve()));
    const ports = [pa, pb].map((p, i) => ({ ifname: p.ifname, mac: p.mac, ips: [`10.77.9.${i + 1}`] }));
    const rulesets: Record<Mode, string | null> = {
      noTable: null,
      macOnly: renderRuleset({ ports: ports.map((p) => ({ ...p, ips: [] })), silentPorts: [] }),
      macAndIps: renderRuleset({ ports, silentPorts: ports.map((p) => p.ifname) }),
    };
    const samples: Record<Mode, number[]> = { noTable: [], macOnly: [], macAndIps: [] };
    for (let r = 0; r < ROUNDS; r++) {
      // Rotate the order each round so no mode always runs first after a quiet (or busy) gap.
      const modes = Object.keys(rulesets) as Mode[];
      for (const mode of [...modes.slice(r % 3), ...modes.slice(0, r % 3)]) {
        const rs = rulesets[mode];
        await mgr.host.nft('bench', rs ?? 'table bridge kvmux {}\ndelete table bridge kvmux\n');
        const out = await execa('ip', [
          'netns',
          'exec',
          a,
          process.execPath,
          script,
          'client',
          '10.77.9.2',
          String(BYTES),
        ]);
        samples[mode].push((JSON.parse(out.stdout) as { mbps: number }).mbps);
      }
    }
    // Paired per-round ratios cancel slow drift of the shared machine better than ratios of medians.
    const top = (m: Mode) => Math.max(...samples[m]);
    const best = (m: Mode) => Number((top(m) / top('noTable')).toFixed(3));
    const ratio = (m: Mode) => summarize(samples[m].map((v, i) => v / (samples.noTable[i] ?? v))).p50;
    return {
      what: `one TCP stream, ${BYTES >> 20} MiB per sample, veth→bridge→veth between namespaces, ${ROUNDS} interleaved rounds`,
      mbitPerSecond: {
        noTable: summarize(samples.noTable, 0),
        macOnly: summarize(samples.macOnly, 0),
        macAndIps: summarize(samples.macAndIps, 0),
      },
      ratioMacOnly: ratio('macOnly'),
      ratioMacAndIps: ratio('macAndIps'),
      // Best-of-N: the quietest sample of each mode; less sensitive to other load on the machine.
      bestRatioMacOnly: best('macOnly'),
      bestRatioMacAndIps: best('macAndIps'),
      loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
      goal: 'ratio ≥ 0.95 (filter costs < 5%)',
    };
  } finally {
    server?.kill('SIGTERM');
    await server?.catch(() => undefined);
    for (const ns of [a, b, host]) await execa('ip', ['netns', 'del', ns], { reject: false });
    rmSync(dir, { recursive: true, force: true });
  }
}
