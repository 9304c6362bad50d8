/**
 * What a run of the sealfs command talks to: its output streams, input, environment and
 * terminal. The bin entry passes the process's own; tests pass their own and run the CLI
 * in process.
 */
import type { Readable, Writable } from 'node:stream';
import type { ReadStream } from 'node:tty';

/** An output stream; a terminal has isTTY (and columns). */
export type CliOutput = Writable & { readonly isTTY?: boolean; readonly columns?: number };

/** The terminal passphrase prompts read from (without echo) and write to. */
export interface Terminal {
  readonly input: ReadStream;
  write(text: string): void;
  close(): void;
}

export interface CliIo {
  readonly stdout: CliOutput;
  readonly stderr: CliOutput;
  readonly stdin: Readable;
  readonly env: NodeJS.ProcessEnv;
  /** The terminal for prompts, or undefined when there is none (then nothing can be asked). */
  readonly openTerminal: () => Terminal | undefined;
  /**
   * Runs the same command again in a new process whose libuv thread pool has `size`
   * threads, and returns its exit status; undefined when this run cannot do that (the
   * CLI is not its own process) and must go on as it is.
   */
  readonly relaunchWithThreadPool?: (size: number) => number | undefined;
}
