import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { CipherName } from '../ciphers.js';
import { FormatError } from '../errors.js';
import { FORMAT_VERSION_2, HEADER_BYTES, newHeader, parseHeader, type FileHeader, FILE_ID_BYTES } from '../header.js';
import { deriveFileKeysV2 } from '../kdf.js';
import type { ByteStore } from '../store.js';
import { ChunkKeys, isZero, nodeHash, openChunk, rootMac, sealChunk, storedTag, uint64be, ZERO_ENTRY } from './chunkseal.js';
import {
  CHUNK_OVERHEAD_V2,
  chunkOffset,
  chunkPlainLength,
  ENTRY_BYTES,
  FANOUT,
  maxPlainSizeV2,
  nodeEntryCount,
  nodeOffset,
  parentOf,
  ROOT_BYTES,
  sealedSizeV2,
  topLevel,
  treeShape,
  type TreeShape,
} from './layout.js';

/** What a format-2 file needs besides its bytes: the vault's v2 content key and, for new files, how to seal. */
export interface ContentKeyV2 {
  readonly contentKey2: Uint8Array;
}

export interface NewFileOptions {
  readonly cipher: CipherName;
  readonly chunkSize: number;
  /** Fixed only by the frozen vectors; sealfs draws it at random. */
  readonly fileId?: Uint8Array;
  /** Fixed only by the frozen vectors: the seal id of chunk i in the commit making version v. */
  readonly sealIds?: (index: number, version: number) => Uint8Array;
}

/** One batch of byte ranges that turns a file's committed state into its next one (FORMAT.md §22). */
export interface CommitPlan {
  readonly oldLength: number;
  readonly newLength: number;
  /** Non-overlapping, in ascending offset order. */
  readonly ranges: readonly { readonly offset: number; readonly data: Uint8Array }[];
}

/** Writes a plan to the store; the vault's journal wraps this to make a commit atomic. */
export type CommitApplier = (store: ByteStore, plan: CommitPlan) => Promise<void>;

/**
 * Without a journal: grow first, write, the root last (until then the old root still vouches
 * for every chunk this commit did not touch), shrink last.
 */
export const applyInPlace: CommitApplier = async (store, plan) => {
  if (plan.newLength > plan.oldLength) await store.truncate(plan.newLength);
  for (const range of plan.ranges) if (range.offset !== HEADER_BYTES) await store.write(range.data, range.offset);
  for (const range of plan.ranges) if (range.offset === HEADER_BYTES) await store.write(range.data, range.offset);
  if (plan.newLength < plan.oldLength) await store.truncate(plan.newLength);
};

const nodeKey = (level: number, index: number): string => `${level}/${index}`;

function readExactly(store: ByteStore, offset: number, length: number, what: string): Promise<Uint8Array> {
  const data = new Uint8Array(length);
  return store.read(data, offset).then((got) => {
    if (got !== length) throw new FormatError('incomplete', `${what}: ${got} of ${length} bytes at offset ${offset}`);
    return data;
  });
}

function checkRange(position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`bad byte range: ${length} bytes at ${position}`);
  }
}

