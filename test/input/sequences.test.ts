import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffReport, parseSequence, runSequence } from './sequence-harness.js';

const dir = join(import.meta.dirname, '..', 'sequences');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.keys'))
  .sort();

describe('input sequences (test/sequences/*.keys)', () => {
  it('has sequence files to run', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files)('%s', (file) => {
    const seq = parseSequence(readFileSync(join(dir, file), 'utf8'));
    expect(seq.expected.length, `${file} has no expected section`).toBeGreaterThan(0);
    const report = diffReport(seq.expected, runSequence(seq));
    if (report) expect.fail(`${file}\n${report}`);
  });
});
