import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { AeadBackend, ChunkRun } from '../backend.js';
import { TAG_BYTES, type CipherName } from '../ciphers.js';
import { openRunWith, sealRunWith } from '../run.js';

const options = { authTagLength: TAG_BYTES };

// Two calls so that each narrows to the overload typed with setAAD/getAuthTag.
function cipherFor(cipher: CipherName, key: Uint8Array, nonce: Uint8Array) {
  return cipher === 'aes-256-gcm' ? createCipheriv(cipher, key, nonce, options) : createCipheriv(cipher, key, nonce, options);
}

function decipherFor(cipher: CipherName, key: Uint8Array, nonce: Uint8Array) {
  return cipher === 'aes-256-gcm' ? createDecipheriv(cipher, key, nonce, options) : createDecipheriv(cipher, key, nonce, options);
}

/** node:crypto, one cipher object per chunk: the fallback when the addon cannot load. */
export function createNodeBackend(): AeadBackend {
  const sealer = (cipher: CipherName, key: Uint8Array) => (nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array) => {
    const c = cipherFor(cipher, key, nonce);
    c.setAAD(aad, { plaintextLength: plain.length });
    const body = c.update(plain);
    c.final();
    return Buffer.concat([body, c.getAuthTag()]);
  };
  const opener = (cipher: CipherName, key: Uint8Array) => (nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array) => {
    const d = decipherFor(cipher, key, nonce);
    const bodyLength = sealed.length - TAG_BYTES;
    d.setAAD(aad, { plaintextLength: bodyLength });
    d.setAuthTag(sealed.subarray(bodyLength));
    const plain = d.update(sealed.subarray(0, bodyLength));
    try {
      d.final();
    } catch {
      return null;
    }
    return plain;
  };
  const seal = (run: ChunkRun, plain: Uint8Array, out: Uint8Array, nonces?: Uint8Array) =>
    sealRunWith(sealer(run.cipher, run.key), run, plain, out, nonces);
  const open = (run: ChunkRun, sealed: Uint8Array, out: Uint8Array) => openRunWith(opener(run.cipher, run.key), run, sealed, out);
  return {
    name: 'node',
    seal,
    open,
    sealAsync: async (run, plain, out) => seal(run, plain, out),
    openAsync: async (run, sealed, out) => open(run, sealed, out),
  };
}
