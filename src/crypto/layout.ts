import { CHUNK_OVERHEAD } from './ciphers.js';
import { FormatError } from './errors.js';
import { HEADER_BYTES } from './header.js';

/**
 * Geometry of a sealed file (docs/FORMAT.md §4): header, then chunks of `chunkSize`
 * plaintext bytes, each stored as nonce ‖ ciphertext ‖ tag. Every file has at least one
 * chunk — an empty file is one empty final chunk — so cutting any file down to its bare
 * header or to zero bytes is detectable.
 */
export function chunkCount(plainSize: number, chunkSize: number): number {
  return plainSize === 0 ? 1 : Math.ceil(plainSize / chunkSize);
}

export function sealedSize(plainSize: number, chunkSize: number): number {
  return HEADER_BYTES + plainSize + CHUNK_OVERHEAD * chunkCount(plainSize, chunkSize);
}

/** Offset of stored chunk `index` within the sealed file. */
export function sealedChunkOffset(index: number, chunkSize: number): number {
  return HEADER_BYTES + index * (chunkSize + CHUNK_OVERHEAD);
}

/**
 * Plaintext size of a sealed file of `size` bytes, or a FormatError if no valid file has
 * that size (cut mid-chunk, inside the header, or with a trailing empty chunk).
 */
export function plainSizeOf(size: number, chunkSize: number): number {
  if (size < HEADER_BYTES + CHUNK_OVERHEAD) {
    throw new FormatError('truncated', `file is ${size} bytes, shorter than a header and one chunk (${HEADER_BYTES + CHUNK_OVERHEAD})`);
  }
  const stored = chunkSize + CHUNK_OVERHEAD;
  const body = size - HEADER_BYTES;
  const full = Math.floor(body / stored);
  const rest = body % stored;
  if (rest === 0) return full * chunkSize;
  if (rest < CHUNK_OVERHEAD || (rest === CHUNK_OVERHEAD && full > 0)) {
    throw new FormatError('bad-size', `file size ${size} is not a valid sealed size (last chunk holds ${rest} bytes)`, full);
  }
  return full * chunkSize + rest - CHUNK_OVERHEAD;
}
