import type { CipherName } from './ciphers.js';

/**
 * One run of consecutive chunks of one file, sealed or opened in a single backend call.
 * Chunks are `chunkSize` plaintext bytes; only the last chunk of the run may be shorter,
 * and only when it is the file's final chunk. Each chunk's associated data is
 * header ‖ uint64be(index) ‖ final-flag (docs/FORMAT.md §5), built by the backend.
 */
export interface ChunkRun {
  readonly cipher: CipherName;
  /** The file's own 32-byte key (deriveFileKey). */
  readonly key: Uint8Array;
  /** The file header bytes. */
  readonly header: Uint8Array;
  readonly chunkSize: number;
  /** File-wide index of the first chunk of the run. */
  readonly firstIndex: number;
  /** Whether the run's last chunk is the file's final chunk. */
  readonly endsFile: boolean;
}

/** Returned by open when every chunk verified. */
export const ALL_VERIFIED = -1;

export interface AeadBackend {
  readonly name: BackendName;
  /**
   * Seals `plain` (the run's plaintext, contiguous) into `out`, which must be exactly
   * plain.length + 28 × chunks bytes. Nonces are drawn fresh from a CSPRNG unless `nonces`
   * (12 bytes per chunk) is given — that exists for frozen test vectors only.
   */
  seal(run: ChunkRun, plain: Uint8Array, out: Uint8Array, nonces?: Uint8Array): void;
  /**
   * Opens stored chunks `sealed` into `out` (exactly sealed.length − 28 × chunks bytes).
   * Returns ALL_VERIFIED, or the run-relative index of the first chunk that failed
   * authentication; `out` is zeroed from that chunk on, so no unverified byte escapes.
   */
  open(run: ChunkRun, sealed: Uint8Array, out: Uint8Array): number;
  /** The same work spread over up to `threads` threads; resolves when all is done. */
  sealAsync(run: ChunkRun, plain: Uint8Array, out: Uint8Array, threads: number): Promise<void>;
  openAsync(run: ChunkRun, sealed: Uint8Array, out: Uint8Array, threads: number): Promise<number>;
}

export type BackendName = 'native' | 'node' | 'noble';
export const BACKEND_NAMES: readonly BackendName[] = ['native', 'node', 'noble'];
