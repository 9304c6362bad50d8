/**
 * Runs only the xattr vector generator (test/vectors/xattr.generate.ts), which the normal
 * suite never collects. See test/vectors/README.md, "Extended attribute vectors":
 *
 *   SEALFS_WRITE_VECTORS=1 npx vitest run -c test/vectors/xattr.generate.config.ts
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: { include: ['test/vectors/xattr.generate.ts'] },
});
