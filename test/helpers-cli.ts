/**
 * The sealfs command run in process (not a test file itself): runCli with its own output
 * streams, environment and no terminal, so a missing passphrase option fails at once as it
 * does for a detached process. Only what needs the real executable (a mount, a prompt on a
 * pseudo-terminal, the bin entry itself) spawns dist/src/cli/main.js.
 */
import { Readable, Writable } from 'node:stream';
import { runCli } from '../src/cli/program.js';
import { runDetached, type Run } from '../bench/lib/proc.js';
import { CLI } from './build.js';

/** What a run of the command gave (a run in process has no signal or time limit). */
export type CliRun = Pick<Run, 'code' | 'stdout' | 'stderr'>;

function collector(parts: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      callback();
    },
  });
}

/** `sealfs ARGS…` in this process with `env` as its environment; stdin is `input` (default: empty). */
export async function runInProcess(args: readonly string[], env: NodeJS.ProcessEnv, input: string | Uint8Array = ''): Promise<CliRun> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const code = await runCli(args, {
    stdout: collector(out),
    stderr: collector(err),
    stdin: Readable.from(input.length ? [Buffer.from(input)] : [], { objectMode: false }),
    env,
    openTerminal: () => undefined,
  });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** The built executable (test/build.ts), detached (no terminal), with a bounded time: the end-to-end check. */
export async function runBuiltCli(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CliRun> {
  const { code, stdout, stderr } = await runDetached(process.execPath, [CLI, ...args], env, timeoutMs);
  return { code, stdout, stderr };
}
