/**
 * Runs only the special-file name vector generator (test/vectors/special.generate.ts), which
 * the normal suite never collects. See test/vectors/README.md, "Special-file names":
 *
 *   SEALFS_WRITE_VECTORS=1 npx vitest run -c test/vectors/special.generate.config.ts
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: { include: ['test/vectors/special.generate.ts'] },
});
