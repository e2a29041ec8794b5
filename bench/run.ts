import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `npm run bench`: runs every bench/*.bench.ts module (each exports `run(): Promise<object>`) and
 * writes one JSON file. Compare figures as ratios within one run: these machines are noisy.
 */
interface BenchModule {
  run(): Promise<Record<string, unknown>>;
}

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const out = process.env['KVMUX_BENCH_OUT'] ?? join(process.cwd(), 'bench-results', 'bench.json');
const results: Record<string, unknown> = {
  startedAt: new Date().toISOString(),
  node: process.version,
};

for (const file of readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .sort()) {
  const name = file.replace(/\.bench\.js$/, '');
  if (only.length > 0 && !only.includes(name)) continue;
  process.stderr.write(`bench: ${name} ...\n`);
  const t0 = performance.now();
  try {
    const mod = (await import(join(here, file))) as BenchModule;
    results[name] = await mod.run();
  } catch (err) {
    results[name] = { error: err instanceof Error ? err.message : String(err) };
  }
  process.stderr.write(`bench: ${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
results['finishedAt'] = new Date().toISOString();
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
process.stderr.write(`bench: wrote ${out}\n`);
