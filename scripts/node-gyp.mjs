// Where node-gyp and the Node headers are, for the native builds (the AEAD and FUSE
// addons): always local, so nothing is downloaded.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** node-gyp's entry script: npm's own (lifecycle scripts get it in npm_config_node_gyp), else npm's bundled copy. */
export function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const bundled = (npmDir) => join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  // npm_execpath is npm's bin/npm-cli.js while npm runs a script.
  if (process.env.npm_execpath) candidates.push(bundled(resolve(dirname(process.env.npm_execpath), '..')));
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(bundled(join(prefix, 'lib', 'node_modules', 'npm')));
  candidates.push(bundled(join(prefix, 'node_modules', 'npm')));
  for (const candidate of candidates) if (existsSync(candidate)) return candidate;
  const npmRoot = spawnSync('npm', ['root', '-g'], { encoding: 'utf8', timeout: 30_000 });
  if (npmRoot.status === 0) {
    const candidate = bundled(join(npmRoot.stdout.trim(), 'npm'));
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The Node headers next to the running node (prefix/include/node), or undefined. */
export function findNodeDir() {
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}
