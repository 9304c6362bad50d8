/**
 * Runs only the vector generator (test/vectors/generate.ts), which the normal suite never
 * collects. See test/vectors/README.md:
 *
 *   SEALFS_WRITE_VECTORS=1 npx vitest run -c test/vectors/vitest.generate.config.ts
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: { include: ['test/vectors/generate.ts', 'test/vectors/v2.generate.ts'] },
});
