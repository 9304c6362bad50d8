#!/usr/bin/env node
/**
 * Fixes fuse-native 2.2.6's handling of file times and rebuilds its addon (run as npm
 * "postinstall"). Three edits to node_modules/fuse-native/fuse-native.c:
 *
 * 1. utimens hands the access time to JavaScript twice: the modification time is built from
 *    `l->atime`. `touch -d`, `cp -p` and `rsync -t` would set every mtime to the atime.
 * 2. libfuse 2 calls utimens only when both times are set, unless the file system says it
 *    understands UTIME_OMIT (flag_utime_omit_ok). `tar x` sets the mtime alone (atime
 *    UTIME_OMIT), so without the flag every extracted file kept the time of extraction.
 * 3. With that flag, UTIME_NOW and UTIME_OMIT arrive in tv_nsec; they are passed on as the
 *    millisecond values 2^53-1 (now) and 2^53-2 (leave unchanged), which src/fs/fuseops.ts
 *    understands (without this patch both would read as 1073 ms after the epoch).
 *
 * Then build/Release/fuse.node is rebuilt, which node-gyp-build prefers over the prebuilt
 * binary. Idempotent: an already patched source with an up-to-date build does nothing. Never
 * fails the install: when the rebuild is not possible it prints one warning line and exits 0
 * (the prebuilt binary still works; only file times set through utimens are wrong or lost).
 * --verbose (or SEALFS_FUSE_VERBOSE=1) shows node-gyp's output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNodeDir, findNodeGyp } from './node-gyp.mjs';

/** Each edit: the text to find, its replacement, and a piece of the replacement that shows it is applied. */
const PATCHES = [
  {
    find: 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)',
    replace: 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)',
    applied: 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)',
  },
  {
    find: 'if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;',
    replace: 'if (implemented[op_utimens]) { ops.utimens = fuse_native_utimens; ops.flag_utime_omit_ok = 1; } /* sealfs */',
    applied: 'ops.flag_utime_omit_ok = 1;',
  },
  {
    find: '  uint64_t ms = (ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);',
    replace: [
      '#ifdef UTIME_OMIT /* sealfs: special values as 2^53-2 (leave unchanged) and 2^53-1 (now) */',
      '  if (ts->tv_nsec == UTIME_OMIT) return 9007199254740990ULL;',
      '  if (ts->tv_nsec == UTIME_NOW) return 9007199254740991ULL;',
      '#endif',
      '  uint64_t ms = (ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);',
    ].join('\n'),
    applied: 'return 9007199254740990ULL;',
  },
];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const verbose = process.argv.includes('--verbose') || process.env.SEALFS_FUSE_VERBOSE === '1';

function warn(reason) {
  process.stderr.write(`sealfs: warning: fuse-native not patched (${reason}); mounts work, but file times set by touch, cp -p or tar may be wrong or lost\n`);
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

const dir = findFuseNative();
if (!dir) process.exit(0); // not installed (e.g. --omit=optional): nothing to patch
const source = join(dir, 'fuse-native.c');
if (!existsSync(source)) process.exit(0);

let text = readFileSync(source, 'utf8');
let patched = false;
for (const patch of PATCHES) {
  if (text.includes(patch.applied)) continue;
  // A different fuse-native whose source no longer has the expected text: leave it alone.
  if (!text.includes(patch.find)) process.exit(0);
}
for (const patch of PATCHES) {
  if (text.includes(patch.applied)) continue;
  text = text.split(patch.find).join(patch.replace);
  patched = true;
}
if (patched) {
  try {
    writeFileSync(source, text);
  } catch (err) {
    warn(`cannot write ${source}: ${err.message}`);
  }
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
process.stdout.write('sealfs: fuse-native patched (file times in utimens) and rebuilt\n');
