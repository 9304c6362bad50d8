/**
 * The one place where errors become exit codes. Every layer throws its own typed errors
 * (FormatError, IntegrityFailure, KeyFileError, VaultError, ToolError, MountError, errno
 * errors); only here are they given a code. EXIT is the README's table ("Exit codes"), checked by a test.
 */
import { FormatError } from '../crypto/errors.js';
import { KeyFileError } from '../crypto/keyfile.js';
import { describeFsError, MountError } from '../fs/errors.js';
import { ToolError, type ToolProblem } from '../tools/errors.js';
import { IntegrityFailure, VaultError, type VaultProblem } from '../vault/errors.js';

/** Exit codes of the sealfs command; documented in the README, stable for scripts. */
export const EXIT = {
  OK: 0,
  /** A bug or an unexpected failure. */
  INTERNAL: 1,
  /** Bad command line. */
  USAGE: 2,
  /** A file or folder could not be read or written, or would be overwritten (also `init` over a vault or a non-empty folder). */
  IO: 3,
  /** Stored data failed authentication: tampered, truncated, reordered, swapped, or the wrong key. */
  INTEGRITY: 4,
  /**
   * The key could not be had: wrong passphrase, no key for this vault, malformed key file or
   * recovery key, or no passphrase from --passphrase-file or --extpass (empty, or the command failed).
   */
  KEY: 5,
  /** Not a vault (or no folder there), or its vault file was edited or is from a newer sealfs. */
  VAULT: 6,
  /** Mounting or unmounting failed: mount point missing, not empty, already mounted, FUSE unavailable. */
  MOUNT: 7,
  /** Refused because it would be unsafe: a key inside the cipher directory (and so inside the sync or backup). */
  UNSAFE: 8,
  /** A scrub or verification completed and found problems (listed in its report). */
  PROBLEMS: 9,
  /** The backup transport failed: rclone missing, remote unreachable or refusing, a transfer error. */
  REMOTE: 10,
  /**
   * The vault is in use by another sealfs process on this machine: mounted already (at another
   * mount point, or by another path to the same folder), or being repaired.
   */
  IN_USE: 11,
  /** Interrupted at a prompt (Ctrl-C), as a shell reports SIGINT. */
  INTERRUPTED: 130,
} as const;

export type ExitName = keyof typeof EXIT;

/**
 * Each code's meaning in a few words, for `--help` and the man page (which list per command
 * the codes it can return); the README's table says the same at length.
 */
export const EXIT_MEANING: Readonly<Record<ExitName, string>> = {
  OK: 'success',
  INTERNAL: 'unexpected internal error (a bug: please report it)',
  USAGE: 'bad command line or options',
  IO: 'a file or folder could not be read or written, or would be overwritten',
  INTEGRITY: 'stored data failed authentication: damaged, tampered or wrong key',
  KEY: 'no usable key: wrong passphrase, no key for this vault, bad key file',
  VAULT: 'not a sealfs vault, or its vault file was edited or is too new',
  MOUNT: 'mounting or unmounting failed',
  UNSAFE: 'refused as unsafe: a key inside the cipher folder',
  PROBLEMS: 'a scrub, backup verification or repair found problems (listed)',
  REMOTE: 'the backup transport failed: rclone, the remote or a transfer',
  IN_USE: 'the vault is in use: already mounted, or being repaired',
  INTERRUPTED: 'interrupted at a prompt (Ctrl-C)',
};

/** An error the CLI itself reports (bad usage, a prompt cancelled…), with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Ends a command with an exit code and nothing more to say (it was already said, or another process said it). */
export class CliExit extends CliError {
  constructor(exitCode: number) {
    super('', exitCode);
    this.name = 'CliExit';
  }
}

export const VAULT_EXIT: Readonly<Record<VaultProblem, number>> = {
  'not-a-vault': EXIT.VAULT,
  'vault-tampered': EXIT.VAULT,
  'vault-too-new': EXIT.VAULT,
  // The folder is there and would be overwritten: not "not a vault", which sends the user looking for one.
  'vault-exists': EXIT.IO,
  'wrong-passphrase': EXIT.KEY,
  'no-key': EXIT.KEY,
  'bad-recovery-key': EXIT.KEY,
  'key-location': EXIT.UNSAFE,
};

export const TOOL_EXIT: Readonly<Record<ToolProblem, number>> = {
  remote: EXIT.REMOTE,
  'keys-inside': EXIT.UNSAFE,
  overlap: EXIT.USAGE,
  target: EXIT.IO,
  'no-vault': EXIT.VAULT,
  integrity: EXIT.INTEGRITY,
};

/** The one line (empty: print nothing) and exit code for any error that reaches the top of a command. */
export function describeError(err: unknown): { line: string; code: number } {
  if (err instanceof CliError) return { line: err.message, code: err.exitCode };
  if (err instanceof FormatError || err instanceof IntegrityFailure) return { line: err.message, code: EXIT.INTEGRITY };
  if (err instanceof KeyFileError) return { line: err.message, code: EXIT.KEY };
  if (err instanceof VaultError) return { line: err.message, code: VAULT_EXIT[err.kind] };
  if (err instanceof ToolError) return { line: err.message, code: TOOL_EXIT[err.kind] };
  if (err instanceof MountError) return { line: err.message, code: EXIT.MOUNT };
  // A file or folder the user named (a passphrase file, an output…) could not be read or written.
  const fsLine = describeFsError(err);
  if (fsLine !== undefined) return { line: fsLine, code: EXIT.IO };
  return { line: (err as Error | undefined)?.message ?? String(err), code: EXIT.INTERNAL };
}
