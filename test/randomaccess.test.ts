/**
 * SealedFile random access against a plain in-memory model: thousands of random writes
 * (holes included), reads, truncations both ways and re-opens, for every backend. After
 * every step the stored bytes must be a complete, valid sealed file (FORMAT.md §6: "every
 * file valid at all times between operations"), so decrypt() must open them in full.
 * Then direct checks that writes re-seal only the chunks they must.
 */
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BackendName } from '../src/crypto/backend.js';
import { CHUNK_OVERHEAD, CIPHER_NAMES, NONCE_BYTES } from '../src/crypto/ciphers.js';
import { contentContext } from '../src/crypto/context.js';
import { HEADER_BYTES } from '../src/crypto/header.js';
import { sealedChunkOffset, sealedSize, storedChunkBytes } from '../src/crypto/geometry.js';
import { decrypt, encrypt, fdStore, generateMasterKey, MemoryStore, SealedFile } from '../src/index.js';
import { BACKENDS, expectBytes, isSlow, pattern, requireEveryBackend, same } from './helpers.js';

const KEY = generateMasterKey();
const C = 4096;

/** A growable plaintext: what the sealed file must read as. */
class Model {
  bytes = new Uint8Array(0);

  write(position: number, data: Uint8Array): void {
    const end = position + data.length;
    if (end > this.bytes.length) this.resize(end);
    this.bytes.set(data, position);
  }

  resize(size: number): void {
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, Math.min(size, this.bytes.length)));
    this.bytes = next;
  }
}

type Op =
  | { kind: 'write'; position: number; length: number; seed: number }
  | { kind: 'read'; position: number; length: number }
  | { kind: 'truncate'; size: number }
  | { kind: 'reopen' };

/** Offsets anywhere up to 6 chunks, with extra weight right at and around chunk boundaries. */
const position = fc.oneof(
  fc.integer({ min: 0, max: 6 * C }),
  fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: -2, max: 2 })).map(([k, d]) => Math.max(0, k * C + d)),
);
/** Lengths up to ~3 chunks, with weight on tiny ones and whole chunks. */
const length = fc.oneof(
  fc.integer({ min: 0, max: 3 * C + 5 }),
  fc.integer({ min: 0, max: 8 }),
  fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: -1, max: 1 })).map(([k, d]) => k * C + d),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), position, length, seed: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), position, length }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), size: position }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

requireEveryBackend();

describe.each(BACKENDS)('backend %s', (backend: BackendName) => {
  // Each run is a fresh file and 25 to 70 operations (thousands in all); fewer runs for
  // pure-JS noble.
  const numRuns = isSlow(backend) ? 20 : 60;

  it.each(CIPHER_NAMES)('%s: random writes, reads, truncations and re-opens match the model', async (cipher) => {
    const ctx = contentContext(KEY, { backend, cipher, chunkSize: C });
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 25, maxLength: 70, size: 'max' }), async (ops) => {
        const store = new MemoryStore();
        let file = await SealedFile.create(store, ctx);
        const header = Uint8Array.from(store.bytes().subarray(0, HEADER_BYTES));
        const model = new Model();
        for (const o of ops) {
          steps++;
          switch (o.kind) {
            case 'write': {
              const data = pattern(o.length, o.seed);
              await file.write(o.position, data);
              model.write(o.position, data);
              break;
            }
            case 'read': {
              const got = await file.read(o.position, o.length);
              const want = model.bytes.subarray(Math.min(o.position, model.bytes.length), Math.min(o.position + o.length, model.bytes.length));
              if (!same(got, want)) throw new Error(`read(${o.position}, ${o.length}) differs from the model`);
              break;
            }
            case 'truncate':
              await file.truncate(o.size);
              model.resize(o.size);
              break;
            case 'reopen':
              await file.flush();
              file = await SealedFile.open(store, ctx, C);
              break;
          }
          // After every step: size, the whole plaintext, the stored layout, and a complete decrypt().
          const size = model.bytes.length;
          if (file.size !== size) throw new Error(`size ${file.size}, model ${size}`);
          if (!same(await file.read(0, size + 1), model.bytes)) throw new Error('file differs from the model');
          await file.flush();
          const stored = store.bytes();
          if (stored.length !== sealedSize(size, C)) throw new Error(`stored ${stored.length} bytes, expected ${sealedSize(size, C)}`);
          if (!same(stored.subarray(0, HEADER_BYTES), header)) throw new Error('header changed');
          if (!same(decrypt(stored, KEY, { backend }), model.bytes)) throw new Error('decrypt() of the store differs from the model');
        }
      }),
      { numRuns },
    );
    // Every operation of every run was played (fast-check's bias makes many runs short).
    expect(steps).toBeGreaterThanOrEqual(numRuns * 25);
  });
});

