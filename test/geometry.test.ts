/**
 * Every function of src/crypto/geometry.ts against FORMAT.md §4's formulas, written out
 * here independently: sealedSize and plainSizeOf are inverse, every sealed size no writer
 * produces is refused with the right kind, chunk offsets and ranges line up, runs split and
 * read back, and the streaming hold-back and tail checks follow the same rule.
 * (test/geometry.native.test.ts checks the addon's C copy against this module.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_OVERHEAD } from '../src/crypto/ciphers.js';
import { FormatError } from '../src/crypto/errors.js';
import { chunkSizeLog2, HEADER_BYTES, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2, newHeader, parseHeader } from '../src/crypto/header.js';
import {
  batchesToRelease,
  checkRunEnd,
  chunkCount,
  chunkIndexAt,
  chunkPlainStart,
  chunksPerBatch,
  chunksPlainRange,
  finalTailDefect,
  isRunDefect,
  lastChunkIndex,
  plainSizeOf,
  plainSizeShown,
  runChunkAt,
  runChunkLength,
  runChunkOffset,
  runOfPlain,
  runOfSealed,
  runSealedLength,
  sealedChunkOffset,
  sealedSize,
  storedChunkBytes,
  type RunDefect,
} from '../src/crypto/geometry.js';
import { expectFormatError } from './helpers.js';

const CHUNK_SIZES = Array.from({ length: MAX_CHUNK_LOG2 - MIN_CHUNK_LOG2 + 1 }, (_, i) => 2 ** (MIN_CHUNK_LOG2 + i));

/** The spec's own recipe (§4), written out independently of geometry.ts. */
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

/** §4 for a run (a sealed file without its header) of L stored bytes: the defect, or undefined. */
function specRunDefect(L: number, C: number): Pick<RunDefect, 'defect' | 'chunk' | 'lastStored'> | undefined {
  if (L === 0) return { defect: 'no-chunk', chunk: 0, lastStored: 0 };
  const q = Math.floor(L / (C + 28));
  const r = L % (C + 28);
  if (r > 0 && r < 28) return { defect: 'short-chunk', chunk: q, lastStored: r };
  if (r === 28 && q > 0) return { defect: 'empty-chunk', chunk: q, lastStored: r };
  return undefined;
}

/** Plaintext sizes worth checking at chunk size C: around the first boundaries, and far away. */
function plainSizesFor(C: number): number[] {
  const sizes = new Set<number>();
  for (let k = 0; k <= 4; k++) for (let d = -30; d <= 30; d++) if (k * C + d >= 0) sizes.add(k * C + d);
  for (const S of [C * 1000 + 1, C * 123_457 - 1, 2 ** 40, 2 ** 40 + 1, 2 ** 50 + 3]) sizes.add(S);
  return [...sizes];
}

