/**
 * Runs once before any test file of a vitest run: compiles src/ and bench/ into dist/ (what
 * the tests run as the CLI, see test/build.ts) and type-checks test/. Any type error ends the
 * run here: no test runs against code that does not compile.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './build.js';

const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');

function tsc(project: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [TSC, '-p', project], { cwd: REPO, encoding: 'utf8', timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`tsc -p ${project} failed:\n${stdout}${stderr}`));
      else resolve();
    });
  });
}

export default async function setup(): Promise<void> {
  const started = Date.now();
  await Promise.all([tsc('tsconfig.json'), tsc('test/tsconfig.json')]);
  console.log(`global setup: dist/ built and test/ type-checked in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
