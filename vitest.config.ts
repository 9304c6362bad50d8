import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Separate processes: FUSE tests mount file systems, and a test must never block the
    // JS thread of a process that serves a mount.
    pool: 'forks',
    maxWorkers: 2,
  },
});
