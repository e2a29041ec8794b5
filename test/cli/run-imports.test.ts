import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * What `kvmux run` loads before its first display can start: every module file costs start-up
 * time (execa alone is ~170 files, ~150 ms). The static import graph of src/cli/run.ts, read from
 * the sources (type-only imports are erased by tsc and do not count).
 */
const root = resolve(import.meta.dirname, '../..');

function staticImports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of src.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm))
    if (!m[1]) specs.push(m[2]!);
  return specs;
}

/** Packages reached from `entry`, each with the chain of our files that brings it in. */
function packagesReached(entry: string): Map<string, string[]> {
  const chainTo = new Map<string, string[]>([[entry, [entry]]]);
  const packages = new Map<string, string[]>();
  const todo = [entry];
  for (let file = todo.pop(); file; file = todo.pop()) {
    for (const spec of staticImports(file)) {
      const chain = chainTo.get(file)!;
      if (spec.startsWith('.')) {
        const ts = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
        if (!existsSync(ts) || chainTo.has(ts)) continue;
        chainTo.set(ts, [...chain, ts]);
        todo.push(ts);
      } else if (!spec.startsWith('node:')) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!packages.has(name))
          packages.set(
            name,
            chain.map((f) => relative(root, f)),
          );
      }
    }
  }
  return packages;
}

describe('kvmux run start-up imports', () => {
  const reached = packagesReached(join(root, 'src/cli/run.ts'));

  it('loads only what the service needs to start (config, log, X, input), not execa or blessed', () => {
    const late = ['execa', 'blessed'].filter((p) => reached.has(p));
    expect(late.map((p) => `${p} <- ${reached.get(p)!.reverse().join(' <- ')}`)).toEqual([]);
  });

  it('the walk itself finds the packages it should (a broken walk would pass the test above)', () => {
    expect([...reached.keys()]).toEqual(expect.arrayContaining(['yaml', 'zod', 'pino', 'x11', 'koffi']));
  });
});
