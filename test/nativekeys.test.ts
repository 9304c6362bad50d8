/**
 * The addon's AES-SIV and HKDF-SHA256 (native/sealfs_keys.c) against the JavaScript versions
 * sealfs uses without it (@noble/ciphers' aessiv, node:crypto's hkdfSync): the same bytes for
 * every input shape names, symlink targets and file keys have, and no plaintext ever from a
 * sealed name that does not authenticate.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { aessiv } from '@noble/ciphers/aes.js';
import { describe, expect, it } from 'vitest';
import { nativeKeys } from '../src/crypto/nativekeys.js';

const keys = nativeKeys();
// CI builds the addon; elsewhere its absence is reported by test/native.test.ts.
const allowMissing = process.env.SEALFS_REQUIRE_NATIVE !== '1' && !process.env.CI;

describe.skipIf(!keys && allowMissing)('native AES-SIV and HKDF', () => {
  it('is built', () => {
    expect(keys).toBeDefined();
  });

  it('seals names exactly as @noble/ciphers does, and opens them again', () => {
    for (let i = 0; i < 500; i++) {
      const key = randomBytes(64);
      const ad = randomBytes([0, 8, 17][i % 3]!);
      const plain = randomBytes(1 + ((i * 7) % 300));
      const sealed = keys!.sivEncrypt(key, ad, plain);
      expect(Buffer.from(sealed).equals(Buffer.from(aessiv(key, ad).encrypt(plain)))).toBe(true);
      expect(Buffer.from(keys!.sivDecrypt(key, ad, sealed)!).equals(plain)).toBe(true);
    }
  });

  it('returns null, never bytes, for any changed bit, another key or another associated data', () => {
    const key = randomBytes(64);
    const ad = randomBytes(8);
    const sealed = keys!.sivEncrypt(key, ad, Buffer.from('report-2026.pdf'));
    for (let bit = 0; bit < sealed.length * 8; bit += 3) {
      const bad = Uint8Array.from(sealed);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      expect(keys!.sivDecrypt(key, ad, bad)).toBeNull();
    }
    expect(keys!.sivDecrypt(randomBytes(64), ad, sealed)).toBeNull();
    expect(keys!.sivDecrypt(key, randomBytes(8), sealed)).toBeNull();
    expect(keys!.sivDecrypt(key, ad, sealed.subarray(0, 15))).toBeNull();
  });

  it('refuses keys of the wrong size', () => {
    expect(() => keys!.sivEncrypt(randomBytes(32), randomBytes(8), Buffer.from('x'))).toThrow(/64 bytes/);
  });

  it('derives exactly what hkdfSync derives, with and without salt', () => {
    for (let i = 0; i < 300; i++) {
      const ikm = randomBytes(32);
      const salt = randomBytes(i % 2 ? 24 : 0);
      const info = randomBytes(i % 20);
      const length = 1 + ((i * 13) % 96);
      const expected = Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
      expect(Buffer.from(keys!.hkdfSha256(ikm, salt, info, length)).equals(expected)).toBe(true);
    }
    expect(() => keys!.hkdfSha256(randomBytes(32), randomBytes(0), randomBytes(0), 0)).toThrow(RangeError);
  });
});
