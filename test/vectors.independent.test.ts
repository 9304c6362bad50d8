/**
 * An independent reading of docs/FORMAT.md: decrypts every frozen vector with only
 * @noble/ciphers and @noble/hashes. Nothing here is imported from ../src (nor from test
 * helpers that do) — the constants, the header rules, the size arithmetic and the
 * associated data are all written down again from the spec text.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { concat, fileKey, hex, HKDF, loadVector, subkeys, unhex, utf8, type ContentVectorFile, type KeysVector } from './vectors/spec.js';

// ---- FORMAT.md, written down again (§1–§2 in ./vectors/spec.ts) ---------------------------

/** §3 */
interface Header {
  H: Uint8Array;
  cipher: 1 | 2;
  C: number;
  fileId: Uint8Array;
}
function parseHeader(file: Uint8Array): Header {
  if (file.length < 24) throw new Error('shorter than a header');
  const H = file.slice(0, 24);
  if (hex(H.subarray(0, 4)) !== '5345414c') throw new Error('bad magic');
  if (H[4] !== 0x01) throw new Error(`version ${H[4]}`);
  if (H[5] !== 0x01 && H[5] !== 0x02) throw new Error(`cipher ${H[5]}`);
  const e = H[6]!;
  if (e < 12 || e > 20) throw new Error(`exponent ${e}`);
  if (H[7] !== 0x00) throw new Error('reserved byte');
  return { H, cipher: H[5] as 1 | 2, C: 2 ** e, fileId: H.slice(8, 24) };
}

/** §4: S from the sealed size Z, or an error for sizes no writer produces. */
function plainSize(Z: number, C: number): number {
  if (Z < 24 + 28) throw new Error('truncated');
  const B = Z - 24;
  const q = Math.floor(B / (C + 28));
  const r = B % (C + 28);
  if (r === 0) return q * C;
  if (r > 28 || (r === 28 && q === 0)) return q * C + r - 28;
  throw new Error(`invalid size ${Z}`);
}

/** §5 */
const aad = (H: Uint8Array, i: number, final: boolean) => {
  const index = new Uint8Array(8);
  new DataView(index.buffer).setBigUint64(0, BigInt(i));
  return concat(H, index, Uint8Array.of(final ? 1 : 0));
};
const aead = (cipher: 1 | 2, key: Uint8Array, nonce: Uint8Array, ad: Uint8Array) =>
  cipher === 1 ? gcm(key, nonce, ad) : chacha20poly1305(key, nonce, ad);

interface StoredChunk {
  index: number;
  nonce: Uint8Array;
  body: Uint8Array; // C_i ‖ T_i
  final: boolean;
}

/** §4 layout: the n stored chunks of a sealed file, each with the final flag its position implies. */
function chunksOf(file: Uint8Array, C: number): StoredChunk[] {
  const S = plainSize(file.length, C);
  const n = Math.max(1, Math.ceil(S / C));
  const chunks: StoredChunk[] = [];
  for (let i = 0; i < n; i++) {
    const start = 24 + i * (C + 28);
    const len = Math.min((i + 1) * C, S) - i * C;
    chunks.push({ index: i, nonce: file.slice(start, start + 12), body: file.slice(start + 12, start + 12 + len + 16), final: i === n - 1 });
  }
  const end = 24 + S + 28 * n;
  if (end !== file.length) throw new Error(`layout leaves ${file.length - end} bytes over`);
  return chunks;
}

/** A complete decryptor following FORMAT.md: throws on anything that does not verify. */
function openFile(file: Uint8Array, MK: Uint8Array): Uint8Array {
  const { H, cipher, C } = parseHeader(file);
  const FK = fileKey(subkeys(MK).CK, H);
  const parts = chunksOf(file, C).map((ch) => aead(cipher, FK, ch.nonce, aad(H, ch.index, ch.final)).decrypt(ch.body));
  return concat(...parts);
}

const fails = (fn: () => unknown) => {
  expect(fn).toThrow();
};

// ---- The vectors ---------------------------------------------------------------------

const keys = loadVector<KeysVector>('keys.json');
const MK = unhex(keys.masterKey);
const vectorFiles = ['aes-256-gcm-4096', 'aes-256-gcm-65536', 'chacha20-poly1305-4096', 'chacha20-poly1305-65536'].map(
  (name) => loadVector<ContentVectorFile>(`${name}.json`),
);

/** The plaintext rule of test/vectors/README.md. */
const plaintext = (S: number) => Uint8Array.from({ length: S }, (_, i) => i % 251);

