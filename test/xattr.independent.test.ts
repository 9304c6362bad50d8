/**
 * An independent reading of docs/FORMAT.md §14.2 (extended attributes): checks every frozen
 * vector of test/vectors/xattr.json with only @noble/ciphers, @noble/hashes and @scure/base,
 * importing nothing from ../src. The xattr key, the stored name (AES-SIV under NK with its own
 * label, base32, the `user.sealfs.` prefix), the stored value's layout and its associated data
 * are written down again from the text, and a value moved to another entry or name must fail.
 */
import { aessiv, gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { base32nopad } from '@scure/base';
import { describe, expect, it } from 'vitest';
import { concat, equalBytes, hex, HKDF, loadVector, subkeys, unhex, utf8 } from './vectors/spec.js';

interface XattrCase {
  cipher: string;
  cipherId: number;
  ownerKind: 'file' | 'dir';
  binding: string;
  name: string;
  storedName: string;
  value: string;
  nonce: string;
  associatedData: string;
  storedValue: string;
}
interface XattrVectors {
  masterKey: string;
  nameKey: { hex: string };
  xattrKey: { info: string; length: number; hex: string };
  cases: XattrCase[];
}

// ---- FORMAT.md §14.2, written down again -----------------------------------------------

/** §2: XK = HKDF(salt = empty, ikm = MK, info = "sealfs v1 xattr", L = 32). */
const xattrKey = (MK: Uint8Array) => HKDF(new Uint8Array(0), MK, utf8('sealfs v1 xattr'), 32);

/** §14.2: "user.sealfs." ‖ base32(AES-SIV(NK, AD = ["sealfs v1 xattr name"], N)), base32 lower case without padding. */
const storedName = (NK: Uint8Array, N: Uint8Array) => 'user.sealfs.' + base32nopad.encode(aessiv(NK, utf8('sealfs v1 xattr name')).encrypt(N)).toLowerCase();

/** §14.2: A = "sealfs v1 xattr value" ‖ 01 ‖ c ‖ k ‖ B ‖ N, k = 66 ("f") for a file, 64 ("d") for a directory. */
const valueAd = (c: number, kind: 'file' | 'dir', B: Uint8Array, N: Uint8Array) =>
  concat(utf8('sealfs v1 xattr value'), Uint8Array.of(1, c, kind === 'file' ? 0x66 : 0x64), B, N);

const aead = (c: number, key: Uint8Array, nonce: Uint8Array, ad: Uint8Array) => (c === 1 ? gcm(key, nonce, ad) : chacha20poly1305(key, nonce, ad));

/** §14.2: stored value = 01 ‖ c ‖ nonce (12) ‖ C ‖ T. */
const sealValue = (XK: Uint8Array, c: number, nonce: Uint8Array, ad: Uint8Array, V: Uint8Array) => concat(Uint8Array.of(1, c), nonce, aead(c, XK, nonce, ad).encrypt(V));

/** The reader: V, or undefined when the stored value does not authenticate for this entry and name. */
function openValue(XK: Uint8Array, kind: 'file' | 'dir', B: Uint8Array, N: Uint8Array, stored: Uint8Array): Uint8Array | undefined {
  if (stored.length < 30 || stored[0] !== 1 || (stored[1] !== 1 && stored[1] !== 2)) return undefined;
  const c = stored[1]!;
  try {
    return aead(c, XK, stored.subarray(2, 14), valueAd(c, kind, B, N)).decrypt(stored.subarray(14));
  } catch {
    return undefined;
  }
}

// ---- the checks ---------------------------------------------------------------------

const vectors = loadVector<XattrVectors>('xattr.json');
const MK = unhex(vectors.masterKey);
const { NK } = subkeys(MK);
const XK = xattrKey(MK);

describe('FORMAT.md §14.2 extended attributes, read independently (noble only)', () => {
  it('derives XK and NK as §2 says', () => {
    expect(hex(XK)).toBe(vectors.xattrKey.hex);
    expect(vectors.xattrKey).toMatchObject({ info: 'sealfs v1 xattr', length: 32 });
    expect(hex(NK)).toBe(vectors.nameKey.hex);
  });

  it('covers both ciphers, files and directories (the root too), a non-UTF-8 name and the longest name', () => {
    expect(new Set(vectors.cases.map((c) => c.cipherId))).toEqual(new Set([1, 2]));
    expect(new Set(vectors.cases.map((c) => c.ownerKind))).toEqual(new Set(['file', 'dir']));
    expect(vectors.cases.some((c) => c.binding === '0000000000000000')).toBe(true);
    expect(vectors.cases.some((c) => unhex(c.name).includes(0xff))).toBe(true);
    expect(Math.max(...vectors.cases.map((c) => c.storedName.length))).toBeLessThanOrEqual(255);
    expect(Math.max(...vectors.cases.map((c) => unhex(c.name).length))).toBe(135);
  });

  it.each(vectors.cases.map((c, i) => [i, c] as const))('case %i: stored name and stored value follow the text, and open again', (_, c) => {
    const N = unhex(c.name);
    const B = unhex(c.binding);
    const V = unhex(c.value);
    expect(B.length).toBe(c.ownerKind === 'file' ? 24 : 8);
    expect(storedName(NK, N)).toBe(c.storedName);
    expect(c.storedName.length).toBeLessThanOrEqual(255);
    const ad = valueAd(c.cipherId, c.ownerKind, B, N);
    expect(hex(ad)).toBe(c.associatedData);
    const stored = sealValue(XK, c.cipherId, unhex(c.nonce), ad, V);
    expect(hex(stored)).toBe(c.storedValue);
    expect(stored.length).toBe(V.length + 30);
    const opened = openValue(XK, c.ownerKind, B, N, unhex(c.storedValue));
    expect(opened && equalBytes(opened, V)).toBe(true);
    // The name decrypts back (AES-SIV with the same single AD component).
    const sealedName = base32nopad.decode(c.storedName.slice('user.sealfs.'.length).toUpperCase());
    expect(hex(aessiv(NK, utf8('sealfs v1 xattr name')).decrypt(sealedName))).toBe(c.name);
  });

  it('a stored value moved to another entry, another kind of entry or another name does not open; nor one damaged', () => {
    for (const c of vectors.cases) {
      const N = unhex(c.name);
      const B = unhex(c.binding);
      const stored = unhex(c.storedValue);
      const otherB = B.slice();
      otherB[B.length - 1]! ^= 1;
      expect(openValue(XK, c.ownerKind, otherB, N, stored)).toBeUndefined();
      if (c.ownerKind === 'dir') expect(openValue(XK, 'file', concat(B, new Uint8Array(16)), N, stored)).toBeUndefined();
      expect(openValue(XK, c.ownerKind, B, concat(N, utf8('x')), stored)).toBeUndefined();
      const damaged = stored.slice();
      damaged[damaged.length - 1]! ^= 0x80;
      expect(openValue(XK, c.ownerKind, B, N, damaged)).toBeUndefined();
      // The cipher id is bound too: the same bytes claimed as the other cipher fail.
      const swapped = stored.slice();
      swapped[1] = swapped[1] === 1 ? 2 : 1;
      expect(openValue(XK, c.ownerKind, B, N, swapped)).toBeUndefined();
    }
  });
});
