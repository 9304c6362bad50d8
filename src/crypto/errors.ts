/** What went wrong with stored bytes; scrub and the CLI report these kinds verbatim. */
export type FormatProblem =
  | 'truncated'
  | 'bad-header'
  | 'bad-size'
  | 'corrupt-chunk'
  /** Format 2: the file's length or root does not match its index (an unfinished upload, or tampering). */
  | 'incomplete'
  /** Format 2: an index node does not match its parent's entry (damaged, replayed or tampered). */
  | 'corrupt-index'
  /** Format 2: a chunk is authentic but not the one the index names (an older version: replayed). */
  | 'stale-chunk';

/**
 * Stored bytes are not a valid sealfs file. `chunk` names the first chunk that failed,
 * when one did; nothing from that chunk onwards was released as plaintext.
 */
export class FormatError extends Error {
  constructor(
    readonly kind: FormatProblem,
    message: string,
    readonly chunk?: number,
  ) {
    super(message);
    this.name = 'FormatError';
  }
}
