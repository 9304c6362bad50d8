#!/usr/bin/env node
/**
 * Fixes a bug in fuse-native 2.2.6 and rebuilds its addon (run as npm "postinstall").
 *
 * fuse-native.c hands the access time to JavaScript twice in utimens: the second argument,
 * the modification time, is built from `l->atime`. So `touch -d`, `cp -p`, `rsync -t` and
 * `tar x` would set every file's mtime to its atime. This replaces that one expression with
 * `l->mtime` and rebuilds build/Release/fuse.node, which node-gyp-build prefers over the
 * prebuilt binary.
 *
 * Idempotent: an already patched source with an up-to-date build does nothing. Never fails
 * the install: when the rebuild is not possible it prints one warning line and exits 0 (the
 * prebuilt binary still works; only modification times set through utimens are wrong).
 * --verbose (or SEALFS_FUSE_VERBOSE=1) shows node-gyp's output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUGGY = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)';
const FIXED = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const verbose = process.argv.includes('--verbose') || process.env.SEALFS_FUSE_VERBOSE === '1';

function warn(reason) {
  process.stderr.write(`sealfs: warning: fuse-native not patched (${reason}); mounts work, but modification times set by touch/cp -p/tar may be wrong\n`);
  process.exit(0);
}

function findFuseNative() {
  const local = join(root, 'node_modules', 'fuse-native');
  if (existsSync(join(local, 'package.json'))) return local;
  try {
    return dirname(createRequire(join(root, 'package.json')).resolve('fuse-native/package.json'));
  } catch {
    return undefined;
  }
}

/** node-gyp's entry script: npm's own (lifecycle scripts get it in npm_config_node_gyp), else npm's bundled copy. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const bundled = (npmDir) => join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (process.env.npm_execpath) candidates.push(bundled(resolve(dirname(process.env.npm_execpath), '..')));
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(bundled(join(prefix, 'lib', 'node_modules', 'npm')));
  candidates.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  return candidates.find((candidate) => existsSync(candidate));
}

/** The Node headers next to the running node, so node-gyp never tries to download them. */
function findNodeDir() {
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node')) ? prefix : undefined;
}

const dir = findFuseNative();
if (!dir) process.exit(0); // not installed (e.g. --omit=optional): nothing to patch
const source = join(dir, 'fuse-native.c');
if (!existsSync(source)) process.exit(0);

const text = readFileSync(source, 'utf8');
let patched = false;
if (text.includes(BUGGY)) {
  try {
    writeFileSync(source, text.split(BUGGY).join(FIXED));
    patched = true;
  } catch (err) {
    warn(`cannot write ${source}: ${err.message}`);
  }
} else if (!text.includes(FIXED)) {
  // A different fuse-native whose source no longer has the expression: leave it alone.
  process.exit(0);
}

const addon = join(dir, 'build', 'Release', 'fuse.node');
const upToDate = !patched && existsSync(addon) && statSync(addon).mtimeMs >= statSync(source).mtimeMs;
if (upToDate) process.exit(0);

const nodeGyp = findNodeGyp();
if (!nodeGyp) warn('node-gyp not found');
const args = [nodeGyp, 'rebuild', '--release'];
const nodeDir = findNodeDir();
if (nodeDir) args.push(`--nodedir=${nodeDir}`);
const build = spawnSync(process.execPath, args, {
  cwd: dir,
  encoding: 'utf8',
  stdio: verbose ? 'inherit' : 'pipe',
  env: { ...process.env, npm_config_loglevel: verbose ? 'info' : 'warn' },
  maxBuffer: 64 * 1024 * 1024,
  timeout: 300_000,
});
if (build.error) warn(`could not run node-gyp: ${build.error.message}`);
if (build.status !== 0 || !existsSync(addon)) {
  const output = `${build.stdout ?? ''}${build.stderr ?? ''}`;
  const line = output.split('\n').map((l) => l.trim()).find((l) => /\berror\b/i.test(l)) ?? `node-gyp exited with ${build.status}`;
  warn(`rebuild failed: ${line.slice(0, 200)}`);
}

// Load it in a fresh process: a broken build must not shadow the working prebuild.
const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { encoding: 'utf8' });
if (check.status !== 0) {
  rmSync(addon, { force: true });
  warn(`rebuilt addon does not load: ${(check.stderr.split('\n').find((l) => /error/i.test(l)) ?? '').trim().slice(0, 200)}`);
}
process.stdout.write('sealfs: fuse-native patched (utimens passes the modification time) and rebuilt\n');
