import { HEADER_BYTES } from '../header.js';

/**
 * Where every byte of a format-2 file lives (docs/FORMAT.md §18), and the only place that
 * does that arithmetic: header, root, then the chunks with each index node whose span is
 * complete stored right after it, and the last node of each level whose span is not at the end.
 */

export const ROOT_BYTES = 32;
/** Header and root: where chunk 0 starts. */
export const BODY_START = HEADER_BYTES + ROOT_BYTES;
export const SEAL_ID_BYTES = 16;
export const TAG_BYTES = 16;
/** Bytes a stored chunk adds to its plaintext: seal id and tag. */
export const CHUNK_OVERHEAD_V2 = SEAL_ID_BYTES + TAG_BYTES;
export const ENTRY_BYTES = 16;
/** Entries per index node. */
export const FANOUT = 256;
export const FULL_NODE_BYTES = FANOUT * ENTRY_BYTES;
/**
 * The largest plaintext size whose whole file, Z(S), is still an exact JavaScript integer
 * (FORMAT.md §18 "Sizes"): S plus at most 32 + 16·(1 + 1/255) bytes per chunk, 56 bytes and
 * the partial nodes (under 8 KiB per level) must stay below 2^53.
 */
export function maxPlainSizeV2(chunkSize: number): number {
  return Math.floor((Number.MAX_SAFE_INTEGER - BODY_START - 4 * FULL_NODE_BYTES) / (1 + (CHUNK_OVERHEAD_V2 + ENTRY_BYTES * (1 + 1 / 255)) / chunkSize));
}

/** The shape of one file's index tree: n chunks, and N_ℓ nodes at each level ℓ = 1..L. */
export interface TreeShape {
  readonly size: number;
  readonly chunkSize: number;
  /** n = ceil(S / C): an empty file has no chunk. */
  readonly chunks: number;
  /** counts[ℓ] = N_ℓ for ℓ = 0..L (counts[0] = n); L = counts.length − 1. */
  readonly counts: readonly number[];
}

export function treeShape(size: number, chunkSize: number): TreeShape {
  if (!Number.isSafeInteger(size) || size < 0 || size > maxPlainSizeV2(chunkSize)) throw new RangeError(`file size ${size} is not a size format 2 can hold`);
  const chunks = Math.ceil(size / chunkSize);
  const counts = [chunks];
  // Levels stop at the first with a single node; a file of at most one chunk has none.
  while (counts[counts.length - 1]! > 1) counts.push(Math.ceil(counts[counts.length - 1]! / FANOUT));
  return { size, chunkSize, chunks, counts };
}

/** L: the top level (0 when the file has at most one chunk: its top is that chunk's entry). */
export function topLevel(shape: TreeShape): number {
  return shape.counts.length - 1;
}

/** Plaintext bytes of chunk i (only the last may be shorter than C, and it is never empty). */
export function chunkPlainLength(shape: TreeShape, index: number): number {
  return Math.min(shape.chunkSize, shape.size - index * shape.chunkSize);
}

/** Complete nodes stored before chunk i: one per level ℓ ≥ 1 for every 256^ℓ chunks before it. */
function fullNodesBefore(index: number): number {
  let count = 0;
  for (let span = FANOUT; span <= index; span *= FANOUT) count += Math.floor(index / span);
  return count;
}

/** offset(chunk i) = 56 + i·(C + 32) + 4096 · Σ_ℓ floor(i / 256^ℓ). */
export function chunkOffset(index: number, chunkSize: number): number {
  return BODY_START + index * (chunkSize + CHUNK_OVERHEAD_V2) + FULL_NODE_BYTES * fullNodesBefore(index);
}

/** Entries in node k of level ℓ (ℓ ≥ 1): at most 256, the last node of a level holds the rest. */
export function nodeEntryCount(shape: TreeShape, level: number, index: number): number {
  return Math.min(FANOUT, shape.counts[level - 1]! - index * FANOUT);
}

/**
 * Whether node k of level ℓ covers all 256^ℓ chunks of its span. Only such a node sits inside
 * the body; the last node of a level whose span the file does not fill (even one with 256
 * entries, whose last child is itself incomplete) sits at the end.
 */
function spanComplete(shape: TreeShape, level: number, index: number): boolean {
  return (index + 1) * FANOUT ** level <= shape.chunks;
}

/** Levels ℓ ≥ 1 whose complete nodes end at chunk n − 1 (256^ℓ divides n). */
function fullLevelsEndingAt(shape: TreeShape): number {
  let count = 0;
  for (let level = 1, span = FANOUT; level <= topLevel(shape) && shape.chunks % span === 0; level++, span *= FANOUT) count++;
  return count;
}

/** Where the partial nodes begin: after the last chunk and the full nodes completing there. */
function tailStart(shape: TreeShape): number {
  if (shape.chunks === 0) return BODY_START;
  const last = shape.chunks - 1;
  return chunkOffset(last, shape.chunkSize) + chunkPlainLength(shape, last) + CHUNK_OVERHEAD_V2 + FULL_NODE_BYTES * fullLevelsEndingAt(shape);
}

/** Offset of node k at level ℓ (1 ≤ ℓ ≤ L). */
export function nodeOffset(shape: TreeShape, level: number, index: number): number {
  if (level < 1 || level > topLevel(shape) || index < 0 || index >= shape.counts[level]!) {
    throw new RangeError(`no index node ${index} at level ${level} in a file of ${shape.chunks} chunks`);
  }
  if (spanComplete(shape, level, index)) {
    // Right after its span's last chunk and the complete nodes of lower levels ending there.
    const lastChunk = (index + 1) * FANOUT ** level - 1;
    return (
      chunkOffset(lastChunk, shape.chunkSize) +
      chunkPlainLength(shape, lastChunk) +
      CHUNK_OVERHEAD_V2 +
      FULL_NODE_BYTES * (level - 1)
    );
  }
  let offset = tailStart(shape);
  for (let lower = 1; lower < level; lower++) {
    const last = shape.counts[lower]! - 1;
    if (!spanComplete(shape, lower, last)) offset += nodeEntryCount(shape, lower, last) * ENTRY_BYTES;
  }
  return offset;
}

/** Z(S) = 56 + S + 32·n + 16 · Σ_{ℓ=1..L} N_{ℓ−1}: the exact length of a file of S bytes. */
export function sealedSizeV2(shape: TreeShape): number {
  let entries = 0;
  for (let level = 1; level <= topLevel(shape); level++) entries += shape.counts[level - 1]!;
  return BODY_START + shape.size + CHUNK_OVERHEAD_V2 * shape.chunks + ENTRY_BYTES * entries;
}

/** Node k at level ℓ's place in its parent (level ℓ + 1): node floor(k/256), entry k mod 256. */
export function parentOf(index: number): { index: number; slot: number } {
  return { index: Math.floor(index / FANOUT), slot: index % FANOUT };
}
