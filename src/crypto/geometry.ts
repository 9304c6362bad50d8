import { CHUNK_OVERHEAD } from './ciphers.js';
import { FormatError } from './errors.js';
import { HEADER_BYTES } from './header.js';

/**
 * Chunk geometry of a sealed file (docs/FORMAT.md §4), and the only place that does its
 * arithmetic: a header, then the plaintext cut into chunks of C bytes, chunk i stored as
 * nonce ‖ ciphertext ‖ tag (C + 28 bytes, the last chunk possibly shorter). Every file has
 * at least one chunk — an empty file is one empty final chunk — so cutting any file down
 * to its bare header or to nothing is detectable.
 *
 * A "run" is what one backend call seals or opens: consecutive stored chunks without the
 * header. native/sealfs_aead.c computes run geometry again in C (it must); its exported
 * `runGeometry` is checked against runOfPlain and runOfSealed by test/geometry.native.test.ts.
 */

/** Stored bytes of a full chunk: C plaintext bytes plus nonce and tag (§4). */
export function storedChunkBytes(chunkSize: number): number {
  return chunkSize + CHUNK_OVERHEAD;
}

/** n = max(1, ceil(S / C)) (§4): an empty file still has its one, empty, chunk. */
export function chunkCount(plainSize: number, chunkSize: number): number {
  return plainSize === 0 ? 1 : Math.ceil(plainSize / chunkSize);
}

/** Index n − 1 of the final chunk of a file of `plainSize` bytes. */
export function lastChunkIndex(plainSize: number, chunkSize: number): number {
  return chunkCount(plainSize, chunkSize) - 1;
}

/** The chunk holding plaintext byte `position` (or that would, for a position at the end). */
export function chunkIndexAt(position: number, chunkSize: number): number {
  return Math.floor(position / chunkSize);
}

/** Where chunk `index` starts in the plaintext: index · C. */
export function chunkPlainStart(index: number, chunkSize: number): number {
  return index * chunkSize;
}

/**
 * The plaintext bytes [start, end) that chunks first..last of a file of `plainSize` bytes
 * hold: chunk i holds [i·C, min((i+1)·C, S)) (§4).
 */
export function chunksPlainRange(first: number, last: number, plainSize: number, chunkSize: number): { start: number; end: number } {
  return { start: first * chunkSize, end: Math.min((last + 1) * chunkSize, plainSize) };
}

/** Whole chunks in `bytes` of plaintext, at least one: how many chunks a batch of that size takes. */
export function chunksPerBatch(bytes: number, chunkSize: number): number {
  return Math.max(1, Math.floor(bytes / chunkSize));
}

/** sealed size = 24 + S + 28·n (§4). */
export function sealedSize(plainSize: number, chunkSize: number): number {
  return HEADER_BYTES + runSealedLength(plainSize, chunkSize);
}

/** Offset of stored chunk `index` within the sealed file: 24 + i·(C+28) (§4). */
export function sealedChunkOffset(index: number, chunkSize: number): number {
  return HEADER_BYTES + runChunkOffset(index, chunkSize);
}

/** Offset of the run's k-th stored chunk within the run: every chunk before it is full. */
export function runChunkOffset(k: number, chunkSize: number): number {
  return k * storedChunkBytes(chunkSize);
}

/** The run-relative chunk that stored byte `offset` of a run falls in. */
export function runChunkAt(offset: number, chunkSize: number): number {
  return Math.floor(offset / storedChunkBytes(chunkSize));
}

/**
 * A run of consecutive chunks: `count` chunks, all holding chunkSize plaintext bytes but the
 * last, which holds `lastLength` (1..C, or 0 when it is the run's only chunk).
 */
export interface RunGeometry {
  readonly chunkSize: number;
  readonly count: number;
  readonly plainLength: number;
  /** plainLength + 28 · count. */
  readonly sealedLength: number;
  readonly lastLength: number;
}

/** The run that seals `plainLength` bytes: every plaintext length has one. */
export function runOfPlain(plainLength: number, chunkSize: number): RunGeometry {
  const count = chunkCount(plainLength, chunkSize);
  return {
    chunkSize,
    count,
    plainLength,
    sealedLength: plainLength + CHUNK_OVERHEAD * count,
    lastLength: plainLength - (count - 1) * chunkSize,
  };
}

/** Stored bytes of the run that seals `plainLength` bytes (the sealed file minus its header). */
export function runSealedLength(plainLength: number, chunkSize: number): number {
  return runOfPlain(plainLength, chunkSize).sealedLength;
}

/** Plaintext bytes of the run's chunk k. */
export function runChunkLength(run: RunGeometry, k: number): number {
  return k < run.count - 1 ? run.chunkSize : run.lastLength;
}

/**
 * Why no writer produces a run of some stored length: it has no chunk at all, its last
 * stored chunk is shorter than nonce and tag (`short-chunk`: it was cut inside a chunk), or
 * it ends in an empty chunk after others (`empty-chunk`: only a sole chunk may be empty).
 * `chunk` is the run-relative index of the chunk at fault; `lastStored` its stored bytes.
 */
