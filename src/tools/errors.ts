/**
 * Why a tool (backup, restore, repair) refused or failed; the CLI maps each kind to a
 * documented exit code. The message is one line meant for the user.
 */
export type ToolProblem =
  /** rclone missing, a remote unknown, unreachable or refusing, a transfer error. */
  | 'remote'
  /** Key material inside the cipher directory would travel with a backup. */
  | 'keys-inside'
  /** Two locations that must be apart overlap (a backup or quarantine inside the vault). */
  | 'overlap'
  /** The target of a restore exists and is not empty, or its parent folder is missing. */
  | 'target'
  /** A backup holds no sealfs vault. */
  | 'no-vault'
  /**
   * An entry of the vault failed authentication, or is what sealfs never stores (a FIFO,
   * socket or device planted in the cipher folder): `export` reports each and goes on.
   */
  | 'integrity';

export class ToolError extends Error {
  constructor(
    readonly kind: ToolProblem,
    message: string,
  ) {
    super(message);
    this.name = 'ToolError';
  }
}
