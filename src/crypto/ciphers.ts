/** AEAD ciphers sealfs writes. Both are on Japan's CRYPTREC recommended list. */
export type CipherName = 'aes-256-gcm' | 'chacha20-poly1305';

/** The byte stored in a file header; part of the on-disk format (docs/FORMAT.md §3). */
export const CIPHER_IDS: Readonly<Record<CipherName, number>> = {
  'aes-256-gcm': 1,
  'chacha20-poly1305': 2,
};

export const CIPHER_NAMES: readonly CipherName[] = ['aes-256-gcm', 'chacha20-poly1305'];

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** Bytes a stored chunk adds to its plaintext: nonce and tag. */
export const CHUNK_OVERHEAD = NONCE_BYTES + TAG_BYTES;

export function cipherFromId(id: number): CipherName | undefined {
  return CIPHER_NAMES.find((name) => CIPHER_IDS[name] === id);
}

export function parseCipherName(text: string): CipherName {
  const name = text.toLowerCase();
  if ((CIPHER_NAMES as readonly string[]).includes(name)) return name as CipherName;
  throw new RangeError(`unknown cipher "${text}" (choose ${CIPHER_NAMES.join(' or ')})`);
}
