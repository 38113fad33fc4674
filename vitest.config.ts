import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files start their own servers on free ports; two cores run two files at a time.
    pool: 'forks',
    maxWorkers: 2,
  },
});