/** The stored chunks of a sealed file, as copies. */
function storedChunks(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = HEADER_BYTES; at < bytes.length; at += storedChunkBytes(C)) out.push(bytes.slice(at, at + storedChunkBytes(C)));
  return out;
}

/** Indices of chunks that differ between two snapshots (chunks present in only one count). */
function changedChunks(before: Uint8Array, after: Uint8Array): number[] {
  const a = storedChunks(before);
  const b = storedChunks(after);
  const changed: number[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (!a[i] || !b[i] || !same(a[i]!, b[i]!)) changed.push(i);
  }
  return changed;
}

const nonceOf = (bytes: Uint8Array, i: number) => bytes.slice(sealedChunkOffset(i, C), sealedChunkOffset(i, C) + NONCE_BYTES);

describe.each(BACKENDS)('backend %s: what a write re-seals', (backend) => {
  const ctx = contentContext(KEY, { backend, chunkSize: C });

  async function fileOf(size: number) {
    const store = new MemoryStore();
    const file = await SealedFile.create(store, ctx);
    await file.write(0, pattern(size));
    await file.flush();
    // Gathered writes reach the store at flush(); a snapshot shows what a sync client would see.
    const snapshot = async () => {
      await file.flush();
      return store.bytes().slice();
    };
    return { store, file, snapshot };
  }

  it.each([
    // [old size, write position, write length, chunks that must change]
    ['appending within a partial last chunk', 10 * C + 500, 10 * C + 500, 100, [10]],
    ['appending past a partial last chunk', 10 * C + 500, 10 * C + 500, 2 * C + 7, [10, 11, 12]],
    ['appending to a full last chunk (the final flag moves)', 10 * C, 10 * C, 5, [9, 10]],
    ['writing far past the end (a hole)', 10 * C + 500, 14 * C + 3, 10, [10, 11, 12, 13, 14]],
    ['writing past a full last chunk, leaving a hole', 10 * C, 12 * C + 1, 1, [9, 10, 11, 12]],
    ['a 1-byte write in the middle', 10 * C, 4 * C + 77, 1, [4]],
    ['a 1-byte write in the last chunk', 10 * C + 9, 10 * C + 3, 1, [10]],
    ['a write across a chunk boundary', 10 * C, 6 * C - 2, 4, [5, 6]],
    ['a whole-chunk overwrite', 10 * C, 2 * C, C, [2]],
    ['extending by truncate', 10 * C + 500, -1, 11 * C + 1, [10, 11]],
    ['shrinking by truncate to a boundary', 10 * C + 500, -1, 7 * C, [6, 7, 8, 9, 10]],
    ['shrinking by truncate inside a chunk', 10 * C + 500, -1, 7 * C + 1, [7, 8, 9, 10]],
  ] as const)('%s changes exactly the chunks it must', async (_what, size, position, length, expected) => {
    const { store, file, snapshot } = await fileOf(size);
    const before = await snapshot();
    const model = new Model();
    model.write(0, pattern(size));
    if (position < 0) {
      await file.truncate(length);
      model.resize(length);
    } else {
      const data = new Uint8Array(length).fill(0xab);
      await file.write(position, data);
      model.write(position, data);
    }
    const after = await snapshot();
    expect(changedChunks(before, after)).toEqual([...expected]);
    // The header never changes; every re-sealed chunk that existed before got a fresh nonce.
    expect(same(before.subarray(0, HEADER_BYTES), after.subarray(0, HEADER_BYTES))).toBe(true);
    const oldCount = storedChunks(before).length;
    const newCount = storedChunks(after).length;
    for (const i of expected) {
      if (i < oldCount && i < newCount) expect(same(nonceOf(before, i), nonceOf(after, i))).toBe(false);
    }
    expectBytes(decrypt(store.bytes(), KEY, { backend }), model.bytes);
    expectBytes(await file.read(0, model.bytes.length), model.bytes);
  });

  it('writing past the end leaves zeros, and so does extending by truncate', async () => {
    const { file } = await fileOf(C + 10);
    await file.write(3 * C + 5, Uint8Array.of(1, 2, 3));
    expect(file.size).toBe(3 * C + 8);
    const all = await file.read(0, file.size);
    expectBytes(all.subarray(0, C + 10), pattern(C + 10));
    expect(all.subarray(C + 10, 3 * C + 5).every((b) => b === 0)).toBe(true);
    expectBytes(all.subarray(3 * C + 5), Uint8Array.of(1, 2, 3));
    await file.truncate(5 * C);
    expect((await file.read(3 * C + 8, 5 * C)).every((b) => b === 0)).toBe(true);
  });

  it('bytes cut away by truncate never come back when the file grows again', async () => {
    for (const cut of [0, 1, C - 1, C, C + 1, 2 * C + 100]) {
      const { file } = await fileOf(4 * C);
      await file.truncate(cut);
      await file.truncate(4 * C);
      const all = await file.read(0, 4 * C);
      expectBytes(all.subarray(0, cut), pattern(cut));
      expect(all.subarray(cut).every((b) => b === 0)).toBe(true);
      const { file: other } = await fileOf(4 * C);
      await other.truncate(cut);
      await other.write(4 * C - 1, Uint8Array.of(9));
      expect((await other.read(cut, 4 * C - 1 - cut)).every((b) => b === 0)).toBe(true);
    }
  });

  it('a new file is the header and one empty final chunk; reads past the end are empty', async () => {
    const store = new MemoryStore();
    const file = await SealedFile.create(store, ctx);
    expect(store.bytes().length).toBe(HEADER_BYTES + CHUNK_OVERHEAD);
    expect(decrypt(store.bytes(), KEY, { backend }).length).toBe(0);
    expect((await file.read(0, 100)).length).toBe(0);
    await file.write(0, pattern(10));
    expect((await file.read(10, 100)).length).toBe(0);
    expect((await file.read(1000, 100)).length).toBe(0);
    await file.write(5, new Uint8Array(0));
    expect(file.size).toBe(10);
  });

  it('concurrent operations on one instance do not interleave', async () => {
    const { store, file } = await fileOf(3 * C);
    const model = new Model();
    model.write(0, pattern(3 * C));
    const jobs: Promise<unknown>[] = [];
    for (let k = 0; k < 30; k++) {
      const data = pattern(700 + k * 37, k);
      const at = (k * 1531) % (5 * C);
      jobs.push(file.write(at, data));
      model.write(at, data);
      if (k % 7 === 3) {
        jobs.push(file.truncate(2 * C + k));
        model.resize(2 * C + k);
      }
    }
    await Promise.all(jobs);
    expectBytes(await file.read(0, file.size), model.bytes);
    await file.flush();
    expectBytes(decrypt(store.bytes(), KEY, { backend }), model.bytes);
  });
});

