import { hkdfSync } from 'node:crypto';
import { KEY_BYTES } from './ciphers.js';
import { nativeKeys } from './nativekeys.js';

const encoder = new TextEncoder();

/**
 * HKDF-SHA256 (RFC 5869) through OpenSSL: it runs once per opened file, so it must be cheap.
 * The addon's (a few µs) when it is built, else node:crypto's (about 30 µs: it fetches the KDF
 * anew on every call).
 */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const native = nativeKeys();
  return native ? native.hkdfSha256(ikm, salt, info, length) : new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

/**
 * Labels of the HKDF-SHA256 subkeys derived from the master key (docs/FORMAT.md §2).
 * Separate keys keep a weakness in one use (say, names) from touching another (contents).
 */
export const SUBKEY_INFO = {
  content: 'sealfs v1 content',
  names: 'sealfs v1 names',
  config: 'sealfs v1 config',
  dirid: 'sealfs v1 dirid',
  content2: 'sealfs v2 content',
  xattr: 'sealfs v1 xattr',
} as const;

export type SubkeyPurpose = keyof typeof SUBKEY_INFO;

/** Byte lengths: AES-SIV with AES-256 takes a 512-bit key; the others are 256-bit. */
const SUBKEY_BYTES: Readonly<Record<SubkeyPurpose, number>> = { content: 32, names: 64, config: 32, dirid: 32, content2: 32, xattr: 32 };

export function deriveSubkey(masterKey: Uint8Array, purpose: SubkeyPurpose): Uint8Array {
  if (masterKey.length !== KEY_BYTES) {
    throw new RangeError(`master key must be ${KEY_BYTES} bytes, got ${masterKey.length}`);
  }
  return hkdf(masterKey, new Uint8Array(0), encoder.encode(SUBKEY_INFO[purpose]), SUBKEY_BYTES[purpose]);
}

const FILE_KEY_INFO = encoder.encode('sealfs v1 file key');

/**
 * Each file's own content key. The salt is the whole file header, which holds a random
 * 128-bit file id, so no two files share a key and the key also commits to the cipher and
 * chunk size recorded there.
 */
export function deriveFileKey(contentKey: Uint8Array, header: Uint8Array): Uint8Array {
  return hkdf(contentKey, header, FILE_KEY_INFO, KEY_BYTES);
}

const FILE_KEYS_V2_INFO = encoder.encode('sealfs v2 file keys');

/**
 * A format-2 file's two keys (FORMAT.md §16): KD derives each chunk's one-use key from its
 * seal id, KM authenticates the index tree and the root. Salted with the header, as in v1.
 */
export function deriveFileKeysV2(contentKey2: Uint8Array, header: Uint8Array): { chunkKeyKey: Uint8Array; indexKey: Uint8Array } {
  const keys = hkdf(contentKey2, header, FILE_KEYS_V2_INFO, 2 * KEY_BYTES);
  return { chunkKeyKey: keys.subarray(0, KEY_BYTES), indexKey: keys.subarray(KEY_BYTES) };
}
