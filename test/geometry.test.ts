/**
 * The size arithmetic of FORMAT.md §4: sealedSize and plainSizeOf are inverse, every sealed
 * size no writer produces is refused with the right kind, and chunk offsets line up.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_OVERHEAD } from '../src/crypto/ciphers.js';
import { FormatError } from '../src/crypto/errors.js';
import { chunkSizeLog2, HEADER_BYTES, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2, newHeader, parseHeader } from '../src/crypto/header.js';
import { chunkCount, plainSizeOf, runSealedLength, sealedChunkOffset, sealedSize } from '../src/crypto/geometry.js';
import { expectFormatError } from './helpers.js';

const CHUNK_SIZES = Array.from({ length: MAX_CHUNK_LOG2 - MIN_CHUNK_LOG2 + 1 }, (_, i) => 2 ** (MIN_CHUNK_LOG2 + i));

/** The spec's own recipe (§4), written out independently of layout.ts. */
function specPlainSize(Z: number, C: number): number | 'truncated' | 'invalid' {
  if (Z < 24 + 28) return 'truncated';
  const B = Z - 24;
  const q = Math.floor(B / (C + 28));
  const r = B % (C + 28);
  if (r === 0) return q * C;
  if (r > 28 || (r === 28 && q === 0)) return q * C + r - 28;
  return 'invalid';
}

function check(Z: number, C: number): void {
  const spec = specPlainSize(Z, C);
  if (spec === 'truncated') {
    expectFormatError(() => plainSizeOf(Z, C), 'truncated');
  } else if (spec === 'invalid') {
    const err = expectFormatError(() => plainSizeOf(Z, C), 'bad-size');
    expect(err.chunk).toBe(Math.floor((Z - HEADER_BYTES) / (C + CHUNK_OVERHEAD)));
  } else {
    const S = plainSizeOf(Z, C);
    if (S !== spec || sealedSize(S, C) !== Z) expect.fail(`size ${Z} at chunk ${C}: plainSizeOf ${S}, spec ${spec}, back ${sealedSize(S, C)}`);
  }
}

