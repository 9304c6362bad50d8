/**
 * The native (OpenSSL EVP) backend against the node:crypto and @noble/ciphers ones.
 * Build the addon first: `node scripts/build-native.mjs`. Without it this suite fails,
 * unless SEALFS_ALLOW_NO_NATIVE=1 (then it is skipped).
 */
import { describe, expect, it } from 'vitest';
import { ALL_VERIFIED, type AeadBackend, type ChunkRun } from '../src/crypto/backend.js';
import { loadAddon, loadNativeBackend, NATIVE_SYNC_LIMIT, type NativeBackend } from '../src/crypto/backends/native.js';
import { createNobleBackend } from '../src/crypto/backends/noble.js';
import { createNodeBackend } from '../src/crypto/backends/node.js';
import { CIPHER_IDS, CIPHER_NAMES, NONCE_BYTES, type CipherName } from '../src/crypto/ciphers.js';
import { chunkCount, isRunDefect, runChunkOffset, runOfSealed, runSealedLength } from '../src/crypto/geometry.js';
import { newHeader } from '../src/crypto/header.js';

let native: NativeBackend | undefined;
let loadError: Error | undefined;
try {
  native = loadNativeBackend();
} catch (err) {
  loadError = err as Error;
}
const allowMissing = process.env.SEALFS_ALLOW_NO_NATIVE === '1';
const node = createNodeBackend();
const noble = createNobleBackend();

/** The native backend, which the suite requires to have loaded. */
function nat(): NativeBackend {
  if (!native) throw loadError ?? new Error('native backend not loaded');
  return native;
}

/** Deterministic bytes (a small xorshift stream), different for each seed. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Byte equality without vitest's slow deep diff of large arrays. */
function expectSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (same(actual, expected)) return;
  let i = 0;
  while (i < Math.min(actual.length, expected.length) && actual[i] === expected[i]) i++;
  expect.fail(`${what}: differ (lengths ${actual.length} vs ${expected.length}, first difference at ${i})`);
}

function expectZero(data: Uint8Array, what: string): void {
  const i = data.findIndex((b) => b !== 0);
  if (i !== -1) expect.fail(`${what}: byte ${i} is ${data[i]}, expected all zeros`);
}

function makeRun(cipher: CipherName, chunkSize: number, firstIndex = 5, endsFile = true): ChunkRun {
  return {
    cipher,
    key: bytes(32, chunkSize + cipher.length),
    header: newHeader(cipher, chunkSize, bytes(16, 99)).bytes,
    chunkSize,
    firstIndex,
    endsFile,
  };
}

function sealWith(backend: AeadBackend, run: ChunkRun, plain: Uint8Array, nonces?: Uint8Array): Uint8Array {
  const out = new Uint8Array(runSealedLength(plain.length, run.chunkSize));
  backend.seal(run, plain, out, nonces);
  return out;
}

function plainLengthOf(run: ChunkRun, sealed: Uint8Array): number {
  const geometry = runOfSealed(sealed.length, run.chunkSize);
  if (isRunDefect(geometry)) throw new Error(`${sealed.length} bytes is no run`);
  return geometry.plainLength;
}

/** Opens into a buffer pre-filled with garbage, so zeroing is really checked. */
function openWith(backend: AeadBackend, run: ChunkRun, sealed: Uint8Array): { result: number; out: Uint8Array } {
  const out = new Uint8Array(plainLengthOf(run, sealed)).fill(0xa5);
  return { result: backend.open(run, sealed, out), out };
}

async function openAsyncWith(run: ChunkRun, sealed: Uint8Array, threads: number): Promise<{ result: number; out: Uint8Array }> {
  const out = new Uint8Array(plainLengthOf(run, sealed)).fill(0xa5);
  return { result: await nat().openAsync(run, sealed, out, threads), out };
}

/** Flips one bit of stored chunk `chunk` at `offset` within it (0 = first nonce byte). */
function tamper(sealed: Uint8Array, run: ChunkRun, chunk: number, offset: number): Uint8Array {
  const copy = sealed.slice();
  copy[runChunkOffset(chunk, run.chunkSize) + offset]! ^= 0x10;
  return copy;
}

