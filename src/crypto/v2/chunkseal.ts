import { createCipheriv, createDecipheriv, createHmac, randomFillSync, type Cipher, type CipherGCMTypes } from 'node:crypto';
import type { CipherName } from '../ciphers.js';
import { KEY_BYTES } from '../ciphers.js';
import { CHUNK_OVERHEAD_V2, ENTRY_BYTES, SEAL_ID_BYTES, TAG_BYTES } from './layout.js';

/**
 * The cryptography of a format-2 file (docs/FORMAT.md §16, §18): one-use chunk keys derived
 * from each chunk's seal id, the chunk AEAD, and the MACs of the index tree and the root.
 */

const ZERO_NONCE = new Uint8Array(12);
const NODE_LABEL = Buffer.from('sealfs v2 node');
const ROOT_LABEL = Buffer.from('sealfs v2 root');

export const ZERO_ENTRY = new Uint8Array(ENTRY_BYTES);

export function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

export function uint64be(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

/** K(σ) = AES-256-ECB(KD, σ) ‖ AES-256-ECB(KD, ~σ): AES as a PRF on blocks no other seal uses. */
export class ChunkKeys {
  private readonly ecb: Cipher;

  constructor(chunkKeyKey: Uint8Array) {
    this.ecb = createCipheriv('aes-256-ecb', chunkKeyKey, null).setAutoPadding(false);
  }

  keyFor(sealId: Uint8Array): Buffer {
    const blocks = Buffer.alloc(2 * SEAL_ID_BYTES);
    for (let i = 0; i < SEAL_ID_BYTES; i++) {
      blocks[i] = sealId[i]!;
      blocks[SEAL_ID_BYTES + i] = ~sealId[i]! & 0xff;
    }
    const key = this.ecb.update(blocks);
    if (key.length !== KEY_BYTES) throw new Error('AES-ECB held back a block');
    return key;
  }
}

/** Both AEADs take a 32-byte key, a 12-byte nonce and give a 16-byte tag; node:crypto types them apart. */
const aeadName = (cipher: CipherName): CipherGCMTypes => cipher as CipherGCMTypes;

function chunkAd(header: Uint8Array, index: number): Buffer {
  return Buffer.concat([header, uint64be(index)]);
}

/**
 * stored = σ ‖ C ‖ T, sealed under K(σ) with the zero nonce and ad = H ‖ uint64be(i). A fresh
 * σ every time; a tag of sixteen zero bytes (a hole's entry) is never stored.
 */
export function sealChunk(cipher: CipherName, keys: ChunkKeys, header: Uint8Array, index: number, plain: Uint8Array, sealId?: Uint8Array): Buffer {
  for (;;) {
    const sigma = sealId ?? randomFillSync(Buffer.alloc(SEAL_ID_BYTES));
    const c = createCipheriv(aeadName(cipher), keys.keyFor(sigma), ZERO_NONCE, { authTagLength: TAG_BYTES });
    c.setAAD(chunkAd(header, index), { plaintextLength: plain.length });
    const body = Buffer.concat([c.update(plain), c.final()]);
    const tag = c.getAuthTag();
    if (!isZero(tag) || sealId) return Buffer.concat([sigma, body, tag]);
  }
}

/** The tag of a stored chunk: its entry in the index. */
export function storedTag(stored: Uint8Array): Uint8Array {
  return stored.subarray(stored.length - TAG_BYTES);
}

/** Opens a stored chunk, or returns undefined when its tag does not verify (nothing released). */
export function openChunk(cipher: CipherName, keys: ChunkKeys, header: Uint8Array, index: number, stored: Uint8Array): Buffer | undefined {
  if (stored.length < CHUNK_OVERHEAD_V2) return undefined;
  const sigma = stored.subarray(0, SEAL_ID_BYTES);
  const body = stored.subarray(SEAL_ID_BYTES, stored.length - TAG_BYTES);
  const d = createDecipheriv(aeadName(cipher), keys.keyFor(sigma), ZERO_NONCE, { authTagLength: TAG_BYTES });
  d.setAAD(chunkAd(header, index), { plaintextLength: body.length });
  d.setAuthTag(storedTag(stored));
  const out = d.update(body);
  try {
    d.final();
  } catch {
    out.fill(0);
    return undefined;
  }
  return out;
}

/** hash(ℓ, k, node): zero for an all-hole node, else HMAC-SHA256(KM, label ‖ ℓ ‖ k ‖ node) cut to 16 bytes. */
export function nodeHash(indexKey: Uint8Array, level: number, index: number, node: Uint8Array): Uint8Array {
  if (isZero(node)) return ZERO_ENTRY;
  return createHmac('sha256', indexKey).update(NODE_LABEL).update(Uint8Array.of(level)).update(uint64be(index)).update(node).digest().subarray(0, ENTRY_BYTES);
}

/** M = HMAC-SHA256(KM, label ‖ H ‖ S ‖ v ‖ top) cut to 16 bytes. */
export function rootMac(indexKey: Uint8Array, header: Uint8Array, size: number, version: number, top: Uint8Array): Uint8Array {
  return createHmac('sha256', indexKey).update(ROOT_LABEL).update(header).update(uint64be(size)).update(uint64be(version)).update(top).digest().subarray(0, 16);
}
