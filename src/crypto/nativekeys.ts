import { BACKEND_ENV } from './backends/index.js';
import { loadAddon } from './backends/native.js';

/** AES-SIV and HKDF-SHA256 through OpenSSL (native/sealfs_keys.c). */
export interface NativeKeys {
  /** V ‖ C for a non-empty plaintext, with `ad` as the one associated-data string. */
  sivEncrypt(key: Uint8Array, ad: Uint8Array, plain: Uint8Array): Uint8Array;
  /** The plaintext, or null when `sealed` does not authenticate. */
  sivDecrypt(key: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
}

let loaded: NativeKeys | null | undefined;

/**
 * The addon's name and key functions, or undefined when the addon is not built, or when
 * $SEALFS_BACKEND asks for a JavaScript backend (then nothing native is used at all).
 */
export function nativeKeys(): NativeKeys | undefined {
  if (loaded === undefined) {
    loaded = null;
    const requested = process.env[BACKEND_ENV];
    if (!requested || requested === 'native') {
      try {
        loaded = loadAddon();
      } catch {
        // Not built or not loadable: the JavaScript versions serve (selectBackend says so once).
      }
    }
  }
  return loaded ?? undefined;
}
