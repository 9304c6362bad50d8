/**
 * Format 2 files (docs/FORMAT.md §16–§19): the layout tiles the file exactly, random access
 * matches a model, and every replay, zeroing, punching, cutting or extending of stored bytes is
 * caught before a byte of it is released.
 */
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../src/crypto/errors.js';
import { deriveSubkey } from '../src/crypto/kdf.js';
import { fdStore, MemoryStore } from '../src/crypto/store.js';
import {
  BODY_START,
  CHUNK_OVERHEAD_V2,
  chunkOffset,
  chunkPlainLength,
  ENTRY_BYTES,
  nodeEntryCount,
  nodeOffset,
  sealedSizeV2,
  topLevel,
  treeShape,
} from '../src/crypto/v2/layout.js';
import { SealedFileV2 } from '../src/crypto/v2/sealedfile.js';

const MASTER = Uint8Array.from({ length: 32 }, (_, i) => i);
const KEY = { contentKey2: deriveSubkey(MASTER, 'content2') };
const SMALL = { cipher: 'aes-256-gcm' as const, chunkSize: 4096 };

function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) % 251;
  return out;
}

async function problemOf(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
  } catch (err) {
    if (err instanceof FormatError) return err.kind;
    throw err;
  }
  return 'none';
}

/** A file of `size` bytes with 4 KiB chunks in memory, committed. */
async function fileOf(size: number, seed = 1): Promise<{ store: MemoryStore; file: SealedFileV2 }> {
  const store = new MemoryStore();
  const file = await SealedFileV2.create(store, KEY, SMALL);
  await file.write(0, pattern(size, seed));
  await file.commit();
  return { store, file };
}

describe('format 2 layout', () => {
  it('chunks and index nodes tile [56, Z(S)) exactly, for every shape up to three levels', () => {
    const C = 4096;
    const counts = [0, 1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 65536 + 256, 65536 + 257, 3 * 65536 + 1];
    for (const n of counts) {
      for (const tail of n === 0 ? [0] : [1, C]) {
        const size = n === 0 ? 0 : (n - 1) * C + tail;
        const shape = treeShape(size, C);
        const regions: [number, number, string][] = [];
        for (let i = 0; i < shape.chunks; i++) regions.push([chunkOffset(i, C), chunkPlainLength(shape, i) + CHUNK_OVERHEAD_V2, `chunk ${i}`]);
        for (let level = 1; level <= topLevel(shape); level++) {
          for (let k = 0; k < shape.counts[level]!; k++) {
            regions.push([nodeOffset(shape, level, k), nodeEntryCount(shape, level, k) * ENTRY_BYTES, `node ${level}/${k}`]);
          }
        }
        regions.sort((a, b) => a[0] - b[0]);
        let at = BODY_START;
        let gap: string | undefined;
        for (const [offset, length, what] of regions) {
          if (offset !== at && gap === undefined) gap = `${what} of n = ${n}, last chunk ${tail} bytes: at ${offset}, expected ${at}`;
          at += length;
        }
        expect(gap).toBeUndefined();
        expect(at, `Z for n = ${n}`).toBe(sealedSizeV2(shape));
      }
    }
  });

  it('costs 56 bytes for an empty file, 89 for a 1-byte file, and under 0.1% plus 8 KiB for a large one', async () => {
    expect((await fileOf(0)).store.bytes().length).toBe(56);
    const one = new MemoryStore();
    const file = await SealedFileV2.create(one, KEY, { cipher: 'aes-256-gcm', chunkSize: 65536 });
    await file.write(0, Uint8Array.of(7));
    await file.commit();
    expect(one.bytes().length).toBe(89);
    const big = treeShape(100 * 1024 * 1024, 65536);
    expect(sealedSizeV2(big) - big.size).toBeLessThan(0.001 * big.size + 8192);
  });
});

