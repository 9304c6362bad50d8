/**
 * Runs only the frozen-vault generator (test/vectors/vault.generate.ts), which the normal
 * suite never collects. See test/vectors/README.md, "Frozen vaults":
 *
 *   npm run -s build:ts && SEALFS_WRITE_VECTORS=1 npx vitest run -c test/vectors/vault.generate.config.ts
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: { include: ['test/vectors/vault.generate.ts'] },
});