function equal16(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Random access to one format-2 file (docs/FORMAT.md §18): every byte released was verified
 * against the index tree, whose top the root's MAC vouches for with the file's size and
 * version. Writes gather in memory (whole chunks, or holes) until commit(), which seals them,
 * rebuilds the index nodes above them and the root, and hands the byte ranges to an applier.
 * Calls must not overlap (the vault layer serialises them per open file).
 */
export class SealedFileV2 {
  private readonly keys: ChunkKeys;
  private readonly indexKey: Uint8Array;
  /** The committed state: what the store holds. */
  private shape: TreeShape;
  private committedVersion: number;
  /** The 32 root bytes the store held when this state was verified or written. */
  private committedRoot = new Uint8Array(ROOT_BYTES);
  private top: Uint8Array;
  /** Verified committed index nodes by level/index; entries of a zero-hash node are zeros. */
  private readonly nodes = new Map<string, Uint8Array>();
  /** Chunks changed since the last commit: their whole new plaintext, or null for a hole. */
  private readonly pending = new Map<number, Uint8Array | null>();
  private pendingSize: number;
  /**
   * Committed chunks below this index are still current unless pending; from it on the file
   * was cut since the last commit, so a chunk there that is not pending is a hole.
   */
  private keptChunks: number;
  private sealIds?: (index: number, version: number) => Uint8Array;

  private constructor(
    private readonly store: ByteStore,
    readonly header: FileHeader,
    contentKey2: Uint8Array,
    shape: TreeShape,
    version: number,
  ) {
    const keys = deriveFileKeysV2(contentKey2, header.bytes);
    this.keys = new ChunkKeys(keys.chunkKeyKey);
    this.indexKey = keys.indexKey;
    this.shape = shape;
    this.pendingSize = shape.size;
    this.keptChunks = shape.chunks;
    this.committedVersion = version;
    this.top = ZERO_ENTRY;
  }

  /** A new, empty file (header and root, 56 bytes) written to an empty store. */
  static async create(store: ByteStore, key: ContentKeyV2, options: NewFileOptions, apply: CommitApplier = applyInPlace): Promise<SealedFileV2> {
    const header = newHeader(options.cipher, options.chunkSize, options.fileId ?? randomBytes(FILE_ID_BYTES), FORMAT_VERSION_2);
    const file = new SealedFileV2(store, header, key.contentKey2, treeShape(0, options.chunkSize), 0);
    file.sealIds = options.sealIds;
    await store.write(header.bytes, 0);
    await file.commit(apply);
    return file;
  }

  /** Opens a file: header, root, length and top node checked before anything is returned. */
  static async open(store: ByteStore, key: ContentKeyV2): Promise<SealedFileV2> {
    const head = new Uint8Array(HEADER_BYTES + ROOT_BYTES);
    const got = await store.read(head, 0);
    const header = parseHeader(head.subarray(0, Math.max(got, 0)), [FORMAT_VERSION_2]);
    if (got < head.length) throw new FormatError('truncated', `file is ${got} bytes, shorter than header and root (${head.length})`);
    const view = Buffer.from(head.buffer, head.byteOffset + HEADER_BYTES, ROOT_BYTES);
    const size = Number(view.readBigUInt64BE(0));
    const version = Number(view.readBigUInt64BE(8));
    if (!Number.isSafeInteger(size) || !Number.isSafeInteger(version)) {
      throw new FormatError('incomplete', `root names a size or version beyond 2^53 (size ${view.readBigUInt64BE(0)})`);
    }
    if (size > maxPlainSizeV2(header.chunkSize)) throw new FormatError('incomplete', `root names a size of ${size} bytes, beyond format 2's largest file`);
    const shape = treeShape(size, header.chunkSize);
    const expected = sealedSizeV2(shape);
    const actual = await store.size();
    if (actual !== expected) {
      throw new FormatError(
        'incomplete',
        `file is ${actual} bytes but its root says ${size} bytes of plaintext, which take ${expected} (an unfinished upload or write, or tampering)`,
      );
    }
    const file = new SealedFileV2(store, header, key.contentKey2, shape, version);
    file.committedRoot = Uint8Array.from(view);
    file.top = await file.readTop();
    const mac = rootMac(file.indexKey, header.bytes, size, version, file.top);
    if (!equal16(mac, view.subarray(16, 32))) {
      throw new FormatError('incomplete', 'the root does not match the file\'s index (an unfinished upload or write, or tampering)');
    }
    return file;
  }

  /** Plaintext size, with uncommitted changes. */
  get size(): number {
    return this.pendingSize;
  }

  /** The committed version (FORMAT.md §21). */
  get version(): number {
    return this.committedVersion;
  }

  get dirty(): boolean {
    return this.pending.size > 0 || this.pendingSize !== this.shape.size || this.keptChunks < this.shape.chunks;
  }

  private async readTop(): Promise<Uint8Array> {
    const shape = this.shape;
    const level = topLevel(shape);
    if (shape.chunks === 0) return ZERO_ENTRY;
    if (level === 0) {
      // One chunk: its tag is the top.
      const tagAt = chunkOffset(0, shape.chunkSize) + chunkPlainLength(shape, 0) + CHUNK_OVERHEAD_V2 - ENTRY_BYTES;
      return readExactly(this.store, tagAt, ENTRY_BYTES, 'the tag of chunk 0');
    }
    const node = await readExactly(this.store, nodeOffset(shape, level, 0), nodeEntryCount(shape, level, 0) * ENTRY_BYTES, `index node ${level}/0`);
    this.nodes.set(nodeKey(level, 0), node);
    return nodeHash(this.indexKey, level, 0, node);
  }

  /** A committed index node, verified against its parent's entry (which was verified first). */
  private async node(level: number, index: number): Promise<Uint8Array> {
    const cached = this.nodes.get(nodeKey(level, index));
    if (cached) return cached;
    const shape = this.shape;
    const length = nodeEntryCount(shape, level, index) * ENTRY_BYTES;
    const { index: parentIndex, slot } = parentOf(index);
    const parent = await this.node(level + 1, parentIndex);
    const entry = parent.subarray(slot * ENTRY_BYTES, (slot + 1) * ENTRY_BYTES);
    let node: Uint8Array;
    if (isZero(entry)) {
      node = new Uint8Array(length);
    } else {
      node = await readExactly(this.store, nodeOffset(shape, level, index), length, `index node ${level}/${index}`);
      if (!equal16(nodeHash(this.indexKey, level, index, node), entry)) {
        throw new FormatError('corrupt-index', `index node ${index} of level ${level} does not match its parent (damaged, replayed or tampered)`);
      }
    }
    this.nodes.set(nodeKey(level, index), node);
    return node;
  }

  /** The committed entry of chunk i: its tag, or zeros for a hole. */
  private async entry(index: number): Promise<Uint8Array> {
    if (topLevel(this.shape) === 0) return this.top;
    const node = await this.node(1, Math.floor(index / FANOUT));
    const slot = index % FANOUT;
    return node.subarray(slot * ENTRY_BYTES, (slot + 1) * ENTRY_BYTES);
  }

  /** Committed plaintext of chunk i, verified against its entry before anything is returned. */
  private async committedChunk(index: number): Promise<Uint8Array> {
    const shape = this.shape;
    const length = chunkPlainLength(shape, index);
    const entry = await this.entry(index);
    if (isZero(entry)) return new Uint8Array(length);
    const stored = await readExactly(this.store, chunkOffset(index, shape.chunkSize), length + CHUNK_OVERHEAD_V2, `chunk ${index}`);
    if (!equal16(storedTag(stored), entry)) {
      const authentic = openChunk(this.header.cipher, this.keys, this.header.bytes, index, stored) !== undefined;
      throw authentic
        ? new FormatError('stale-chunk', `chunk ${index} is authentic but not the version the file's index names (replayed)`, index)
        : new FormatError('corrupt-chunk', `chunk ${index} failed authentication (damaged, tampered, moved, or wrong key)`, index);
    }
    const plain = openChunk(this.header.cipher, this.keys, this.header.bytes, index, stored);
    if (!plain) throw new FormatError('corrupt-chunk', `chunk ${index} failed authentication (damaged, tampered, moved, or wrong key)`, index);
    return plain;
  }

  /** Chunk i's plaintext at the current (pending) size: pending, committed, or a hole's zeros. */
  private async currentChunk(index: number): Promise<Uint8Array> {
    const length = Math.min(this.shape.chunkSize, this.pendingSize - index * this.shape.chunkSize);
    const pending = this.pending.get(index);
    if (pending !== undefined) return pending ?? new Uint8Array(length);
    if (index >= this.keptChunks) return new Uint8Array(length);
    const committed = await this.committedChunk(index);
    if (committed.length === length) return committed;
    const resized = new Uint8Array(length);
    resized.set(committed.subarray(0, length));
    return resized;
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    checkRange(position, length);
    const end = Math.min(this.pendingSize, position + length);
    if (end <= position) return new Uint8Array(0);
    const C = this.shape.chunkSize;
    const out = new Uint8Array(end - position);
    for (let i = Math.floor(position / C); i * C < end; i++) {
      const chunk = await this.currentChunk(i);
      const from = Math.max(position, i * C);
      const to = Math.min(end, (i + 1) * C);
      out.set(chunk.subarray(from - i * C, to - i * C), from - position);
    }
    return out;
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    checkRange(position, data.length);
    if (data.length === 0) return;
    const end = position + data.length;
    if (!Number.isSafeInteger(end) || end > maxPlainSizeV2(this.shape.chunkSize)) throw new RangeError(`a write ending at ${end} is beyond format 2's largest file`);
    if (end > this.pendingSize) await this.resize(end);
    const C = this.shape.chunkSize;
    for (let i = Math.floor(position / C); i * C < end; i++) {
      const chunk = Uint8Array.from(await this.currentChunk(i));
      const from = Math.max(position, i * C);
      const to = Math.min(end, (i + 1) * C);
      chunk.set(data.subarray(from - position, to - position), from - i * C);
      this.pending.set(i, chunk);
    }
  }

  /** Sets the size: a longer file ends in a hole (nothing is written for it), a shorter one is cut. */
  async truncate(size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0 || size > maxPlainSizeV2(this.shape.chunkSize)) throw new RangeError(`size ${size} is beyond format 2's largest file`);
    await this.resize(size);
  }

  /** Makes [position, position + length) read as zeros: whole chunks become holes. */
  async punch(position: number, length: number): Promise<void> {
    checkRange(position, length);
    const end = Math.min(this.pendingSize, position + length);
    const C = this.shape.chunkSize;
    for (let i = Math.floor(position / C); i * C < end; i++) {
      const from = Math.max(position, i * C);
      const to = Math.min(end, (i + 1) * C);
      const chunkLength = Math.min(C, this.pendingSize - i * C);
      if (from === i * C && to === i * C + chunkLength) {
        this.pending.set(i, null);
      } else {
        const chunk = Uint8Array.from(await this.currentChunk(i));
        chunk.fill(0, from - i * C, to - i * C);
        this.pending.set(i, chunk);
      }
    }
  }

  private async resize(size: number): Promise<void> {
    const C = this.shape.chunkSize;
    const oldSize = this.pendingSize;
    if (size === oldSize) return;
    const oldLast = Math.ceil(oldSize / C) - 1;
    const newCount = Math.ceil(size / C);
    if (size > oldSize && oldLast >= 0 && oldSize % C !== 0) {
      // The old last chunk grows (padded with the hole's zeros): it is re-sealed at its new length.
      const chunk = await this.currentChunk(oldLast);
      const pending = this.pending.get(oldLast);
      const wasHole = pending === null || (pending === undefined && (oldLast >= this.keptChunks || isZero(await this.entry(oldLast))));
      const grown = new Uint8Array(Math.min(C, size - oldLast * C));
      grown.set(chunk);
      this.pending.set(oldLast, wasHole ? null : grown);
    }
    if (size < oldSize) {
      for (const index of [...this.pending.keys()]) if (index >= newCount) this.pending.delete(index);
      this.keptChunks = Math.min(this.keptChunks, newCount);
      const last = newCount - 1;
      if (last >= 0 && size % C !== 0) {
        const chunk = await this.currentChunk(last);
        const pending = this.pending.get(last);
        this.pending.set(last, pending === null ? null : chunk.slice(0, size - last * C));
      }
    }
    this.pendingSize = size;
  }

  /**
   * Seals the pending chunks, rebuilds the index nodes above them (and those whose entry
   * count or place changed with the size) and the root with version max(v, minVersion) + 1,
   * and writes them through `apply`. Nothing to do returns undefined.
   */
  async commit(apply: CommitApplier = applyInPlace, minVersion = 0): Promise<CommitPlan | undefined> {
    const fresh = this.shape.size === 0 && this.top === ZERO_ENTRY && this.committedVersion === 0;
    if (!this.dirty && !fresh) return undefined;
    const old = this.shape;
    const shape = treeShape(this.pendingSize, old.chunkSize);
    const ranges: { offset: number; data: Uint8Array }[] = [];
    // A one-chunk file keeps its chunk stored (its tag is the top): no hole there.
    if (shape.chunks === 1 && this.pending.get(0) === null) this.pending.set(0, new Uint8Array(chunkPlainLength(shape, 0)));
    if (shape.chunks === 1 && !this.pending.has(0) && isZero(await this.entryOrZero(0))) this.pending.set(0, await this.currentChunk(0));

    const version = Math.max(this.committedVersion, minVersion) + 1;
    const tags = new Map<number, Uint8Array>();
    for (const [index, plain] of [...this.pending].sort((a, b) => a[0] - b[0])) {
      if (plain === null) {
        tags.set(index, ZERO_ENTRY);
        continue;
      }
      const stored = sealChunk(this.header.cipher, this.keys, this.header.bytes, index, plain, this.sealIds?.(index, version));
      tags.set(index, Uint8Array.from(storedTag(stored)));
      ranges.push({ offset: chunkOffset(index, shape.chunkSize), data: stored });
    }

    const L = topLevel(shape);
    const written = new Map<string, Uint8Array>();
    let top: Uint8Array;
    if (shape.chunks === 0) top = ZERO_ENTRY;
    else if (L === 0) top = tags.get(0) ?? (await this.entryOrZero(0));
    else {
      // Bottom-up: a node is rebuilt when a changed chunk is beneath it or when it is among the
      // last of its level in either shape (its entry count or place may have changed).
      let dirtyBelow = new Set<number>([...tags.keys()]);
      let hashes = new Map<number, Uint8Array>(tags);
      for (let level = 1; level <= L; level++) {
        const oldCount = this.keptCount(level);
        const oldChildren = this.keptCount(level - 1);
        const boundary = Math.min(oldCount, shape.counts[level]!) - 1;
        const dirty = new Set<number>();
        for (const child of dirtyBelow) dirty.add(Math.floor(child / FANOUT));
        // Past the old children nothing was stored: such nodes are holes (hash zero) unless a
        // changed child sits in them, so extending by a terabyte builds no node for the hole.
        const lastWithOldChildren = Math.min(shape.counts[level]!, Math.ceil(oldChildren / FANOUT)) - 1;
        for (let k = Math.max(0, boundary); k <= lastWithOldChildren; k++) dirty.add(k);
        if (level === L) dirty.add(0);
        const nextHashes = new Map<number, Uint8Array>();
        for (const k of dirty) {
          const count = nodeEntryCount(shape, level, k);
          const node = new Uint8Array(count * ENTRY_BYTES);
          for (let slot = 0; slot < count; slot++) {
            const child = k * FANOUT + slot;
            node.set(hashes.get(child) ?? (await this.oldChildEntry(level, child)), slot * ENTRY_BYTES);
          }
          const hash = nodeHash(this.indexKey, level, k, node);
          nextHashes.set(k, hash);
          written.set(nodeKey(level, k), node);
          if (!isZero(node) || level === L) ranges.push({ offset: nodeOffset(shape, level, k), data: node });
        }
        dirtyBelow = dirty;
        hashes = nextHashes;
      }
      top = hashes.get(0) ?? ZERO_ENTRY;
    }

    const root = Buffer.concat([uint64be(shape.size), uint64be(version), rootMac(this.indexKey, this.header.bytes, shape.size, version, top)]);
    ranges.push({ offset: HEADER_BYTES, data: root });
    ranges.sort((a, b) => a.offset - b.offset);
    const plan: CommitPlan = { oldLength: sealedSizeV2(old) + (fresh ? -ROOT_BYTES : 0), newLength: sealedSizeV2(shape), ranges };
    if (!fresh) await this.checkUnchanged(old);
    await apply(this.store, plan);

    // The new committed state: nodes written now replace their old versions; others stay valid
    // only while their level and index still exist.
    for (const key of [...this.nodes.keys()]) {
      const [level, index] = key.split('/').map(Number) as [number, number];
      if (level > L || index >= shape.counts[level]! || written.has(key) || (index + 1) * FANOUT ** level > this.keptChunks) this.nodes.delete(key);
    }
    for (const [key, node] of written) this.nodes.set(key, node);
    this.shape = shape;
    this.top = top;
    this.committedVersion = version;
    this.committedRoot = Uint8Array.from(root);
    this.pending.clear();
    this.pendingSize = shape.size;
    this.keptChunks = shape.chunks;
    return plan;
  }

  /**
   * A commit builds on the state this instance verified: if another writer (another handle, or
   * a sync client replacing the file in place) changed the root or length since, writing over
   * it would mix two versions into a file that verifies as neither.
   */
  private async checkUnchanged(old: TreeShape): Promise<void> {
    const root = new Uint8Array(ROOT_BYTES);
    const got = await this.store.read(root, HEADER_BYTES);
    const length = await this.store.size();
    if (got !== ROOT_BYTES || !Buffer.from(root).equals(Buffer.from(this.committedRoot)) || length !== sealedSizeV2(old)) {
      throw new FormatError('incomplete', 'the file changed since it was opened (another writer or a sync client): nothing was written; open it again');
    }
  }

  /** The committed entry of chunk i, or zeros when no committed chunk i is kept. */
  private async entryOrZero(index: number): Promise<Uint8Array> {
    return index < this.keptChunks ? this.entry(index) : ZERO_ENTRY;
  }

  /**
   * Committed nodes at `level` (chunks at level 0) whose spans begin below the kept chunks:
   * the only ones whose committed entries commit() may reuse.
   */
  private keptCount(level: number): number {
    if (level > topLevel(this.shape)) return 0;
    let count = this.keptChunks;
    for (let l = 0; l < level; l++) count = Math.ceil(count / FANOUT);
    return count;
  }

  /**
   * The committed entry for child `child` of a level-`level` node that commit() did not
   * rebuild: it is unchanged and not among the last of its level, so the committed parent holds it.
   */
  private async oldChildEntry(level: number, child: number): Promise<Uint8Array> {
    if (child >= this.keptCount(level - 1)) return ZERO_ENTRY;
    if (level === 1) return this.entry(child);
    if (level > topLevel(this.shape)) return this.top;
    const parent = await this.node(level, Math.floor(child / FANOUT));
    const slot = child % FANOUT;
    return parent.subarray(slot * ENTRY_BYTES, (slot + 1) * ENTRY_BYTES);
  }
}