describe('format 2 random access', () => {
  it('matches a model through writes, truncates, punches, commits and reopens', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('write' as const), at: fc.nat(40_000), length: fc.integer({ min: 1, max: 9000 }), seed: fc.nat(200) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(50_000) }),
      fc.record({ kind: fc.constant('punch' as const), at: fc.nat(40_000), length: fc.integer({ min: 1, max: 12_000 }) }),
      fc.record({ kind: fc.constant('commit' as const) }),
      fc.record({ kind: fc.constant('reopen' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 25, maxLength: 60 }), async (ops) => {
        const store = new MemoryStore();
        let file = await SealedFileV2.create(store, KEY, SMALL);
        let model = new Uint8Array(0);
        let version = file.version;
        for (const o of ops) {
          if (o.kind === 'write') {
            const data = pattern(o.length, o.seed);
            await file.write(o.at, data);
            const grown = new Uint8Array(Math.max(model.length, o.at + o.length));
            grown.set(model);
            grown.set(data, o.at);
            model = grown;
          } else if (o.kind === 'truncate') {
            await file.truncate(o.at);
            const next = new Uint8Array(o.at);
            next.set(model.subarray(0, o.at));
            model = next;
          } else if (o.kind === 'punch') {
            await file.punch(o.at, o.length);
            model.fill(0, Math.min(o.at, model.length), Math.min(o.at + o.length, model.length));
          } else if (o.kind === 'commit') {
            await file.commit();
            expect(file.version).toBeGreaterThanOrEqual(version);
            version = file.version;
          } else {
            await file.commit();
            file = await SealedFileV2.open(store, KEY);
            expect(file.version).toBe(version === file.version ? version : file.version);
            version = file.version;
            expect(store.bytes().length).toBe(sealedSizeV2(treeShape(model.length, 4096)));
          }
          expect(file.size).toBe(model.length);
          expect(Buffer.from(await file.read(0, model.length + 10)).equals(Buffer.from(model))).toBe(true);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('reads only the chunk and its path: a 1-byte edit in a 100 MiB file changes one chunk and under 8 KiB besides', async () => {
    const store = new MemoryStore();
    const file = await SealedFileV2.create(store, KEY, { cipher: 'aes-256-gcm', chunkSize: 65536 });
    const size = 100 * 1024 * 1024;
    for (let at = 0; at < size; at += 8 * 1024 * 1024) await file.write(at, pattern(8 * 1024 * 1024, at));
    await file.commit();
    const before = Uint8Array.from(store.bytes());
    await file.write(50 * 1024 * 1024 + 12345, Uint8Array.of(1));
    await file.commit();
    const after = store.bytes();
    expect(after.length).toBe(before.length);
    const chunk = Math.floor((50 * 1024 * 1024 + 12345) / 65536);
    const chunkStart = chunkOffset(chunk, 65536);
    let otherChanged = 0;
    for (let i = 0; i < after.length; i++) {
      if (after[i] !== before[i] && (i < chunkStart || i >= chunkStart + 65536 + CHUNK_OVERHEAD_V2)) otherChanged++;
    }
    expect(otherChanged).toBeLessThanOrEqual(8192);
    expect(otherChanged).toBeGreaterThan(0);
  });
});

describe('format 2 attacks: nothing but the committed state is ever served', () => {
  const C = SMALL.chunkSize;
  // 300 chunks: two levels, a full level-1 node and a partial one at the end.
  const SIZE = 300 * C - 100;

  for (const index of [0, 1, 255, 256, 299]) {
    it(`an older version of chunk ${index} is refused (replay), the rest still reads`, async () => {
      const { store, file } = await fileOf(SIZE);
      const shape = treeShape(SIZE, C);
      const at = chunkOffset(index, C);
      const length = chunkPlainLength(shape, index) + CHUNK_OVERHEAD_V2;
      const oldChunk = store.bytes().slice(at, at + length);
      await file.write(index * C + 5, Uint8Array.of(0xee, 0xee));
      await file.commit();
      await store.write(oldChunk, at);
      const reopened = await SealedFileV2.open(store, KEY);
      expect(await problemOf(() => reopened.read(index * C, 10))).toBe('stale-chunk');
      const other = index === 0 ? 1 : 0;
      expect(Buffer.from(await reopened.read(other * C, 10)).equals(Buffer.from(pattern(SIZE).subarray(other * C, other * C + 10)))).toBe(true);
    });
  }

  it('a one-chunk file replayed to an older version: an older whole version (caught by the seen list, §21), never a mix', async () => {
    const { store, file } = await fileOf(1000);
    const old = Uint8Array.from(store.bytes());
    const oldVersion = file.version;
    await file.write(3, Uint8Array.of(9));
    await file.commit();
    const chunkOnly = Uint8Array.from(store.bytes());
    chunkOnly.set(old.subarray(56), 56);
    expect(await problemOf(() => SealedFileV2.open(new MemoryStore(chunkOnly), KEY))).toBe('incomplete');
    const whole = await SealedFileV2.open(new MemoryStore(old), KEY);
    expect(whole.version).toBe(oldVersion);
    expect(whole.version).toBeLessThan(file.version);
  });

  it('an older index node or root is refused', async () => {
    const { store, file } = await fileOf(SIZE);
    const shape = treeShape(SIZE, C);
    const leafAt = nodeOffset(shape, 1, 0);
    const oldLeaf = store.bytes().slice(leafAt, leafAt + 4096);
    const oldRoot = store.bytes().slice(24, 56);
    await file.write(10, Uint8Array.of(1));
    await file.commit();
    const leafReplayed = new MemoryStore(store.bytes());
    await leafReplayed.write(oldLeaf, leafAt);
    const opened = await SealedFileV2.open(leafReplayed, KEY);
    expect(await problemOf(() => opened.read(0, 10))).toBe('corrupt-index');
    const rootReplayed = new MemoryStore(store.bytes());
    await rootReplayed.write(oldRoot, 24);
    expect(await problemOf(() => SealedFileV2.open(rootReplayed, KEY))).toBe('incomplete');
  });

  it('a zeroed or punched chunk, node or root is refused, never read as a hole', async () => {
    const { store } = await fileOf(SIZE);
    const shape = treeShape(SIZE, C);
    const zeroAt = async (offset: number, length: number) => {
      const copy = new MemoryStore(store.bytes());
      await copy.write(new Uint8Array(length), offset);
      return copy;
    };
    const chunk7 = await zeroAt(chunkOffset(7, C), C + CHUNK_OVERHEAD_V2);
    expect(await problemOf(async () => (await SealedFileV2.open(chunk7, KEY)).read(7 * C, 1))).toBe('corrupt-chunk');
    const leaf = await zeroAt(nodeOffset(shape, 1, 0), 4096);
    expect(await problemOf(async () => (await SealedFileV2.open(leaf, KEY)).read(0, 1))).toBe('corrupt-index');
    const top = await zeroAt(nodeOffset(shape, 2, 0), 32);
    expect(await problemOf(() => SealedFileV2.open(top, KEY))).toBe('incomplete');
    const root = await zeroAt(24, 32);
    expect(await problemOf(() => SealedFileV2.open(root, KEY))).toBe('incomplete');
  });

  it('a file cut short or extended, even by one byte, is incomplete', async () => {
    const { store } = await fileOf(SIZE);
    const bytes = store.bytes();
    for (const length of [bytes.length - 1, bytes.length - 4096, 56, 24]) {
      expect(await problemOf(() => SealedFileV2.open(new MemoryStore(bytes.subarray(0, length)), KEY)), `cut to ${length}`).not.toBe('none');
    }
    const longer = new MemoryStore(bytes);
    await longer.write(Uint8Array.of(0), bytes.length);
    expect(await problemOf(() => SealedFileV2.open(longer, KEY))).toBe('incomplete');
  });

  it('a chunk moved to another index or another file is refused', async () => {
    const { store } = await fileOf(SIZE);
    const moved = new MemoryStore(store.bytes());
    await moved.write(store.bytes().slice(chunkOffset(3, C), chunkOffset(3, C) + C + 32), chunkOffset(4, C));
    expect(await problemOf(async () => (await SealedFileV2.open(moved, KEY)).read(4 * C, 1))).toBe('corrupt-chunk');
    const other = await fileOf(SIZE, 2);
    const swapped = new MemoryStore(store.bytes());
    await swapped.write(other.store.bytes().slice(chunkOffset(3, C), chunkOffset(3, C) + C + 32), chunkOffset(3, C));
    expect(await problemOf(async () => (await SealedFileV2.open(swapped, KEY)).read(3 * C, 1))).toBe('corrupt-chunk');
  });
});

describe('format 2 holes', () => {
  it('extending a file by a terabyte is O(1) and sparse; the hole reads as zeros; the old data stays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealfs-v2-hole-'));
    const path = join(dir, 'f');
    const fd = openSync(path, 'w+');
    try {
      const store = fdStore(fd);
      const file = await SealedFileV2.create(store, KEY, { cipher: 'aes-256-gcm', chunkSize: 65536 });
      await file.write(0, pattern(100_000));
      await file.commit();
      const started = performance.now();
      await file.truncate(2 ** 40);
      await file.commit();
      await file.write(2 ** 40 - 3, Uint8Array.of(1, 2, 3));
      await file.commit();
      const took = performance.now() - started;
      expect(took).toBeLessThan(2000);
      const st = fstatSync(fd);
      expect(st.size).toBe(sealedSizeV2(treeShape(2 ** 40, 65536)));
      expect(st.blocks * 512).toBeLessThan(4 * 1024 * 1024);
      const reopened = await SealedFileV2.open(store, KEY);
      expect(reopened.size).toBe(2 ** 40);
      expect(Buffer.from(await reopened.read(0, 100_000)).equals(Buffer.from(pattern(100_000)))).toBe(true);
      expect([...(await reopened.read(2 ** 39, 70_000))].every((b) => b === 0)).toBe(true);
      expect([...(await reopened.read(2 ** 40 - 5, 10))]).toEqual([0, 0, 1, 2, 3]);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a punched range is stored as holes and reads as zeros', async () => {
    const { store, file } = await fileOf(20 * 4096);
    const before = store.bytes().length;
    await file.punch(4096, 3 * 4096 + 10);
    await file.commit();
    expect(store.bytes().length).toBe(before);
    const reopened = await SealedFileV2.open(store, KEY);
    const expected = pattern(20 * 4096);
    expected.fill(0, 4096, 4 * 4096 + 10);
    expect(Buffer.from(await reopened.read(0, 20 * 4096)).equals(Buffer.from(expected))).toBe(true);
  });
});

