/**
 * The one build of sealfs that every test runs: dist/, compiled by test/global-setup.ts once
 * per test run (a type error in src/, bench/ or test/ fails the run before any test starts).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
/** The built CLI: `node CLI args…` is what a user's `sealfs args…` runs. */
export const CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');