describe('a large write spanning more than one 4 MiB batch', () => {
  it.each(BACKENDS.filter((b) => !isSlow(b)))('%s', async (backend) => {
    const ctx = contentContext(KEY, { backend, chunkSize: C });
    const store = new MemoryStore();
    const file = await SealedFile.create(store, ctx);
    await file.write(0, pattern(100));
    const big = pattern(9 * 1024 * 1024 + 123, 5);
    await file.write(50, big);
    const model = new Model();
    model.write(0, pattern(100));
    model.write(50, big);
    await file.flush();
    expectBytes(decrypt(store.bytes(), KEY, { backend }), model.bytes);
    expectBytes(await file.read(0, file.size), model.bytes);
    expectBytes(await file.read(5 * 1024 * 1024 - 7, 3), model.bytes.subarray(5 * 1024 * 1024 - 7, 5 * 1024 * 1024 - 4));
  });
});

describe('on a real file descriptor', () => {
  it('SealedFile over fdStore gives the same valid file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sealfs-test-'));
    try {
      const path = join(dir, 'f');
      const ctx = contentContext(KEY, { chunkSize: C });
      const handle = await open(path, 'w+');
      const file = await SealedFile.create(fdStore(handle.fd), ctx);
      await file.write(0, pattern(5 * C + 3));
      await file.write(9 * C, Uint8Array.of(7));
      await file.truncate(8 * C + 1);
      await handle.close();
      const model = new Model();
      model.write(0, pattern(5 * C + 3));
      model.resize(8 * C + 1);
      expectBytes(decrypt(await readFile(path), KEY), model.bytes);
      const again = await open(path, 'r+');
      const reopened = await SealedFile.open(fdStore(again.fd), ctx, C);
      expectBytes(await reopened.read(0, reopened.size), model.bytes);
      await again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('overhead', () => {
  it('1,000,000 bytes at 64 KiB cost 472 bytes (≤ 0.05% + 24)', () => {
    const S = 1_000_000;
    const sealed = encrypt(new Uint8Array(S), KEY, { chunkSize: 64 * 1024 });
    expect(sealed.length).toBe(sealedSize(S, 64 * 1024));
    expect(sealed.length).toBeLessThanOrEqual(S * 1.0005 + 24);
    expect(sealed.length - S).toBe(472);
    expect(HEADER_BYTES).toBeLessThanOrEqual(48);
    expect(CHUNK_OVERHEAD).toBeLessThanOrEqual(28);
    // Per-chunk overhead measured, not just the constant: one more chunk costs 28 more bytes.
    const plus = encrypt(new Uint8Array(S + 65536), KEY, { chunkSize: 64 * 1024 });
    expect(plus.length - sealed.length - 65536).toBe(28);
    expect(encrypt(new Uint8Array(0), KEY).length - 0).toBe(HEADER_BYTES + CHUNK_OVERHEAD);
  });
});
