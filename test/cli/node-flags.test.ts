import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KVMUX_NODE_FLAGS } from '../../src/cli/node-flags.js';

describe('the kvmux bin', () => {
  it('runs node with the flags the tests and benches use', () => {
    const shebang = readFileSync(new URL('../../src/cli/main.ts', import.meta.url), 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${KVMUX_NODE_FLAGS.join(' ')}`);
  });
});
