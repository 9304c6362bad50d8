/**
 * Runs only the vault vector generator (test/vectors/names.generate.ts), which the normal
 * suite never collects. See test/vectors/README.md, "Vault vectors":
 *
 *   SEALFS_WRITE_VECTORS=1 npx vitest run -c test/vectors/names.generate.config.ts
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: { include: ['test/vectors/names.generate.ts'] },
});
