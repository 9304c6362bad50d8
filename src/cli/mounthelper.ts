#!/usr/bin/env node
/**
 * `mount.fuse.sealfs`: the helper util-linux mount(8) runs for file systems of type
 * fuse.sealfs (`mount -t fuse.sealfs`, /etc/fstab, systemd .mount units). It translates its
 * command line (mountopts.ts) and runs `sealfs mount` with it as a child process, so the
 * mount is the same as the command's: unlocked here, then served by a detached server, and
 * this helper returns once the mount is up, as mount(8) expects. A child rather than the
 * CLI in this process, because `sealfs mount` starts its server from its own script.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describeError, EXIT } from './exit.js';
import { helperCommand } from './mountopts.js';

const NAME = 'mount.fuse.sealfs';
/** The sealfs command next to this file (its real path: node resolves a symlinked helper). */
const SEALFS = fileURLToPath(new URL('./main.js', import.meta.url));

function main(): number {
  let command;
  try {
    command = helperCommand(process.argv.slice(2));
  } catch (err) {
    const { line, code } = describeError(err);
    process.stderr.write(`${NAME}: ${line}\n`);
    return code;
  }
  for (const warning of command.warnings) process.stderr.write(`${NAME}: warning: ${warning}\n`);
  if (command.argv === undefined) return EXIT.OK;
  const child = spawnSync(process.execPath, [...process.execArgv, SEALFS, ...command.argv], { stdio: 'inherit' });
  if (child.error) {
    process.stderr.write(`${NAME}: could not run ${SEALFS}: ${child.error.message}\n`);
    return EXIT.MOUNT;
  }
  return child.status ?? EXIT.INTERRUPTED;
}

process.exit(main());
