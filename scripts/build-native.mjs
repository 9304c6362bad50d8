#!/usr/bin/env node
/**
 * Builds the native AEAD addon (native/ → native/build/Release/sealfs_aead.node) with
 * node-gyp against the local Node headers, then checks that the result loads and works.
 *
 * The addon is optional: when it cannot be built this prints one warning line and exits
 * 0, and sealfs runs on node:crypto. Pass --strict (or set SEALFS_NATIVE_STRICT=1) to
 * exit 1 instead, and --verbose (or SEALFS_NATIVE_VERBOSE=1) to see node-gyp's output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNodeDir, findNodeGyp } from './node-gyp.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const buildDir = join(nativeDir, 'build');
const addonPath = join(buildDir, 'Release', 'sealfs_aead.node');
const logPath = join(buildDir, 'build.log');
const args = new Set(process.argv.slice(2));
const strict = args.has('--strict') || process.env.SEALFS_NATIVE_STRICT === '1';
const verbose = args.has('--verbose') || process.env.SEALFS_NATIVE_VERBOSE === '1';

function giveUp(reason) {
  const where = existsSync(logPath) ? `; log: ${relative(process.cwd(), logPath) || logPath}` : '';
  process.stderr.write(`sealfs: native addon not built (${reason}${where}); sealfs will use node:crypto\n`);
  process.exit(strict ? 1 : 0);
}

function saveLog(text) {
  try {
    mkdirSync(buildDir, { recursive: true });
    writeFileSync(logPath, text);
  } catch {
    // The warning line still says what went wrong.
  }
}

/** The most telling line of a failed build's output. */
function firstError(output) {
  const lines = output.split('\n').map((line) => line.trim());
  return (
    lines.find((line) => /\berror\b/i.test(line) && !/^gyp (ERR|info)|not ok|node-gyp -v|^npm ERR/.test(line)) ??
    lines.find((line) => /^gyp ERR! stack/.test(line)) ??
    'node-gyp failed'
  ).slice(0, 200);
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) giveUp('node-gyp not found: npm bundles it, is npm installed?');
const nodeDir = findNodeDir();
if (!nodeDir && !process.env.npm_config_nodedir) {
  giveUp(`no Node headers at ${resolve(dirname(process.execPath), '..', 'include', 'node')} and no nodedir configured`);
}
const headersDir = join(nodeDir ?? process.env.npm_config_nodedir, 'include', 'node');
if (!existsSync(join(headersDir, 'openssl', 'evp.h'))) {
  giveUp(`Node's OpenSSL headers are missing from ${headersDir}`);
}

const gypArgs = [nodeGyp, 'rebuild', '--release', `--directory=${nativeDir}`];
if (nodeDir) gypArgs.push(`--nodedir=${nodeDir}`);
const build = spawnSync(process.execPath, gypArgs, {
  cwd: nativeDir,
  encoding: 'utf8',
  stdio: verbose ? 'inherit' : 'pipe',
  env: { ...process.env, npm_config_loglevel: verbose ? 'info' : 'warn' },
  maxBuffer: 64 * 1024 * 1024,
});
const output = `${build.stdout ?? ''}${build.stderr ?? ''}`;
if (build.error) giveUp(`could not run node-gyp: ${build.error.message}`);
if (build.status !== 0 || !existsSync(addonPath)) {
  saveLog(output);
  giveUp(verbose ? 'node-gyp failed, see above' : firstError(output));
}

// Load it in a fresh process and seal/open one chunk: catches a Node whose OpenSSL
// symbols are not exported, or headers that do not match the running OpenSSL.
const smoke = spawnSync(
  process.execPath,
  [
    '-e',
    `const a = require(${JSON.stringify(addonPath)});
     const key = new Uint8Array(32).fill(7), header = new Uint8Array(24), plain = new Uint8Array(100).fill(1);
     for (const id of [1, 2]) {
       const sealed = new Uint8Array(128), out = new Uint8Array(100);
       a.seal(id, key, header, 4096, 0, true, plain, sealed);
       if (a.open(id, key, header, 4096, 0, true, sealed, out) !== -1 || out[99] !== 1) throw new Error('round trip failed');
     }`,
  ],
  { encoding: 'utf8' },
);
if (smoke.status !== 0) {
  saveLog(`${output}\n--- load check ---\n${smoke.stdout}${smoke.stderr}`);
  rmSync(addonPath, { force: true });
  const why = `${smoke.stderr}`.split('\n').find((line) => /error/i.test(line)) ?? `exit ${smoke.status ?? smoke.signal}`;
  giveUp(`built but unusable: ${why.trim().slice(0, 200)}`);
}
process.stdout.write(`sealfs: native addon built: ${relative(process.cwd(), addonPath) || addonPath}\n`);
