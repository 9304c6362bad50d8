#!/usr/bin/env node
/**
 * Builds the two native addons with node-gyp against the local Node headers, then checks
 * that each loads and works:
 *
 * - native/ → native/build/Release/sealfs_aead.node, the OpenSSL AEAD core. Optional: without
 *   it sealfs runs on node:crypto.
 * - native/fuse/ → native/fuse/build/Release/sealfs_fuse.node, the FUSE session of a mount
 *   (libfuse3, Debian package libfuse3-dev). Without it everything but `sealfs mount` works.
 *
 * A build that fails prints one warning line and the script exits 0. Pass --strict (or set
 * SEALFS_NATIVE_STRICT=1) to exit 1 instead, and --verbose (or SEALFS_NATIVE_VERBOSE=1) to
 * see node-gyp's output. `npm pack` and `npm publish` (which build through "prepack") are
 * always strict: the package carries the addons built here, and one without them would
 * install a `sealfs` that cannot mount.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNodeDir, findNodeGyp } from './node-gyp.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const packing = ['pack', 'publish'].includes(process.env.npm_command ?? '');
const strict = args.has('--strict') || process.env.SEALFS_NATIVE_STRICT === '1' || packing;
const verbose = args.has('--verbose') || process.env.SEALFS_NATIVE_VERBOSE === '1';
let failed = false;

const ADDONS = [
  {
    name: 'native addon',
    dir: join(root, 'native'),
    file: 'sealfs_aead.node',
    without: 'sealfs will use node:crypto',
    missing: (headersDir) => (existsSync(join(headersDir, 'openssl', 'evp.h')) ? undefined : `Node's OpenSSL headers are missing from ${headersDir}`),
    // Seals and opens one chunk: catches a Node whose OpenSSL symbols are not exported, or
    // headers that do not match the running OpenSSL.
    smoke: (path) => `const a = require(${JSON.stringify(path)});
     const key = new Uint8Array(32).fill(7), header = new Uint8Array(24), plain = new Uint8Array(100).fill(1);
     for (const id of [1, 2]) {
       const sealed = new Uint8Array(128), out = new Uint8Array(100);
       a.seal(id, key, header, 4096, 0, true, plain, sealed);
       if (a.open(id, key, header, 4096, 0, true, sealed, out) !== -1 || out[99] !== 1) throw new Error('round trip failed');
     }`,
  },
  {
    name: 'FUSE addon',
    dir: join(root, 'native', 'fuse'),
    file: 'sealfs_fuse.node',
    without: '`sealfs mount` will not work until it is built (apt-get install libfuse3-dev, then npm run build)',
    missing: () => (existsSync('/usr/include/fuse3/fuse_lowlevel.h') || spawnSync('pkg-config', ['--exists', 'fuse3']).status === 0 ? undefined : 'libfuse3 headers not found (Debian package libfuse3-dev)'),
    // Loads it (libfuse3 must resolve) and checks that a stale reply is refused, not sent.
    smoke: (path) => `const f = require(${JSON.stringify(path)});
     if (typeof f.mount !== 'function' || f.replyErr(12345, 0) !== false) throw new Error('unexpected exports');`,
  },
];

/** The most telling line of a failed build's output. */
function firstError(output) {
  const lines = output.split('\n').map((line) => line.trim());
  return (
    lines.find((line) => /\berror\b/i.test(line) && !/^gyp (ERR|info)|not ok|node-gyp -v|^npm ERR/.test(line)) ??
    lines.find((line) => /^gyp ERR! stack/.test(line)) ??
    'node-gyp failed'
  ).slice(0, 200);
}

function saveLog(path, text) {
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  } catch {
    // The warning line still says what went wrong.
  }
}

function build(addon, nodeGyp, nodeDir) {
  const buildDir = join(addon.dir, 'build');
  const addonPath = join(buildDir, 'Release', addon.file);
  const logPath = join(buildDir, 'build.log');
  const giveUp = (reason) => {
    const where = existsSync(logPath) ? `; log: ${relative(process.cwd(), logPath) || logPath}` : '';
    process.stderr.write(`sealfs: ${addon.name} not built (${reason}${where}); ${addon.without}\n`);
    failed = true;
  };
  const gypArgs = [nodeGyp, 'rebuild', '--release', `--directory=${addon.dir}`];
  if (nodeDir) gypArgs.push(`--nodedir=${nodeDir}`);
  const result = spawnSync(process.execPath, gypArgs, {
    cwd: addon.dir,
    encoding: 'utf8',
    stdio: verbose ? 'inherit' : 'pipe',
    env: { ...process.env, npm_config_loglevel: verbose ? 'info' : 'warn' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.error) return giveUp(`could not run node-gyp: ${result.error.message}`);
  if (result.status !== 0 || !existsSync(addonPath)) {
    saveLog(logPath, output);
    return giveUp(verbose ? 'node-gyp failed, see above' : firstError(output));
  }
  // Load it in a fresh process: a broken build must not be found and used later.
  const smoke = spawnSync(process.execPath, ['-e', addon.smoke(addonPath)], { encoding: 'utf8' });
  if (smoke.status !== 0) {
    saveLog(logPath, `${output}\n--- load check ---\n${smoke.stdout}${smoke.stderr}`);
    rmSync(addonPath, { force: true });
    const why = `${smoke.stderr}`.split('\n').find((line) => /error/i.test(line)) ?? `exit ${smoke.status ?? smoke.signal}`;
    return giveUp(`built but unusable: ${why.trim().slice(0, 200)}`);
  }
  process.stdout.write(`sealfs: ${addon.name} built: ${relative(process.cwd(), addonPath) || addonPath}\n`);
}

function main() {
  const nodeGyp = findNodeGyp();
  const nodeDir = findNodeDir();
  for (const addon of ADDONS) {
    if (!nodeGyp) {
      process.stderr.write(`sealfs: ${addon.name} not built (node-gyp not found: npm bundles it, is npm installed?); ${addon.without}\n`);
      failed = true;
      continue;
    }
    if (!nodeDir && !process.env.npm_config_nodedir) {
      process.stderr.write(`sealfs: ${addon.name} not built (no Node headers at ${resolve(dirname(process.execPath), '..', 'include', 'node')} and no nodedir configured); ${addon.without}\n`);
      failed = true;
      continue;
    }
    const missing = addon.missing(join(nodeDir ?? process.env.npm_config_nodedir, 'include', 'node'));
    if (missing) {
      process.stderr.write(`sealfs: ${addon.name} not built (${missing}); ${addon.without}\n`);
      failed = true;
      continue;
    }
    build(addon, nodeGyp, nodeDir);
  }
  process.exit(failed && strict ? 1 : 0);
}

main();
