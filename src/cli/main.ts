#!/usr/bin/env node
/** The `sealfs` executable: runs the command with this process's streams, then exits with its code. */
import { spawnSync } from 'node:child_process';
import { EXIT } from './exit.js';
import { openProcessTerminal } from './passphrase.js';
import { runCli } from './program.js';

// A closed stdout (e.g. `sealfs decrypt … | head`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.OK);
});

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  openTerminal: openProcessTerminal,
  relaunchWithThreadPool: (size) => {
    const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, UV_THREADPOOL_SIZE: String(size) },
    });
    return child.status ?? EXIT.INTERRUPTED;
  },
});
// Timers of work that no longer matters (a mount server's write-back and watchers) must not
// keep a finished command alive. Writes to a pipe may still be queued (a large `sealfs ls`
// piped to another program lost all but its first few hundred KiB): they go out first.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))));
process.exit(code);
