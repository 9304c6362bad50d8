/**
 * Every way of damaging a sealed file must fail loudly, in every reader and with every
 * backend: bit flips anywhere, cuts anywhere, chunks moved between or within files, swapped
 * headers, appended or duplicated chunks, the wrong key. And no reader may release
 * plaintext of a failed chunk or of anything after it.
 */
import { describe, expect, it } from 'vitest';
import type { BackendName } from '../src/crypto/backend.js';
import { CHUNK_OVERHEAD, CIPHER_NAMES, NONCE_BYTES, TAG_BYTES, type CipherName } from '../src/crypto/ciphers.js';
import { contentContext } from '../src/crypto/context.js';
import type { FormatProblem } from '../src/crypto/errors.js';
import { HEADER_BYTES } from '../src/crypto/header.js';
import { sealedChunkOffset, storedChunkBytes } from '../src/crypto/geometry.js';
import { createDecryptStream, decrypt, encrypt, FormatError, generateMasterKey, MemoryStore, SealedFile } from '../src/index.js';
import {
  BACKENDS,
  checkFormatError,
  expectBytes,
  expectFormatError,
  expectFormatErrorAsync,
  feedStream,
  pattern,
  requireEveryBackend,
  runStream,
  same,
} from './helpers.js';

const KEY = generateMasterKey();
const C = 4096;
const STORED = storedChunkBytes(C);

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
/** Stored chunk i of a sealed file (nonce ‖ ciphertext ‖ tag). */
const chunkOf = (file: Uint8Array, i: number) => file.subarray(sealedChunkOffset(i, C), Math.min(file.length, sealedChunkOffset(i + 1, C)));
const chunksOf = (file: Uint8Array, n: number) => Array.from({ length: n }, (_, i) => chunkOf(file, i));

/** Decrypts through the stream with odd pieces; returns what was emitted and the error. */
async function streamOpen(sealed: Uint8Array, backend: BackendName) {
  return feedStream(createDecryptStream(KEY, { backend }), sealed, [1000, 3, 5000, 17]);
}

/** Both readers must fail, with a FormatError (of `kind`/`chunk` when given), releasing nothing. */
async function expectBothFail(sealed: Uint8Array, backend: BackendName, kind?: FormatProblem | FormatProblem[], chunk?: number) {
  expectFormatError(() => decrypt(sealed, KEY, { backend }), kind, chunk);
  const { output, error } = await streamOpen(sealed, backend);
  checkFormatError(error, kind, chunk);
  expect(output.length).toBe(0);
}

/** Whether a flip at offset i of a sealed file of `length` bytes is tried with every backend. */
function everyBackendFlips(i: number, length: number): boolean {
  if (i < HEADER_BYTES) return true;
  const start = HEADER_BYTES + Math.floor((i - HEADER_BYTES) / STORED) * STORED;
  const end = Math.min(start + STORED, length);
  return i - start < NONCE_BYTES + 32 || end - i <= TAG_BYTES + 32;
}

/** What a cut of a sealed file of n chunks to `length` bytes must report. */
function expected(length: number, n: number, stream: boolean): { kind: FormatProblem | FormatProblem[]; chunk?: number } {
  if (length < HEADER_BYTES) return { kind: 'truncated' };
  const k = Math.floor((length - HEADER_BYTES) / STORED);
  const r = (length - HEADER_BYTES) % STORED;
  if (r === 0) return k === 0 ? { kind: 'truncated', ...(stream ? { chunk: 0 } : {}) } : { kind: 'truncated', chunk: k - 1 };
  if (r < CHUNK_OVERHEAD) {
    // Buffer API: no valid size (FORMAT.md §4); stream: the input was cut inside chunk k.
    if (stream) return { kind: 'truncated', chunk: k };
    return k === 0 ? { kind: 'truncated' } : { kind: 'bad-size', chunk: k };
  }
  if (r === CHUNK_OVERHEAD && k > 0) return { kind: 'bad-size', chunk: k };
  expect(k).toBeLessThan(n);
  return { kind: 'corrupt-chunk', chunk: k };
}

requireEveryBackend();

