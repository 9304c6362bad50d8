#!/usr/bin/env node
/**
 * Writes the man page sealfs(1) from the built command tree (dist/, so run after tsc) into
 * dist/man/sealfs.1, or into the file named as the first argument. package.json's "man"
 * field installs it with the package.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderManPage } from '../dist/src/cli/manpage.js';
import { buildProgram } from '../dist/src/cli/program.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? `${root}/dist/man/sealfs.1`);
// Only the tree is used: no command runs, so these streams are never written to.
const program = buildProgram({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, openTerminal: () => undefined });
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, renderManPage(program));