describe('format 2 frozen vectors (test/vectors/v2/)', () => {
  for (const name of ['aes-256-gcm-4096', 'aes-256-gcm-65536', 'chacha20-poly1305-4096', 'chacha20-poly1305-65536']) {
    it(`sealfs opens every case of ${name} and finds its size and version`, async () => {
      const vector = JSON.parse(readFileSync(new URL(`./vectors/v2/${name}.json`, import.meta.url), 'utf8')) as {
        masterKey: string;
        cases: { name: string; plaintextSize: number; version: number; sealedLength: number; segments: { offset: number; hex: string }[] }[];
      };
      const key = { contentKey2: deriveSubkey(Buffer.from(vector.masterKey, 'hex'), 'content2') };
      for (const c of vector.cases) {
        const bytes = new Uint8Array(c.sealedLength);
        for (const s of c.segments) bytes.set(Buffer.from(s.hex, 'hex'), s.offset);
        const file = await SealedFileV2.open(new MemoryStore(bytes), key);
        expect([file.size, file.version], c.name).toEqual([c.plaintextSize, c.version]);
        expect((await file.read(0, c.plaintextSize)).length).toBe(c.plaintextSize);
      }
    });
  }
});

describe('format 2: cutting then extending in one batch, and a file changed underneath (attacker review)', () => {
  const C = 4096;
  const zero = (b: Uint8Array) => b.every((x) => x === 0);
  async function thousandChunks() {
    const store = new MemoryStore();
    const file = await SealedFileV2.create(store, KEY, SMALL);
    await file.write(0, pattern(1000 * C));
    await file.commit();
    return { store, file };
  }

  it('truncate down then back up to the same size commits, and the cut range reads as zeros after reopening', async () => {
    const { store, file } = await thousandChunks();
    await file.truncate(10 * C);
    await file.truncate(1000 * C);
    expect(await file.commit()).not.toBeUndefined();
    expect(zero(await (await SealedFileV2.open(store, KEY)).read(900 * C, 16))).toBe(true);
  });

  it('a node cached before the cut never serves the cut data through the same handle', async () => {
    const { store, file } = await thousandChunks();
    await file.read(900 * C, 16);
    await file.truncate(10 * C);
    await file.truncate(1000 * C - 5);
    await file.commit();
    expect(zero(await (await SealedFileV2.open(store, KEY)).read(900 * C, 16))).toBe(true);
    expect(zero(await file.read(900 * C, 16))).toBe(true);
  });

  it('a hole past a cut reads as zeros in the writing handle when the tree grows to three levels', async () => {
    const store = new MemoryStore();
    const file = await SealedFileV2.create(store, KEY, SMALL);
    await file.write(256 * C - 63, pattern(64));
    await file.commit();
    await file.read(256 * C - 63, 64);
    await file.truncate(0);
    await file.write(65536 * C, Uint8Array.of(1));
    await file.commit();
    expect(zero(await file.read(256 * C, 16))).toBe(true);
  });

  it('a commit over a file another writer changed since it was opened writes nothing and says so', async () => {
    const { store, file: a } = await thousandChunks();
    const b = await SealedFileV2.open(store, KEY);
    await b.write(600 * C, Uint8Array.of(9));
    await b.commit();
    await a.write(5, Uint8Array.of(7));
    expect(await problemOf(() => a.commit())).toBe('incomplete');
    const reopened = await SealedFileV2.open(store, KEY);
    expect(reopened.version).toBe(b.version);
    expect([...(await reopened.read(600 * C, 1)), ...(await reopened.read(5, 1))]).toEqual([9, pattern(6)[5]]);
  });

  it('refuses negative positions and a root naming a size beyond 2^53 bytes of file', async () => {
    const { store, file } = await thousandChunks();
    await expect(file.read(-1, 5)).rejects.toThrow(RangeError);
    await expect(file.punch(-5000, 10)).rejects.toThrow(RangeError);
    const huge = new MemoryStore(store.bytes());
    const root = Buffer.alloc(8);
    root.writeBigUInt64BE(2n ** 53n - 1n);
    await huge.write(root, 24);
    expect(await problemOf(() => SealedFileV2.open(huge, KEY))).toBe('incomplete');
  });
});
