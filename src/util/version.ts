import { readFileSync } from 'node:fs';

/** kvmux's version from its package.json (dist/src/util → the package root). */
export function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'kvmux' && pkg.version) return pkg.version;
    } catch {
      // try the next layout (built vs run from source)
    }
  }
  return 'unknown';
}
