import { sha256 } from '@noble/hashes/sha2.js';
import { toBase32 } from './encoding.js';

/**
 * Long-name scheme (docs/FORMAT.md §10.3): an encoded name longer than the vault's limit is
 * stored as `<hash>.sfl`, with the full encoded name in the sidecar file `<hash>.sfn`.
 * The hash is the first 128 bits of SHA-256 of the full encoded name, so the sidecar is
 * checked against the entry's own name and identical on every replica.
 */
export const LONG_HASH_CHARS = 26;
export const LONG_DATA_SUFFIX = '.sfl';
export const LONG_NAME_SUFFIX = '.sfn';

export function longNameHash(encoded: string): string {
  return toBase32(sha256(new TextEncoder().encode(encoded)).subarray(0, 16));
}