export interface RunDefect {
  readonly defect: 'no-chunk' | 'short-chunk' | 'empty-chunk';
  readonly chunk: number;
  readonly lastStored: number;
}

export function isRunDefect(shape: RunGeometry | RunDefect): shape is RunDefect {
  return 'defect' in shape;
}

/**
 * The run stored in `sealedLength` bytes, or why there is none. Inverse of runOfPlain: a
 * length is valid exactly when runOfPlain gives it for some plaintext length. This is
 * §4's recipe without the header: q = floor(B / (C+28)), r = B mod (C+28); r = 0 (q > 0),
 * r > 28, or r = 28 with q = 0 is valid; anything else is not.
 */
export function runOfSealed(sealedLength: number, chunkSize: number): RunGeometry | RunDefect {
  if (sealedLength === 0) return { defect: 'no-chunk', chunk: 0, lastStored: 0 };
  const stored = storedChunkBytes(chunkSize);
  const count = Math.ceil(sealedLength / stored);
  const lastStored = sealedLength - (count - 1) * stored;
  if (lastStored < CHUNK_OVERHEAD) return { defect: 'short-chunk', chunk: count - 1, lastStored };
  if (lastStored === CHUNK_OVERHEAD && count > 1) return { defect: 'empty-chunk', chunk: count - 1, lastStored };
  return runOfPlain(sealedLength - CHUNK_OVERHEAD * count, chunkSize);
}

/**
 * A run that does not end the file must end on a chunk boundary: a short chunk anywhere but
 * at the end of the file is never written. A RangeError: callers build runs, files don't.
 */
export function checkRunEnd(run: RunGeometry, firstIndex: number, endsFile: boolean): void {
  if (run.lastLength < run.chunkSize && !endsFile) {
    throw new RangeError(`chunk ${firstIndex + run.count - 1} is short (${run.lastLength} bytes) but not the file's final chunk`);
  }
}

/**
 * Plaintext size S of a sealed file of `size` bytes (§4), or a FormatError if no valid file
 * has that size: 'truncated' below header plus one chunk (24 + 28), else 'bad-size' naming
 * the chunk cut mid-way or the trailing empty chunk.
 */
export function plainSizeOf(size: number, chunkSize: number): number {
  if (size < HEADER_BYTES + CHUNK_OVERHEAD) {
    throw new FormatError('truncated', `file is ${size} bytes, shorter than a header and one chunk (${HEADER_BYTES + CHUNK_OVERHEAD})`);
  }
  const run = runOfSealed(size - HEADER_BYTES, chunkSize);
  if (isRunDefect(run)) {
    throw new FormatError('bad-size', `file size ${size} is not a valid sealed size (last chunk holds ${run.lastStored} bytes)`, run.chunk);
  }
  return run.plainLength;
}

/**
 * What a file of `size` stored bytes shows as: its plaintext size, or for a size no writer
 * produces, the plaintext of the whole stored chunks it holds (reading it then fails).
 */
export function plainSizeShown(size: number, chunkSize: number): number {
  try {
    return plainSizeOf(size, chunkSize);
  } catch {
    return Math.max(0, runChunkAt(size - HEADER_BYTES, chunkSize) * chunkSize);
  }
}

/**
 * How many whole batches of `batchBytes` a stream may pass on when it holds `buffered`
 * bytes. Which chunk is the file's final one (the one with the final flag) is known only
 * once the input ends, so a stream always holds back at least one byte beyond the batches
 * it releases: the final chunk is then always among what it holds at the end.
 */
export function batchesToRelease(buffered: number, batchBytes: number): number {
  return buffered === 0 ? 0 : Math.floor((buffered - 1) / batchBytes);
}

/**
 * The streaming flush check: a decrypting stream has opened `chunksBefore` full chunks as
 * non-final and its input ends with `tailLength` stored bytes held back. Those must be the
 * file's final chunks: undefined when they can be, else the defect, with a file-wide
 * chunk index. Unlike a whole run, a tail after other chunks may not be one empty chunk.
 */
export function finalTailDefect(chunksBefore: number, tailLength: number, chunkSize: number): RunDefect | undefined {
  const run = runOfSealed(tailLength, chunkSize);
  if (isRunDefect(run)) return { ...run, chunk: chunksBefore + run.chunk };
  if (run.plainLength === 0 && chunksBefore > 0) return { defect: 'empty-chunk', chunk: chunksBefore, lastStored: CHUNK_OVERHEAD };
  return undefined;
}

/**
 * The largest plaintext size a file may have when its sealed file may hold at most
 * `maxSealedBytes` bytes (the cipher folder's own largest file), and never more than the
 * sizes JavaScript counts exactly (2^53 − 1): the last full chunks that fit, then as much of
 * a partial chunk as the rest leaves room for after its nonce and tag.
 */
export function maxPlainSize(maxSealedBytes: number, chunkSize: number): number {
  const run = Math.min(maxSealedBytes, Number.MAX_SAFE_INTEGER) - HEADER_BYTES;
  if (run < CHUNK_OVERHEAD) return 0;
  const full = Math.floor(run / storedChunkBytes(chunkSize));
  return full * chunkSize + Math.max(0, run - full * storedChunkBytes(chunkSize) - CHUNK_OVERHEAD);
}
