import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const child = fileURLToPath(new URL('./supervise-child.ts', import.meta.url));

/**
 * Start the stand-in kvmux (supervise-child.ts) on `config` and `display`; resolves once its VMs
 * run, with their pids. Tests then SIGKILL it, as a crash would.
 */
export async function startStandIn(
  dir: string,
  config: unknown,
  display: string,
): Promise<{ proc: ChildProcess; pids: Record<string, number> }> {
  const cfgFile = join(dir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(config));
  const proc = spawn(process.execPath, ['--import', 'tsx', child, cfgFile, display], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve) => proc.stdout!.once('data', (d) => resolve(String(d))));
  return { proc, pids: (JSON.parse(line) as { pids: Record<string, number> }).pids };
}