describe('geometry', () => {
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

  it.each(CHUNK_SIZES)('chunk %i: runOfPlain, chunk indices and plaintext ranges follow §4', (C) => {
    for (const S of plainSizesFor(C)) {
      const n = Math.max(1, Math.ceil(S / C));
      const run = runOfPlain(S, C);
      expect(run).toEqual({ chunkSize: C, count: n, plainLength: S, sealedLength: S + 28 * n, lastLength: S - (n - 1) * C });
      expect(runSealedLength(S, C)).toBe(S + 28 * n);
      expect(lastChunkIndex(S, C)).toBe(n - 1);
      // Chunk i holds [i·C, min((i+1)·C, S)); only the last may be shorter, and empty only when S = 0.
      for (const i of new Set([0, 1, n - 2, n - 1].filter((i) => i >= 0 && i < n))) {
        const range = chunksPlainRange(i, i, S, C);
        expect(range).toEqual({ start: i * C, end: Math.min((i + 1) * C, S) });
        expect(chunkPlainStart(i, C)).toBe(i * C);
        expect(runChunkLength(run, i)).toBe(range.end - range.start);
        if (i < n - 1) expect(runChunkLength(run, i)).toBe(C);
        if (range.end > range.start) {
          expect(chunkIndexAt(range.start, C)).toBe(i);
          expect(chunkIndexAt(range.end - 1, C)).toBe(i);
        }
      }
      expect(chunksPlainRange(0, n - 1, S, C)).toEqual({ start: 0, end: S });
      if (S > 0) expect(chunkIndexAt(S - 1, C)).toBe(n - 1);
      expect(runChunkLength(run, n - 1) === 0).toBe(S === 0);
    }
  });

  it.each(CHUNK_SIZES)('chunk %i: runOfSealed accepts exactly the stored lengths runOfPlain makes, and names the faulty chunk otherwise', (C) => {
    const stored = C + 28;
    expect(storedChunkBytes(C)).toBe(stored);
    const lengths = new Set<number>();
    for (let k = 0; k <= 5; k++) for (let d = -40; d <= 40; d++) if (k * stored + d >= 0) lengths.add(k * stored + d);
    for (const L of [2 ** 45 + 17, 2 ** 52 - 1]) for (let d = 0; d <= 60; d++) lengths.add(L - d);
    for (const L of lengths) {
      const run = runOfSealed(L, C);
      const spec = specRunDefect(L, C);
      if (spec) {
        expect(isRunDefect(run), `${L}`).toBe(true);
        expect(run).toEqual(spec);
      } else {
        if (isRunDefect(run)) expect.fail(`${L} bytes at chunk ${C}: refused as ${run.defect}`);
        expect(run.sealedLength).toBe(L);
        expect(run).toEqual(runOfPlain(L - 28 * Math.ceil(L / stored), C));
        // The same answer as §4's recipe for the sealed file of header + L bytes.
        expect(run.plainLength).toBe(specPlainSize(24 + L, C));
      }
    }
  });

  it('runOfSealed and runOfPlain are inverse at every chunk size (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CHUNK_SIZES), fc.integer({ min: 0, max: 2 ** 50 }), (C, S) => {
        const run = runOfPlain(S, C);
        expect(runOfSealed(run.sealedLength, C)).toEqual(run);
        for (const L of [run.sealedLength + 1, run.sealedLength - 1, run.sealedLength + 28]) {
          const back = runOfSealed(L, C);
          const spec = specRunDefect(L, C);
          if (spec) expect(back).toEqual(spec);
          else expect(isRunDefect(back) ? back : back.plainLength).toBe(specPlainSize(24 + L, C));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it.each(CHUNK_SIZES)('chunk %i: offsets within a run and within the file; the chunk a stored byte falls in', (C) => {
    const stored = C + 28;
    for (const k of [0, 1, 2, 7, 1000, 2 ** 30]) {
      expect(runChunkOffset(k, C)).toBe(k * stored);
      expect(sealedChunkOffset(k, C)).toBe(24 + k * stored);
      expect(runChunkAt(k * stored, C)).toBe(k);
      expect(runChunkAt(k * stored + stored - 1, C)).toBe(k);
      if (k > 0) expect(runChunkAt(k * stored - 1, C)).toBe(k - 1);
    }
  });

  it('a run that does not end the file must end on a chunk boundary (RangeError)', () => {
    const C = 4096;
    for (const S of [0, 1, C - 1, C, C + 1, 2 * C, 5 * C + 7]) {
      const run = runOfPlain(S, C);
      expect(() => checkRunEnd(run, 9, true)).not.toThrow();
      if (S > 0 && S % C === 0) expect(() => checkRunEnd(run, 9, false)).not.toThrow();
      else expect(() => checkRunEnd(run, 9, false)).toThrow(new RangeError(`chunk ${9 + run.count - 1} is short (${S - (run.count - 1) * C} bytes) but not the file's final chunk`));
    }
  });

  it.each(CHUNK_SIZES)('chunk %i: plainSizeShown is plainSizeOf, or the whole chunks a damaged size holds', (C) => {
    for (let Z = 0; Z <= 24 + 3 * (C + 28) + 60; Z += Z < 300 ? 1 : 53) {
      const spec = specPlainSize(Z, C);
      expect(plainSizeShown(Z, C)).toBe(typeof spec === 'number' ? spec : Math.max(0, Math.floor((Z - 24) / (C + 28)) * C));
    }
  });

  it('batches: whole batches of at least one chunk; a stream always holds back at least one byte', () => {
    for (const C of CHUNK_SIZES) {
      expect(chunksPerBatch(C - 1, C)).toBe(1);
      expect(chunksPerBatch(4 * 1024 * 1024, C)).toBe(Math.max(1, Math.floor(4 * 1024 * 1024 / C)));
      expect(chunksPerBatch(3 * C + C - 1, C)).toBe(3);
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 24 }), (buffered, batch) => {
        const k = batchesToRelease(buffered, batch);
        // The most batches that still leave a byte behind (none when nothing is held).
        expect(k * batch < buffered || buffered === 0).toBe(true);
        expect((k + 1) * batch >= buffered).toBe(true);
        expect(k).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 3000 },
    );
    for (const [buffered, k] of [[0, 0], [1, 0], [100, 0], [101, 1], [200, 1], [201, 2]] as const) expect(batchesToRelease(buffered, 100)).toBe(k);
  });

  it.each(CHUNK_SIZES)('chunk %i: a stream\'s final tail is valid exactly when the whole file is (§4), with file-wide chunk numbers', (C) => {
    const stored = C + 28;
    for (const before of [0, 1, 16, 32]) {
      for (let k = 0; k <= 3; k++) {
        for (let d = -30; d <= 30; d++) {
          const tail = k * stored + d;
          if (tail < 0) continue;
          const defect = finalTailDefect(before, tail, C);
          if (tail === 0) {
            expect(defect).toEqual({ defect: 'no-chunk', chunk: before, lastStored: 0 });
            continue;
          }
          const body = before * stored + tail;
          const spec = specRunDefect(body, C);
          expect(defect, `${before} chunks, then ${tail} bytes`).toEqual(spec);
          if (!spec) expect(specPlainSize(24 + body, C)).toBe(before * C + (runOfSealed(tail, C) as { plainLength: number }).plainLength);
        }
      }
    }
  });
});
