import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import type { AeadBackend, ChunkRun } from '../backend.js';
import type { CipherName } from '../ciphers.js';
import { openRunWith, sealRunWith } from '../run.js';

/** @noble/ciphers, pure JavaScript: an independent second implementation to check the others. */
export function createNobleBackend(): AeadBackend {
  const aead = (cipher: CipherName, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) =>
    cipher === 'aes-256-gcm' ? gcm(key, nonce, aad) : chacha20poly1305(key, nonce, aad);
  const seal = (run: ChunkRun, plain: Uint8Array, out: Uint8Array, nonces?: Uint8Array) =>
    sealRunWith((nonce, aad, p) => aead(run.cipher, run.key, nonce, aad).encrypt(p), run, plain, out, nonces);
  const open = (run: ChunkRun, sealed: Uint8Array, out: Uint8Array) =>
    openRunWith(
      (nonce, aad, s) => {
        try {
          return aead(run.cipher, run.key, nonce, aad).decrypt(s);
        } catch {
          return null;
        }
      },
      run,
      sealed,
      out,
    );
  return {
    name: 'noble',
    seal,
    open,
    sealAsync: async (run, plain, out) => seal(run, plain, out),
    openAsync: async (run, sealed, out) => open(run, sealed, out),
  };
}