describe('FORMAT.md read independently', () => {
  it('§2: master key 00..1f and the derived CK, NK, VK', () => {
    expect(hex(MK)).toBe('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    const { CK, NK, VK } = subkeys(MK);
    expect(hex(CK)).toBe(keys.contentKey.hex);
    expect(hex(NK)).toBe(keys.nameKey.hex);
    expect(hex(VK)).toBe(keys.configKey.hex);
    expect(NK.length).toBe(64);
    // "salt = empty … which RFC 5869 treats as 32 zero bytes"
    expect(hex(HKDF(new Uint8Array(32), MK, utf8('sealfs v1 content'), 32))).toBe(keys.contentKey.hex);
  });

  it('§9: the worked example header and associated data', () => {
    const H = unhex('5345414c01010c00a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    const { C, cipher, fileId } = parseHeader(H);
    expect([C, cipher, hex(fileId)]).toEqual([4096, 1, 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf']);
    expect(Math.max(1, Math.ceil(5000 / C))).toBe(2);
    expect(hex(aad(H, 0, false))).toBe(`${hex(H)}000000000000000000`);
    expect(hex(aad(H, 1, true))).toBe(`${hex(H)}000000000000000101`);
    const v = vectorFiles[0]!.cases.find((c) => c.plaintextSize === 5000)!;
    expect(v.header).toBe(hex(H));
  });

  it('§4: the overhead example (1,000,000 bytes at 64 KiB costs 472 bytes)', () => {
    const S = 1_000_000;
    const n = Math.max(1, Math.ceil(S / 65536));
    expect(n).toBe(16);
    expect(24 + 28 * n).toBe(472);
    expect(plainSize(24 + S + 28 * n, 65536)).toBe(S);
  });

  for (const file of vectorFiles) {
    describe(`${file.cipher}, chunk ${file.chunkSize}`, () => {
      it.each(file.cases.map((v) => [v.plaintextSize, v] as const))('size %i decrypts and verifies', (S, v) => {
        const sealed = unhex(v.sealed);
        expect(sealed.length).toBe(v.sealedSize);

        // Header (§3).
        const header = parseHeader(sealed);
        expect(hex(header.H)).toBe(v.header);
        expect(header.C).toBe(file.chunkSize);
        expect(header.cipher).toBe(file.cipherId);
        expect(header.cipher).toBe(file.cipher === 'aes-256-gcm' ? 1 : 2);
        expect(hex(header.fileId)).toBe(file.fileId);

        // Keys (§2).
        const FK = fileKey(subkeys(MK).CK, header.H);
        expect(hex(FK)).toBe(v.fileKey);

        // Size and layout (§4).
        expect(plainSize(sealed.length, header.C)).toBe(S);
        expect(sealed.length).toBe(24 + S + 28 * Math.max(1, Math.ceil(S / header.C)));
        const chunks = chunksOf(sealed, header.C);
        expect(chunks.length).toBe(v.chunks);

        // Chunks (§5), with the vector nonces (README: nonce_i = byte i × 12).
        const parts: Uint8Array[] = [];
        for (const ch of chunks) {
          expect(hex(ch.nonce)).toBe(hex(new Uint8Array(12).fill(ch.index)));
          const open = (final: boolean) => aead(header.cipher, FK, ch.nonce, aad(header.H, ch.index, final)).decrypt(ch.body);
          parts.push(open(ch.final));
          // The final flag really is bound: the other value fails.
          fails(() => open(!ch.final));
          // So is the index.
          fails(() => aead(header.cipher, FK, ch.nonce, aad(header.H, ch.index + 1, ch.final)).decrypt(ch.body));
        }
        const plain = concat(...parts);
        expect(plain.length).toBe(S);
        expect(hex(sha256(plain))).toBe(v.plaintextSha256);
        expect(Buffer.compare(plain, plaintext(S))).toBe(0);
        expect(Buffer.compare(openFile(sealed, MK), plain)).toBe(0);

        // Re-sealing by the spec reproduces the vector byte for byte.
        const resealed = concat(
          header.H,
          ...chunks.map((ch) =>
            concat(ch.nonce, aead(header.cipher, FK, ch.nonce, aad(header.H, ch.index, ch.final)).encrypt(parts[ch.index]!)),
          ),
        );
        expect(Buffer.compare(resealed, sealed)).toBe(0);
      });

      it('the spec decryptor rejects every cut at a chunk boundary, a bare header, and a wrong key', () => {
        for (const v of file.cases) {
          const sealed = unhex(v.sealed);
          const C = file.chunkSize;
          for (let k = 0; k < v.chunks; k++) fails(() => openFile(sealed.subarray(0, 24 + k * (C + 28)), MK));
          fails(() => openFile(sealed.subarray(0, 24), MK));
          fails(() => openFile(sealed.subarray(0, 0), MK));
          fails(() => openFile(sealed, new Uint8Array(32).fill(7)));
          // Appending a copy of the final chunk (for a full-length final chunk the size stays valid).
          const last = sealed.subarray(24 + (v.chunks - 1) * (C + 28));
          fails(() => openFile(concat(sealed, last), MK));
        }
      });
    });
  }
});
