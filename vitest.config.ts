import { defineConfig } from 'vitest/config';
import { tierFiles, TIERS, type Tier } from './test/tiers.js';

/** What every tier shares. */
const common = {
  testTimeout: 60_000,
  hookTimeout: 60_000,
  // Separate processes: FUSE tests mount file systems, and a test must never block the
  // JS thread of a process that serves a mount.
  pool: 'forks',
} as const;

export default defineConfig({
  test: {
    // Compiles dist/ and type-checks test/ once per run, before any test file (here only, not
    // in the projects: a project's global setup would run once per tier).
    globalSetup: ['test/global-setup.ts'],
    // One project per tier (test/tiers.ts): `vitest run --project unit` runs one of them.
    projects: (Object.keys(TIERS) as Tier[]).map((tier) => ({ test: { ...common, name: tier, include: tierFiles(tier) } })),
    ...common,
    maxWorkers: 2,
  },
});