/** Checks an open that failed at `failed`: plaintext before it, zeros from it on. */
function expectFailedAt(opened: { result: number; out: Uint8Array }, failed: number, plain: Uint8Array, run: ChunkRun): void {
  expect(opened.result).toBe(failed);
  const cut = failed * run.chunkSize;
  expectSame(opened.out.subarray(0, cut), plain.subarray(0, cut), 'plaintext before the failing chunk');
  expectZero(opened.out.subarray(cut), 'output from the failing chunk on');
}

const CHUNK_SIZES = [4096, 65536];
const sizesFor = (c: number) => [0, 1, c - 1, c, c + 1, 5 * c + 7];

describe.skipIf(!native && allowMissing)('native backend', () => {
  it('loads (build it with `node scripts/build-native.mjs`)', () => {
    expect(loadError?.message).toBeUndefined();
    expect(nat().name).toBe('native');
    expect(nat().opensslVersion).toMatch(/^OpenSSL 3\./);
  });

  for (const cipher of CIPHER_NAMES) {
    for (const chunkSize of CHUNK_SIZES) {
      describe(`${cipher}, ${chunkSize}-byte chunks`, () => {
        for (const size of sizesFor(chunkSize)) {
          it(`${size} bytes: same output as node and noble, and each opens the others'`, () => {
            const run = makeRun(cipher, chunkSize);
            const plain = bytes(size, size + 1);
            const nonces = bytes(NONCE_BYTES * chunkCount(size, chunkSize), size + 2);
            const sealed = sealWith(nat(), run, plain, nonces);
            expectSame(sealWith(node, run, plain, nonces), sealed, 'node vs native');
            expectSame(sealWith(noble, run, plain, nonces), sealed, 'noble vs native');
            for (const backend of [nat(), node, noble]) {
              const opened = openWith(backend, run, sealed);
              expect(opened.result, `${backend.name} opens native`).toBe(ALL_VERIFIED);
              expectSame(opened.out, plain, `${backend.name} opens native`);
            }
            for (const backend of [node, noble]) {
              const opened = openWith(nat(), run, sealWith(backend, run, plain));
              expect(opened.result, `native opens ${backend.name}`).toBe(ALL_VERIFIED);
              expectSame(opened.out, plain, `native opens ${backend.name}`);
            }
          });
        }

        it('a run that does not end the file (no final flag) matches node', () => {
          const run = makeRun(cipher, chunkSize, 9, false);
          const plain = bytes(3 * chunkSize, 7);
          const nonces = bytes(NONCE_BYTES * 3, 8);
          const sealed = sealWith(nat(), run, plain, nonces);
          expectSame(sealWith(node, run, plain, nonces), sealed, 'node vs native');
          expect(openWith(node, run, sealed).result).toBe(ALL_VERIFIED);
          // The same bytes claimed as the file's end fail at the last chunk (final flag).
          expectFailedAt(openWith(nat(), { ...run, endsFile: true }, sealed), 2, plain, run);
        });

        it('tampering with one byte: failing index reported, output zeroed from there', () => {
          const run = makeRun(cipher, chunkSize);
          const plain = bytes(5 * chunkSize + 7, 11);
          const sealed = sealWith(nat(), run, plain);
          const places: [number, number][] = [
            [0, 0], // first nonce byte
            [2, NONCE_BYTES + 100], // ciphertext
            [3, NONCE_BYTES + chunkSize + 15], // last tag byte
            [5, NONCE_BYTES + 3], // the short final chunk
          ];
          for (const [chunk, offset] of places) {
            const bad = tamper(sealed, run, chunk, offset);
            expectFailedAt(openWith(nat(), run, bad), chunk, plain, run);
            expect(openWith(node, run, bad).result).toBe(chunk);
          }
          // Wrong header, index or key: the first chunk fails.
          expectFailedAt(openWith(nat(), { ...run, firstIndex: run.firstIndex + 1 }, sealed), 0, plain, run);
          expectFailedAt(openWith(nat(), { ...run, header: bytes(24, 1) }, sealed), 0, plain, run);
          expectFailedAt(openWith(nat(), { ...run, key: bytes(32, 1) }, sealed), 0, plain, run);
        });
      });
    }
  }

  describe('async', () => {
    // Large enough that 4 threads really get 4 sub-runs (at least 64 KiB each).
    const cases = CIPHER_NAMES.flatMap((cipher) => [
      { cipher, chunkSize: 4096, size: 100 * 4096 + 7 },
      { cipher, chunkSize: 65536, size: 5 * 65536 + 7 },
    ]);
    for (const { cipher, chunkSize, size } of cases) {
      it(`${cipher}, ${chunkSize}-byte chunks, ${size} bytes: threads 1, 2, 4 match sync`, async () => {
        const run = makeRun(cipher, chunkSize, 1000);
        const count = chunkCount(size, chunkSize);
        const plain = bytes(size, 21);
        const nonces = bytes(NONCE_BYTES * count, 22);
        const sealed = sealWith(nat(), run, plain, nonces);
        expectSame(sealWith(node, run, plain, nonces), sealed, 'node vs native');
        const late = Math.floor(count * 0.75); // in the second half, and in the last sub-run for 2 and 4 threads
        const mid = Math.floor(count / 2) + 1;
        for (const threads of [1, 2, 4]) {
          const out = new Uint8Array(sealed.length);
          await nat().sealAsync(run, plain, out, threads, nonces);
          expectSame(out, sealed, `sealAsync, ${threads} threads`);

          const opened = await openAsyncWith(run, sealed, threads);
          expect(opened.result).toBe(ALL_VERIFIED);
          expectSame(opened.out, plain, `openAsync, ${threads} threads`);

          // Also failures ending the first half / quarter: later sub-runs run on meanwhile and
          // decrypt their chunks, which must be zeroed too.
          for (const chunk of [late, mid, count - 1, Math.floor(count / 2) - 1, Math.floor(count / 4) - 1]) {
            const bad = tamper(sealed, run, chunk, NONCE_BYTES + 1);
            expectFailedAt(await openAsyncWith(run, bad, threads), chunk, plain, run);
          }
          // Two bad chunks in different sub-runs: the smaller index wins.
          const twice = tamper(tamper(sealed, run, late, 0), run, 1, 0);
          expectFailedAt(await openAsyncWith(run, twice, threads), 1, plain, run);

          // Fresh random nonces: every chunk different, and the result opens.
          const fresh = new Uint8Array(sealed.length);
          await nat().sealAsync(run, plain, fresh, threads);
          const seen = new Set<string>();
          for (let k = 0; k < count; k++) {
            const at = runChunkOffset(k, chunkSize);
            seen.add(Buffer.from(fresh.subarray(at, at + NONCE_BYTES)).toString('hex'));
          }
          expect(seen.size).toBe(count);
          const back = openWith(node, run, fresh);
          expect(back.result).toBe(ALL_VERIFIED);
          expectSame(back.out, plain, 'node opens sealAsync output');
        }
      });
    }

    it('chunks other threads decrypted after the failing one are zeroed too', async () => {
      // The first half fails at its very end, while the second half runs on in parallel
      // and verifies: its plaintext must not escape either.
      const run = makeRun('aes-256-gcm', 4096, 0);
      const count = 2000;
      const plain = bytes(count * 4096, 41);
      const bad = tamper(sealWith(nat(), run, plain), run, count / 2 - 1, NONCE_BYTES);
      for (let i = 0; i < 3; i++) expectFailedAt(await openAsyncWith(run, bad, 2), count / 2 - 1, plain, run);
    });

    it('workers claiming chunks out of order still report the first bad chunk', async () => {
      // 4 KiB chunks: each worker claims 64 at a time, so 1,000 chunks make 16 claims taken by
      // whichever thread is free, in no fixed order. Every combination of bad chunks reports
      // the smallest one and leaves nothing from it on.
      const run = makeRun('chacha20-poly1305', 4096, 3);
      const count = 1000;
      const plain = bytes(count * 4096 - 9, 43);
      const sealed = sealWith(nat(), run, plain);
      const badSets = [[999], [0, 999], [64, 63], [500, 130, 900], [128, 129, 191, 192]];
      for (const threads of [2, 3, 4]) {
        for (const set of badSets) {
          const bad = set.reduce((data, chunk) => tamper(data, run, chunk, NONCE_BYTES + 2), sealed);
          expectFailedAt(await openAsyncWith(run, bad, threads), Math.min(...set), plain, run);
        }
      }
    });

    it('a run of one chunk, on the calling thread and on a worker', async () => {
      for (const cipher of CIPHER_NAMES) {
        // 4 KiB stays on the calling thread; a 1 MiB chunk goes to the thread pool.
        for (const chunkSize of [4096, 1 << 20]) {
          expect(chunkSize <= NATIVE_SYNC_LIMIT).toBe(chunkSize === 4096);
          for (const size of [0, 100, chunkSize]) {
            const run = makeRun(cipher, chunkSize, 77);
            const plain = bytes(size, size + 5);
            const nonces = bytes(NONCE_BYTES, 6);
            const expected = sealWith(node, run, plain, nonces);
            for (const threads of [1, 4]) {
              const out = new Uint8Array(expected.length);
              await nat().sealAsync(run, plain, out, threads, nonces);
              expectSame(out, expected, `sealAsync of ${size} bytes`);
              const opened = await openAsyncWith(run, out, threads);
              expect(opened.result).toBe(ALL_VERIFIED);
              expectSame(opened.out, plain, `openAsync of ${size} bytes`);
              const bad = tamper(out, run, 0, out.length - 1);
              expectFailedAt(await openAsyncWith(run, bad, threads), 0, plain, run);
            }
          }
        }
      }
    });

    it('many concurrent calls do not interfere', async () => {
      const jobs = Array.from({ length: 12 }, (_, i) => {
        const run = makeRun(CIPHER_NAMES[i % 2]!, 16384, i * 1000);
        const plain = bytes(40 * 16384 + i, i);
        return { run, plain, sealed: sealWith(node, run, plain) };
      });
      const results = await Promise.all(
        jobs.map(async ({ run, plain, sealed }, i) => {
          const bad = i % 3 === 0 ? tamper(sealed, run, 20 + i, NONCE_BYTES) : sealed;
          const opened = await openAsyncWith(run, bad, 4);
          const resealed = new Uint8Array(sealed.length);
          await nat().sealAsync(run, plain, resealed, 3);
          return { opened, resealed };
        }),
      );
      results.forEach(({ opened, resealed }, i) => {
        const { run, plain } = jobs[i]!;
        if (i % 3 === 0) expectFailedAt(opened, 20 + i, plain, run);
        else expectSame(opened.out, plain, `job ${i}`);
        expect(openWith(node, run, resealed).result).toBe(ALL_VERIFIED);
      });
    });
  });

  describe('validation matches the JS backends', () => {
    const run = makeRun('aes-256-gcm', 4096, 3, false);
    const messageOf = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        return `${(err as Error).name}: ${(err as Error).message}`;
      }
      return 'no error';
    };

    it('seal and open throw the same errors as node', () => {
      const cases: [string, (b: AeadBackend) => unknown][] = [
        ['short chunk not final', (b) => b.seal(run, new Uint8Array(5000), new Uint8Array(5000 + 56))],
        ['empty run not final', (b) => b.seal(run, new Uint8Array(0), new Uint8Array(28))],
        ['seal output too short', (b) => b.seal(run, new Uint8Array(8192), new Uint8Array(8192 + 55))],
        ['open output too long', (b) => b.open(run, new Uint8Array(8192 + 56), new Uint8Array(8193))],
        ['open of a fragment', (b) => b.open(run, new Uint8Array(20), new Uint8Array(0))],
        ['open short chunk not final', (b) => b.open(run, new Uint8Array(5000 + 56), new Uint8Array(5000))],
      ];
      for (const [what, fn] of cases) {
        const expected = messageOf(() => fn(node));
        expect(expected, what).not.toBe('no error');
        expect(messageOf(() => fn(nat())), what).toBe(expected);
      }
    });

    it("the addon's own checks, called directly, throw the same errors: its geometry is run.ts's", () => {
      const raw = loadAddon();
      const args = [CIPHER_IDS[run.cipher], run.key, run.header, run.chunkSize, run.firstIndex, run.endsFile] as const;
      const cases: [string, Uint8Array, Uint8Array][] = [
        ['short chunk not final', new Uint8Array(5000), new Uint8Array(5000 + 56)],
        ['empty run not final', new Uint8Array(0), new Uint8Array(28)],
        ['seal output too short', new Uint8Array(8192), new Uint8Array(8192 + 55)],
        ['seal output too long', new Uint8Array(8192), new Uint8Array(8192 + 57)],
      ];
      for (const [what, plain, out] of cases) {
        const expected = messageOf(() => node.seal(run, plain, out));
        expect(expected, what).not.toBe('no error');
        expect(messageOf(() => raw.seal(...args, plain, out, null)), what).toBe(expected);
      }
      const opens: [string, Uint8Array, Uint8Array][] = [
        ['open output too long', new Uint8Array(8192 + 56), new Uint8Array(8193)],
        ['open of a fragment', new Uint8Array(20), new Uint8Array(0)],
        ['open of nothing', new Uint8Array(0), new Uint8Array(0)],
        ['open of a cut run', new Uint8Array(4124 + 27), new Uint8Array(4096)],
        ['open of a trailing empty chunk', new Uint8Array(4124 + 28), new Uint8Array(4096)],
        ['open short chunk not final', new Uint8Array(5000 + 56), new Uint8Array(5000)],
      ];
      for (const [what, sealed, out] of opens) {
        const expected = messageOf(() => node.open(run, sealed, out));
        expect(expected, what).not.toBe('no error');
        expect(messageOf(() => raw.open(...args, sealed, out)), what).toBe(expected);
      }
    });

    it('async forms reject rather than throw', async () => {
      const sealing = nat().sealAsync(run, new Uint8Array(5000), new Uint8Array(5056), 2);
      await expect(sealing).rejects.toThrow(/short/);
      const opening = nat().openAsync(run, new Uint8Array(8192 + 56), new Uint8Array(1), 2);
      await expect(opening).rejects.toThrow(/output buffer/);
    });

    it('bad keys are refused', () => {
      const bad = { ...run, key: new Uint8Array(16) };
      expect(() => nat().seal(bad, new Uint8Array(4096), new Uint8Array(4096 + 28))).toThrow(RangeError);
    });
  });

  describe('in-place use', () => {
    for (const cipher of CIPHER_NAMES) {
      it(`${cipher}: open into the sealed buffer, seal from the tail of the output`, async () => {
        const run = makeRun(cipher, 4096);
        const plain = bytes(200 * 4096 + 99, 31);
        const sealed = sealWith(node, run, plain);

        const buffer = sealed.slice();
        expect(nat().open(run, buffer, buffer.subarray(0, plain.length))).toBe(ALL_VERIFIED);
        expectSame(buffer.subarray(0, plain.length), plain, 'in-place open');

        const asyncBuffer = sealed.slice();
        expect(await nat().openAsync(run, asyncBuffer, asyncBuffer.subarray(0, plain.length), 4)).toBe(ALL_VERIFIED);
        expectSame(asyncBuffer.subarray(0, plain.length), plain, 'in-place openAsync');

        const bad = tamper(sealed, run, 150, 40);
        expect(nat().open(run, bad, bad.subarray(0, plain.length))).toBe(150);
        expectSame(bad.subarray(0, 150 * 4096), plain.subarray(0, 150 * 4096), 'in-place open before the failure');
        expectZero(bad.subarray(150 * 4096, plain.length), 'in-place open from the failure');

        const nonces = bytes(NONCE_BYTES * 201, 32);
        const out = new Uint8Array(sealed.length);
        out.set(plain, out.length - plain.length);
        nat().seal(run, out.subarray(out.length - plain.length), out, nonces);
        expectSame(out, sealWith(node, run, plain, nonces), 'in-place seal');
      });
    }

    it('overlaps a forward pass cannot handle are refused', () => {
      const run = makeRun('aes-256-gcm', 4096);
      const buffer = new Uint8Array(3 * 4096 + 3 * 28);
      expect(() => nat().seal(run, buffer.subarray(0, 3 * 4096), buffer)).toThrow(/overlap/);
      expect(() => nat().open(run, buffer.subarray(0, 3 * 4096 + 84 - 100), buffer.subarray(100, 100 + 3 * 4096 - 100))).toThrow(
        /overlap/,
      );
    });
  });
});
