import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The kvmux checkout or install this code runs from (holds package.json, dist/, systemd/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json of kvmux not found above the running code');
    dir = up;
  }
  return dir;
}

interface Pkg {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/**
 * The folders of kvmux's runtime dependencies (dependencies + optional ones that are installed),
 * resolved as Node does: the nearest node_modules up from the requiring package. Dev dependencies
 * (vitest, tsc, biome) stay out of the image.
 */
export function runtimeDependencyDirs(root: string): string[] {
  const found = new Set<string>();
  const visit = (pkgDir: string) => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Pkg;
    const names = [
      ...Object.keys(pkg.dependencies ?? {}).map((n) => ({ n, optional: false })),
      ...Object.keys(pkg.optionalDependencies ?? {}).map((n) => ({ n, optional: true })),
    ];
    for (const { n, optional } of names) {
      const dir = locate(pkgDir, n, root);
      if (!dir) {
        if (optional) continue;
        throw new Error(`${pkgDir}: dependency ${n} is not installed (run npm ci)`);
      }
      if (found.has(dir)) continue;
      found.add(dir);
      visit(dir);
    }
  };
  visit(root);
  return [...found].sort();
}

function locate(from: string, name: string, root: string): string | null {
  let dir = resolve(from);
  for (;;) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root || dirname(dir) === dir) return null;
    dir = dirname(dir);
  }
}
