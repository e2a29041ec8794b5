import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Temp folders made by tests. Each is removed after its test file (test/helpers/cleanup-setup.ts
 * registers the hook for every file), so a green run leaves no `kvmux-*` folder behind.
 */
const made: string[] = [];

/** A fresh folder `$TMPDIR/<prefix>XXXXXX`, removed when the test file ends. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Where a test writes screenshots for people to look at: $KVMUX_TEST_SHOTS when set (kept), else a
 * temp folder removed with the others.
 */
export function shotsDir(prefix: string): string {
  const keep = process.env['KVMUX_TEST_SHOTS'];
  if (!keep) return tempDir(prefix);
  mkdirSync(keep, { recursive: true });
  return keep;
}
