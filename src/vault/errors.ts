/** Why a vault cannot be used; the CLI maps each kind to a documented exit code. */
export type VaultProblem =
  | 'not-a-vault'
  | 'vault-tampered'
  | 'vault-too-new'
  | 'wrong-passphrase'
  | 'no-key'
  | 'key-location'
  | 'bad-recovery-key'
  /** `sealfs init` on a folder that is already a vault, or holds other files. */
  | 'vault-exists';

export class VaultError extends Error {
  constructor(
    readonly kind: VaultProblem,
    message: string,
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

/** Why a plaintext name (or symlink target) cannot be stored; the mount maps each kind to an errno. */
export type NameProblem = 'invalid' | 'too-long';

export class NameError extends Error {
  constructor(
    readonly kind: NameProblem,
    message: string,
  ) {
    super(message);
    this.name = 'NameError';
  }
}

/**
 * Stored data of one entry failed authentication (a chunk, a name, a symlink target): an
 * errno-style EIO, already logged once by PlainFs, naming the plaintext path (and the chunk).
 * No byte of what failed was released.
 */
export class IntegrityFailure extends Error {
  readonly code = 'EIO';

  constructor(
    readonly plainPath: string,
    detail: string,
    readonly chunk?: number,
  ) {
    super(`${plainPath}: ${detail}`);
    this.name = 'IntegrityFailure';
  }
}