describe.each(CIPHER_NAMES)('%s', (cipher: CipherName) => {
  it('(b) a 2-chunk file cut at every byte fails in decrypt(), backends taking turns', () => {
    const sealed = encrypt(pattern(C + 100), KEY, { cipher, chunkSize: C });
    for (let length = 0; length < sealed.length; length++) {
      const backend = BACKENDS[length % BACKENDS.length]!;
      const want = expected(length, 2, false);
      expectFormatError(() => decrypt(sealed.subarray(0, length), KEY, { backend }), want.kind, want.chunk);
    }
  });

  describe.each(BACKENDS)('%s', (backend) => {
    const seal = (size: number) => encrypt(pattern(size), KEY, { backend, cipher, chunkSize: C });

    describe('(a) flipping any single byte', () => {
      // 0 bytes (header + one empty chunk), 100 bytes, and two chunks (full + 100 bytes).
      const files = [0, 100, C + 100].map((size) => [size, seal(size)] as const);

      it.each(files)('of a %i-byte file: xor 0x01 at every offset, 0x80 at many, both readers', async (_size, sealed) => {
        // Every offset is flipped by some backend: the header, every nonce and tag, and the first
        // and last 32 ciphertext bytes of each chunk by every backend; the ciphertext between by
        // the backends taking turns (all three verify the same tag over the same bytes).
        const mine = BACKENDS.indexOf(backend);
        const offsets = Array.from({ length: sealed.length }, (_, i) => i).filter(
          (i) => everyBackendFlips(i, sealed.length) || i % BACKENDS.length === mine,
        );
        const masks: [number, number][] = [
          ...offsets.map((i) => [i, 0x01] as [number, number]),
          ...offsets.filter((i) => everyBackendFlips(i, sealed.length) || i % 13 === 0).map((i) => [i, 0x80] as [number, number]),
        ];
        for (const [i, mask] of masks) {
          const damaged = new Uint8Array(sealed);
          damaged[i]! ^= mask;
          // In a chunk, the damage is pinned to that chunk; in the header, any FormatError will do
          // (bad-header, or a valid-looking header whose file key no longer matches).
          const inChunk = i >= HEADER_BYTES ? Math.floor((i - HEADER_BYTES) / STORED) : undefined;
          const kind = inChunk === undefined ? undefined : 'corrupt-chunk';
          expectFormatError(() => decrypt(damaged, KEY, { backend }), kind, inChunk);
          const { output, error } = await streamOpen(damaged, backend);
          checkFormatError(error, kind, inChunk);
          expect(output.length).toBe(0);
        }
      });

      it('changing the header to the other cipher or to another valid chunk size', async () => {
        const [, sealed] = files[2]!;
        const other = new Uint8Array(sealed);
        other[5] = other[5] === 1 ? 2 : 1;
        await expectBothFail(other, backend, 'corrupt-chunk', 0);
        for (const e of [13, 14, 16, 20]) {
          const resized = new Uint8Array(sealed);
          resized[6] = e;
          await expectBothFail(resized, backend, ['corrupt-chunk', 'bad-size', 'truncated']);
        }
      });
    });

    describe('(b) truncation', () => {
      async function checkCut(sealed: Uint8Array, n: number, length: number) {
        const cut = sealed.subarray(0, length);
        const want = expected(length, n, false);
        const err = expectFormatError(() => decrypt(cut, KEY, { backend }), want.kind, want.chunk);
        if (want.chunk !== undefined && err.kind !== 'bad-size') expect(err.message).toContain(`chunk ${want.chunk}`);
        const got = await streamOpen(cut, backend);
        const wantStream = expected(length, n, true);
        const streamErr = checkFormatError(got.error, wantStream.kind, wantStream.chunk);
        // At most whole verified batches before the failing chunk.
        expect(got.output.length).toBeLessThanOrEqual((streamErr.chunk ?? 0) * C);
        expectBytes(got.output, pattern(got.output.length), 'released prefix');
      }

      it.each([C + 100, 2 * C])('of a 2-chunk %i-byte file at every byte of the last chunk, every boundary, and up to one chunk', async (size) => {
        const sealed = seal(size);
        const n = 2;
        const lastStart = sealedChunkOffset(n - 1, C);
        const mine = BACKENDS.indexOf(backend);
        for (let length = lastStart + 1; length < sealed.length; length++) {
          // Near the chunk's start (where the kinds change) and end, every backend; in between,
          // the backends take turns. Both readers every time.
          const edge = length < lastStart + 64 || length > sealed.length - 64;
          if (!edge && length % BACKENDS.length !== mine) continue;
          await checkCut(sealed, n, length);
        }
        for (let k = 0; k < n; k++) await checkCut(sealed, n, sealedChunkOffset(k, C));
        for (let length = 0; length < HEADER_BYTES + CHUNK_OVERHEAD + 4; length++) await checkCut(sealed, n, length);
      });

      it('of a 40-chunk file at every chunk boundary (across stream batches) and a few bytes around each', async () => {
        const n = 40;
        const sealed = seal(n * C - 1);
        for (let k = 0; k < n; k++) {
          for (const d of [0, 1, 27, 28, 29]) await checkCut(sealed, n, sealedChunkOffset(k, C) + d);
        }
      });
    });

    describe('(c) moved, swapped, added and removed chunks', () => {
      // Two files of the same size under the same key: 3 full chunks and a partial one.
      const size = 3 * C + 50;
      const a = seal(size);
      const b = seal(size);
      const ha = a.subarray(0, HEADER_BYTES);
      const [a0, a1, a2, a3] = chunksOf(a, 4) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
      const [b0, b1, b2, b3] = chunksOf(b, 4) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
      // And one whose last chunk is full, so appending keeps the size valid.
      const full = seal(4 * C);
      const fullChunks = chunksOf(full, 4);

      it('the files themselves open', () => {
        expectBytes(decrypt(concat(ha, a0, a1, a2, a3), KEY, { backend }), pattern(size));
        expectBytes(decrypt(b, KEY, { backend }), pattern(size));
      });

      it.each([
        ['a chunk from another file at the same index', () => concat(ha, a0, b1, a2, a3), 'corrupt-chunk', 1],
        ['the first chunk from another file', () => concat(ha, b0, a1, a2, a3), 'corrupt-chunk', 0],
        ['the final chunk from another file', () => concat(ha, a0, a1, a2, b3), 'corrupt-chunk', 3],
        ['chunks 0 and 1 swapped', () => concat(ha, a1, a0, a2, a3), 'corrupt-chunk', 0],
        ['chunks 1 and 2 swapped', () => concat(ha, a0, a2, a1, a3), 'corrupt-chunk', 1],
        ["another file's header", () => concat(b.subarray(0, HEADER_BYTES), a0, a1, a2, a3), 'corrupt-chunk', 0],
        ['a duplicated chunk', () => concat(ha, a0, a1, a1, a2, a3), 'corrupt-chunk', 2],
        ['a duplicated first chunk', () => concat(ha, a0, a0, a1, a2, a3), 'corrupt-chunk', 1],
        ['a missing middle chunk', () => concat(ha, a0, a2, a3), 'corrupt-chunk', 1],
        ['a chunk of another file appended', () => concat(full, b2), 'corrupt-chunk', 3],
        ['its own chunk appended', () => concat(full, fullChunks[1]!), 'corrupt-chunk', 3],
        ['its own final chunk repeated', () => concat(full, fullChunks[3]!), 'corrupt-chunk', 3],
        ['a chunk appended after a short final chunk', () => concat(a, b2), 'corrupt-chunk', 3],
        ['an empty final chunk appended', () => concat(full, chunkOf(seal(0), 0)), 'bad-size', 4],
      ] as const)('%s fails', async (_what, build, kind, chunk) => {
        await expectBothFail(build(), backend, kind, chunk);
      });

      it('the wrong key fails on chunk 0, for both readers and SealedFile', async () => {
        const other = generateMasterKey();
        expectFormatError(() => decrypt(a, other, { backend }), 'corrupt-chunk', 0);
        const { output, error } = await runStream(createDecryptStream(other, { backend }), a);
        checkFormatError(error, 'corrupt-chunk', 0);
        expect(output.length).toBe(0);
        const sf = await SealedFile.open(new MemoryStore(a), contentContext(other, { backend }));
        await expectFormatErrorAsync(() => sf.read(0, 10), 'corrupt-chunk', 0);
      });
    });

    describe('(d) the stream releases nothing of a failing chunk or after it', () => {
      const n = 40;
      const plain = pattern(n * C - 123);
      const sealed = seal(plain.length);

      it.each([0, 5, 15, 16, 20, 33, 39])('chunk %i of 40 damaged', async (bad) => {
        const damaged = new Uint8Array(sealed);
        damaged[sealedChunkOffset(bad, C) + 12 + 100]! ^= 0x04;
        for (const sizes of [[STORED * 3 + 5], [100_000_000], [1, 4099, 77]]) {
          const { output, error } = await runStream(createDecryptStream(KEY, { backend }), damaged, sizes);
          const err = checkFormatError(error, 'corrupt-chunk', bad);
          expect(err.message).toMatch(new RegExp(`\\bchunk ${bad}\\b`));
          // A prefix of the true plaintext, ending before the damaged chunk (released a whole
          // verified batch at a time).
          expect(output.length).toBeLessThanOrEqual(bad * C);
          expect(output.length % C).toBe(0);
          expectBytes(output, plain.subarray(0, output.length), 'released prefix');
        }
        expectFormatError(() => decrypt(damaged, KEY, { backend }), 'corrupt-chunk', bad);
      });

      it('emits exactly the verified 16-chunk batches before the damaged one', async () => {
        const damaged = new Uint8Array(sealed);
        damaged[sealedChunkOffset(37, C) + 12]! ^= 1;
        // Watch what the stream itself pushes, independent of pipeline teardown.
        const stream = createDecryptStream(KEY, { backend });
        const parts: Buffer[] = [];
        stream.on('data', (d: Buffer) => parts.push(d));
        const failed = new Promise<unknown>((resolve) => stream.on('error', resolve));
        for (let at = 0; at < damaged.length; at += 5000) stream.write(damaged.subarray(at, at + 5000));
        stream.end();
        checkFormatError(await failed, 'corrupt-chunk', 37);
        const output = Buffer.concat(parts);
        expect(output.length).toBe(32 * C);
        expectBytes(output, plain.subarray(0, 32 * C));
      });
    });

    describe('(e) SealedFile with a damaged chunk', () => {
      it('reads of the damaged chunk fail naming it; every other chunk stays readable', async () => {
        const ctx = contentContext(KEY, { backend, cipher, chunkSize: C });
        const store = new MemoryStore();
        const sf = await SealedFile.create(store, ctx);
        const plain = pattern(10 * C - 7);
        await sf.write(0, plain);
        await sf.flush();
        const bytes = store.bytes();
        bytes[sealedChunkOffset(4, C) + 200]! ^= 0x10;
        const before = new Uint8Array(bytes);
        for (const file of [sf, await SealedFile.open(store, ctx, C)]) {
          const e1 = await expectFormatErrorAsync(() => file.read(4 * C + 10, 5), 'corrupt-chunk', 4);
          expect(e1.message).toMatch(/\bchunk 4\b/);
          await expectFormatErrorAsync(() => file.read(2 * C, 4 * C), 'corrupt-chunk', 4);
          await expectFormatErrorAsync(() => file.read(0, plain.length), 'corrupt-chunk', 4);
          for (let i = 0; i < 10; i++) {
            if (i === 4) continue;
            expectBytes(await file.read(i * C, C), plain.subarray(i * C, (i + 1) * C), `chunk ${i}`);
          }
          expectBytes(await file.read(0, 4 * C), plain.subarray(0, 4 * C));
          expectBytes(await file.read(5 * C, 10 * C), plain.subarray(5 * C));
          // A write that must keep some of the damaged chunk's bytes fails and changes nothing.
          await expectFormatErrorAsync(() => file.write(4 * C + 1, new Uint8Array(3)), 'corrupt-chunk', 4);
          await expectFormatErrorAsync(() => file.truncate(4 * C + 100), 'corrupt-chunk', 4);
          expect(same(store.bytes(), before)).toBe(true);
          expect(file.size).toBe(plain.length);
        }
      });

      it('a forged empty file (a header and 28 bytes) never reads as empty: reads of nothing and at the end fail', async () => {
        const ctx = contentContext(KEY, { backend, cipher, chunkSize: C });
        const real = seal(11);
        const other = seal(3 * C);
        const forgeries = [
          real.subarray(0, HEADER_BYTES + CHUNK_OVERHEAD), // a real file cut to 52 bytes
          concat(other.subarray(0, HEADER_BYTES), new Uint8Array(CHUNK_OVERHEAD).fill(7)), // another file's header, 28 junk bytes
          concat(other.subarray(0, HEADER_BYTES), seal(0).subarray(HEADER_BYTES)), // another file's authentic empty chunk
        ];
        for (const forged of forgeries) {
          const store = new MemoryStore(forged);
          const sf = await SealedFile.open(store, ctx, C);
          expect(sf.size).toBe(0);
          await expectFormatErrorAsync(() => sf.read(0, 100), 'corrupt-chunk', 0);
          await expectFormatErrorAsync(() => sf.read(0, 0), 'corrupt-chunk', 0);
          await expectFormatErrorAsync(() => sf.read(5, 1), 'corrupt-chunk', 0);
          await expectFormatErrorAsync(() => sf.verifyEnd(), 'corrupt-chunk', 0);
          // A write is never built on it (an append would make it pass as a real file)…
          await expectFormatErrorAsync(() => sf.write(0, new Uint8Array(3)), 'corrupt-chunk', 0);
          expect(same(store.bytes(), forged)).toBe(true);
          // …but truncating it to nothing replaces it with a real empty file.
          await sf.truncate(0);
          expect((await sf.read(0, 100)).length).toBe(0);
          expect((await (await SealedFile.open(store, ctx, C)).read(0, 100)).length).toBe(0);
        }
        const empty = await SealedFile.open(new MemoryStore(seal(0)), ctx, C);
        await empty.verifyEnd();
        expect((await empty.read(0, 100)).length).toBe(0);
      });

      it('a final chunk that fails (garbled, or swapped for another file\'s) fails every read that would end the file', async () => {
        const ctx = contentContext(KEY, { backend, cipher, chunkSize: C });
        const plain = pattern(3 * C + 100);
        const garbled = new Uint8Array(seal(plain.length));
        garbled[sealedChunkOffset(3, C) + 40]! ^= 0x04;
        const donor = seal(plain.length);
        const swapped = concat(seal(plain.length).subarray(0, sealedChunkOffset(3, C)), chunkOf(donor, 3));
        for (const damaged of [garbled, swapped]) {
          const sf = await SealedFile.open(new MemoryStore(damaged), ctx, C);
          await expectFormatErrorAsync(() => sf.verifyEnd(), 'corrupt-chunk', 3);
          await expectFormatErrorAsync(() => sf.read(sf.size, 10), 'corrupt-chunk', 3);
          await expectFormatErrorAsync(() => sf.read(2 * C, 10 * C), 'corrupt-chunk', 3);
          await expectFormatErrorAsync(() => sf.read(0, plain.length + 1), 'corrupt-chunk', 3);
          // Reads that do not reach the end are answered from their own, verified chunks.
          expectBytes(await sf.read(0, 3 * C), plain.subarray(0, 3 * C));
          // Truncating to the same size keeps (so verifies) the final chunk: refused.
          await expectFormatErrorAsync(() => sf.truncate(plain.length), 'corrupt-chunk', 3);
        }
      });

      it('a store cut at a chunk boundary reads as truncated at its last chunk', async () => {
        const sealed = seal(6 * C + 5);
        const ctx = contentContext(KEY, { backend, cipher, chunkSize: C });
        const sf = await SealedFile.open(new MemoryStore(sealed.subarray(0, sealedChunkOffset(4, C))), ctx);
        expect(sf.size).toBe(4 * C);
        await expectFormatErrorAsync(() => sf.read(3 * C, 1), 'truncated', 3);
        expectBytes(await sf.read(0, 3 * C), pattern(3 * C));
        const err = await SealedFile.open(new MemoryStore(sealed.subarray(0, sealedChunkOffset(4, C) + 10)), ctx).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(FormatError);
      });
    });
  });
});
