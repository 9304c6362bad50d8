/**
 * What a serving PlainFs has met in the cipher folder, counted in one place for `sealfs
 * status` (src/fs/status.ts publishes it): integrity failures as they happen, and the
 * undecryptable names and conflict copies of each folder as it was last listed. The log
 * says which ones (src/vault/plainfs.ts); this only counts, in constant time per call.
 */

/** Folders remembered with their counts; a provider can make any number of folders. */
const MAX_FOLDERS = 10_000;

export interface ProblemCounts {
  /** Reads, writes, opens and link reads that failed authentication since the mount began. */
  readonly integrityFailures: number;
  /** The plaintext path of the last of them. */
  readonly lastIntegrityFailure: string | null;
  /** Names that do not decrypt, in the folders as last listed. */
  readonly undecryptableNames: number;
  /** Sync clients' conflict copies, in the folders as last listed. */
  readonly conflictCopies: number;
}

interface FolderCounts {
  readonly undecryptable: number;
  readonly conflicts: number;
}

export class ProblemCounters {
  private integrityFailures = 0;
  private lastIntegrityFailure: string | null = null;
  private undecryptableNames = 0;
  private conflictCopies = 0;
  /** Per cipher folder that holds any, its counts as last listed (the sums above). */
  private readonly folders = new Map<string, FolderCounts>();

  integrityFailed(plainPath: string): void {
    this.integrityFailures++;
    this.lastIntegrityFailure = plainPath;
  }

  /** A listing of `cipherFolder` was read or reused: what it holds now replaces what it held. */
  listed(cipherFolder: string, undecryptable: number, conflicts: number): void {
    const before = this.folders.get(cipherFolder) ?? { undecryptable: 0, conflicts: 0 };
    if (before.undecryptable === undecryptable && before.conflicts === conflicts) return;
    // Beyond the bound a new folder goes uncounted rather than the sums losing what they hold.
    if (!this.folders.has(cipherFolder) && this.folders.size >= MAX_FOLDERS) return;
    this.undecryptableNames += undecryptable - before.undecryptable;
    this.conflictCopies += conflicts - before.conflicts;
    if (undecryptable === 0 && conflicts === 0) this.folders.delete(cipherFolder);
    else this.folders.set(cipherFolder, { undecryptable, conflicts });
  }

  /** A folder and everything below it moved or went (its new place is counted when listed). */
  forget(cipherFolder: string): void {
    for (const [path, counts] of this.folders) {
      if (path !== cipherFolder && !path.startsWith(cipherFolder + '/')) continue;
      this.undecryptableNames -= counts.undecryptable;
      this.conflictCopies -= counts.conflicts;
      this.folders.delete(path);
    }
  }

  snapshot(): ProblemCounts {
    return {
      integrityFailures: this.integrityFailures,
      lastIntegrityFailure: this.lastIntegrityFailure,
      undecryptableNames: this.undecryptableNames,
      conflictCopies: this.conflictCopies,
    };
  }
}
