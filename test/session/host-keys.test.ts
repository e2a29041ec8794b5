import { describe, expect, it } from 'vitest';
import { parseChords } from '../../src/input/chord.js';
import { createCommandBackend } from '../../src/session/backends/command.js';
import { createQemuBackend } from '../../src/session/backends/qemu.js';
import { createVirtualboxBackend } from '../../src/session/backends/virtualbox.js';

describe('backend host keys', () => {
  it.each([
    ['qemu', createQemuBackend()],
    ['command', createCommandBackend()],
    ['virtualbox', createVirtualboxBackend()],
  ] as const)('%s: every chord parses for the guard', (_kind, backend) => {
    expect(() => parseChords(backend.hostKeys)).not.toThrow();
  });

  it("qemu's cover the monitor console switch, grab, full-screen, quit and zoom", () => {
    const texts = parseChords(createQemuBackend().hostKeys).map((c) => c.text);
    for (const key of ['2', 'g', 'f', 'q', 'u', 'equal', 'minus'])
      expect(texts, `alt+ctrl+${key}`).toContain(`alt+ctrl+${key}`);
  });
});
