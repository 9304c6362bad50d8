import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/**
 * The directory holding sealfs's package.json, found by walking up from this module: the
 * native addons are found relative to it whether this code runs from dist/ or from a test's
 * own build elsewhere in the tree.
 */
export function packageRoot(): string {
  if (root) return root;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'sealfs') return (root = dir);
      } catch {
        // Not ours (or unreadable): keep walking.
      }
    }
    if (dirname(dir) === dir) throw new Error(`no sealfs package.json above ${start}`);
  }
}