describe('layout', () => {
  it('the constants of FORMAT.md', () => {
    expect(HEADER_BYTES).toBe(24);
    expect(CHUNK_OVERHEAD).toBe(28);
    expect(CHUNK_SIZES).toEqual([4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576]);
  });

  it.each(CHUNK_SIZES)('chunk %i: sealedSize and plainSizeOf are inverse on sizes around every early boundary', (C) => {
    const stored = C + CHUNK_OVERHEAD;
    // Every plaintext size within 40 bytes of 0..5 chunks, and a few far away.
    const sizes = new Set<number>();
    for (let k = 0; k <= 5; k++) for (let d = -40; d <= 40; d++) if (k * C + d >= 0) sizes.add(k * C + d);
    for (const S of [C * 1000 + 1, C * 123_457 - 1, 2 ** 40, 2 ** 40 + 1, 2 ** 50 + 3]) sizes.add(S);
    for (const S of sizes) {
      const Z = sealedSize(S, C);
      const n = chunkCount(S, C);
      expect(n).toBe(Math.max(1, Math.ceil(S / C)));
      expect(Z).toBe(HEADER_BYTES + S + CHUNK_OVERHEAD * n);
      expect(plainSizeOf(Z, C)).toBe(S);
      expect(runSealedLength(S, C)).toBe(Z - HEADER_BYTES);
      expect(sealedChunkOffset(n - 1, C) + CHUNK_OVERHEAD + (S - (n - 1) * C)).toBe(Z);
      expect(sealedChunkOffset(n, C)).toBe(HEADER_BYTES + n * stored);
    }
    // Every sealed size Z in [0, 4 chunks + 100] and around the next boundaries.
    const last = HEADER_BYTES + 4 * stored + 100;
    for (let Z = 0; Z <= last; Z += C <= 65536 ? 1 : 1 + (Z % 7)) check(Z, C);
    for (let k = 0; k <= 6; k++) for (let d = -60; d <= 60; d++) check(HEADER_BYTES + k * stored + d, C);
  });

  it('the set of valid sealed sizes is exactly the image of sealedSize (4 KiB, 64 KiB)', () => {
    for (const C of [4096, 65536]) {
      const valid = new Set<number>();
      for (let S = 0; S <= 3 * C + 1; S++) valid.add(sealedSize(S, C));
      const top = sealedSize(3 * C + 1, C);
      for (let Z = 0; Z <= top; Z++) {
        let ok: boolean;
        try {
          plainSizeOf(Z, C);
          ok = true;
        } catch (err) {
          if (!(err instanceof FormatError)) throw err;
          ok = false;
        }
        if (ok !== valid.has(Z)) expect.fail(`size ${Z} at chunk ${C}: plainSizeOf ${ok ? 'accepts' : 'rejects'} it`);
      }
      // sealedSize is strictly increasing, so it is one-to-one.
      for (let S = 1; S <= 3 * C + 1; S++) if (!(sealedSize(S, C) > sealedSize(S - 1, C))) expect.fail(`not increasing at ${S}`);
    }
  });

  it('random sizes up to 2^50 at every chunk size (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CHUNK_SIZES), fc.integer({ min: 0, max: 2 ** 50 }), (C, S) => {
        const Z = sealedSize(S, C);
        expect(plainSizeOf(Z, C)).toBe(S);
        check(Z + 1, C);
        check(Z - 1, C);
        check(Z + CHUNK_OVERHEAD, C);
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...CHUNK_SIZES), fc.integer({ min: 0, max: 2 ** 52 }), (C, Z) => check(Z, C)),
      { numRuns: 3000 },
    );
  });

  it('the specific invalid sizes of §4', () => {
    for (const C of CHUNK_SIZES) {
      const stored = C + CHUNK_OVERHEAD;
      for (let Z = 0; Z < HEADER_BYTES + CHUNK_OVERHEAD; Z++) expectFormatError(() => plainSizeOf(Z, C), 'truncated');
      expect(plainSizeOf(HEADER_BYTES + CHUNK_OVERHEAD, C)).toBe(0); // r = 28, q = 0: the empty file
      for (let q = 1; q <= 3; q++) {
        for (let r = 1; r <= CHUNK_OVERHEAD; r++) expectFormatError(() => plainSizeOf(HEADER_BYTES + q * stored + r, C), 'bad-size', q);
        expect(plainSizeOf(HEADER_BYTES + q * stored, C)).toBe(q * C);
        expect(plainSizeOf(HEADER_BYTES + q * stored + CHUNK_OVERHEAD + 1, C)).toBe(q * C + 1);
      }
    }
  });

  it('chunk sizes: only powers of two from 4 KiB to 1 MiB', () => {
    for (const C of CHUNK_SIZES) {
      expect(2 ** chunkSizeLog2(C)).toBe(C);
      const header = newHeader('chacha20-poly1305', C);
      expect(header.bytes[6]).toBe(Math.log2(C));
      expect(parseHeader(header.bytes).chunkSize).toBe(C);
    }
    for (const bad of [0, 1, 2048, 4095, 4097, 3 * 4096, 2 ** 21, 2 ** 30, -4096, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => chunkSizeLog2(bad)).toThrow(RangeError);
      expect(() => newHeader('aes-256-gcm', bad)).toThrow(RangeError);
    }
    const header = Uint8Array.from(newHeader('aes-256-gcm', 4096).bytes);
    for (const e of [0, 11, 21, 255]) {
      header[6] = e;
      expectFormatError(() => parseHeader(header), 'bad-header');
    }
  });

  it('header fields other than the chunk size are validated too', () => {
    const good = newHeader('aes-256-gcm', 65536).bytes;
    const mutate = (at: number, value: number) => {
      const h = Uint8Array.from(good);
      h[at] = value;
      return h;
    };
    expect(parseHeader(good).cipher).toBe('aes-256-gcm');
    expect(parseHeader(mutate(5, 2)).cipher).toBe('chacha20-poly1305');
    for (const [at, value] of [
      [0, 0x54], [3, 0], [4, 0], [4, 2], [5, 0], [5, 3], [5, 0xff], [7, 1], [7, 0x80],
    ] as const) {
      expectFormatError(() => parseHeader(mutate(at, value)), 'bad-header');
    }
    for (let n = 0; n < HEADER_BYTES; n++) expectFormatError(() => parseHeader(good.subarray(0, n)), 'truncated');
    expectFormatError(() => parseHeader(Uint8Array.of(0x50, 0x4b, 3, 4)), 'bad-header');
    expect(() => newHeader('aes-256-gcm', 4096, new Uint8Array(15))).toThrow(RangeError);
  });
});
