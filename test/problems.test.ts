/**
 * ProblemCounters (src/vault/problems.ts), the one place a mount counts what it met for
 * `sealfs status`: folders as last listed replace what they held, moved or removed folders
 * take their counts with them, and integrity failures add up with the last path named.
 */
import { describe, expect, it } from 'vitest';
import { ProblemCounters } from '../src/vault/problems.js';

describe('ProblemCounters', () => {
  it('sums the folders as last listed; a listing that changed replaces what the folder held', () => {
    const c = new ProblemCounters();
    c.listed('/v/a', 2, 1);
    c.listed('/v/a/b', 1, 0);
    c.listed('/v/a', 2, 1); // the same listing again: nothing more
    expect(c.snapshot()).toEqual({ integrityFailures: 0, lastIntegrityFailure: null, undecryptableNames: 3, conflictCopies: 1 });
    c.listed('/v/a', 0, 3);
    expect(c.snapshot()).toMatchObject({ undecryptableNames: 1, conflictCopies: 3 });
    c.listed('/v/c', 0, 0);
    expect(c.snapshot()).toMatchObject({ undecryptableNames: 1, conflictCopies: 3 });
  });

  it('a folder that moved or went takes its counts and those below it, not a sibling whose name starts alike', () => {
    const c = new ProblemCounters();
    c.listed('/v/a', 1, 1);
    c.listed('/v/a/b', 1, 1);
    c.listed('/v/ab', 1, 1);
    c.forget('/v/a');
    expect(c.snapshot()).toMatchObject({ undecryptableNames: 1, conflictCopies: 1 });
  });

  it('counts integrity failures and names the last path', () => {
    const c = new ProblemCounters();
    c.integrityFailed('/x');
    c.integrityFailed('/docs/y.bin');
    expect(c.snapshot()).toMatchObject({ integrityFailures: 2, lastIntegrityFailure: '/docs/y.bin' });
  });
});
