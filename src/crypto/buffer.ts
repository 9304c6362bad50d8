import { contentContext, newFileHeader, type ContentOptions } from './context.js';
import { FileCipher } from './filecipher.js';
import { HEADER_BYTES, parseHeader } from './header.js';
import { plainSizeOf } from './geometry.js';

/**
 * Seals a whole buffer in one call: the result is a complete sealed file (docs/FORMAT.md),
 * readable by decrypt(), the decrypt stream, `sealfs decrypt` and the vault alike.
 */
export function encrypt(plaintext: Uint8Array, masterKey: Uint8Array, options?: ContentOptions): Uint8Array {
  const ctx = contentContext(masterKey, options);
  const cipher = new FileCipher(ctx, newFileHeader(ctx));
  const body = cipher.sealSync(0, true, plaintext);
  const out = new Uint8Array(HEADER_BYTES + body.length);
  out.set(cipher.header.bytes, 0);
  out.set(body, HEADER_BYTES);
  return out;
}

/** Opens a whole sealed file; throws FormatError (with the failing chunk) on any damage. */
export function decrypt(sealed: Uint8Array, masterKey: Uint8Array, options?: Pick<ContentOptions, 'backend'>): Uint8Array {
  const header = parseHeader(sealed);
  plainSizeOf(sealed.length, header.chunkSize);
  const cipher = new FileCipher(contentContext(masterKey, options), header);
  return cipher.openSync(0, true, sealed.subarray(HEADER_BYTES));
}
