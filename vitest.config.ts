import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Real X servers, VTs and VMs are shared machine resources: run files one at a time.
    fileParallelism: false,
    // Every test file removes the temp folders it made (test/helpers/temp.ts).
    setupFiles: ['test/helpers/cleanup-setup.ts'],
    pool: 'forks',
  },
});
