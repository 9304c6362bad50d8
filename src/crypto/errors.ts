/** What went wrong with stored bytes; scrub and the CLI report these kinds verbatim. */
export type FormatProblem = 'truncated' | 'bad-header' | 'bad-size' | 'corrupt-chunk';

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
