import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { NONCE_BYTES, TAG_BYTES, type CipherName } from './ciphers.js';

const options = { authTagLength: TAG_BYTES };

/**
 * One small AEAD message (an extended attribute's value, docs/FORMAT.md §14.2): nonce ‖ C ‖ T,
 * through node:crypto. Values are at most 64 KiB and rare next to file contents, so the
 * chunk backends' batching buys nothing here.
 */
export function sealBlob(cipher: CipherName, key: Uint8Array, ad: Uint8Array, plain: Uint8Array, nonce: Uint8Array = randomBytes(NONCE_BYTES)): Buffer {
  const c = cipher === 'aes-256-gcm' ? createCipheriv(cipher, key, nonce, options) : createCipheriv(cipher, key, nonce, options);
  c.setAAD(ad, { plaintextLength: plain.length });
  const body = c.update(plain);
  c.final();
  return Buffer.concat([nonce, body, c.getAuthTag()]);
}

/** The plaintext of nonce ‖ C ‖ T, or undefined when it does not authenticate (nothing of it is released). */
export function openBlob(cipher: CipherName, key: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Buffer | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  const nonce = sealed.subarray(0, NONCE_BYTES);
  const bodyEnd = sealed.length - TAG_BYTES;
  const d = cipher === 'aes-256-gcm' ? createDecipheriv(cipher, key, nonce, options) : createDecipheriv(cipher, key, nonce, options);
  d.setAAD(ad, { plaintextLength: bodyEnd - NONCE_BYTES });
  d.setAuthTag(sealed.subarray(bodyEnd));
  const plain = d.update(sealed.subarray(NONCE_BYTES, bodyEnd));
  try {
    d.final();
  } catch {
    plain.fill(0);
    return undefined;
  }
  return plain;
}
