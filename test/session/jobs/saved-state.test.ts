import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { commitSaved, readSaved, savePaths, saveUri } from '../../../src/session/jobs/saved-state.js';
import { tempDir } from '../../helpers/temp.js';

describe('saved state', () => {
  it("QEMU's save command leaves the done mark only after gzip has written everything", () => {
    const stateDir = tempDir('kvmux-saved-');
    const p = savePaths(stateDir, 'tux');
    mkdirSync(p.dir, { recursive: true });
    const stream = Buffer.alloc(3 << 20, 'guest memory ');
    // exactly what QEMU runs for an exec: URI: /bin/sh -c CMD, the stream on its stdin
    execFileSync('/bin/sh', ['-c', saveUri(p.partial).slice('exec:'.length)], { input: stream });
    expect(existsSync(p.done)).toBe(true);
    expect(gunzipSync(readFileSync(p.partial)).equals(stream)).toBe(true);
  });

  it('commits only once the mark is there: the recorded size is the whole file', async () => {
    const stateDir = tempDir('kvmux-saved-');
    const p = savePaths(stateDir, 'tux');
    mkdirSync(p.dir, { recursive: true });
    writeFileSync(p.partial, Buffer.alloc(1000)); // gzip still writing when QEMU said "completed"
    const committing = commitSaved(stateDir, { vm: 'tux', memoryMiB: 64, disks: [] });
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(p.file)).toBe(false); // nothing replaced while the file is still growing
    appendFileSync(p.partial, Buffer.alloc(5000));
    writeFileSync(p.done, '');
    const meta = await committing;
    expect(meta.bytes).toBe(6000);
    expect(statSync(p.file).size).toBe(6000);
    expect(existsSync(p.done)).toBe(false);
    expect(readSaved(stateDir, 'tux')).toMatchObject({ bytes: 6000, memoryMiB: 64 });
  });

  it('gives up when gzip never finishes, leaving any earlier save alone', async () => {
    const stateDir = tempDir('kvmux-saved-');
    const p = savePaths(stateDir, 'tux');
    mkdirSync(p.dir, { recursive: true });
    writeFileSync(p.file, 'an earlier good save');
    writeFileSync(p.partial, 'half');
    await expect(commitSaved(stateDir, { vm: 'tux', memoryMiB: 64, disks: [] }, 200)).rejects.toThrow(
      /not finished/,
    );
    expect(readFileSync(p.file, 'utf8')).toBe('an earlier good save');
  });
});
