import type { ContentContext } from './context.js';
import { newFileHeader } from './context.js';
import { FormatError } from './errors.js';
import { FileCipher } from './filecipher.js';
import { HEADER_BYTES, parseHeader } from './header.js';
import {
  chunkIndexAt,
  chunkPlainStart,
  chunksPerBatch,
  chunksPlainRange,
  lastChunkIndex,
  plainSizeOf,
  runChunkAt,
  runChunkOffset,
  runSealedLength,
  sealedChunkOffset,
  sealedSize,
  storedChunkBytes,
} from './geometry.js';
import type { ByteStore } from './store.js';

/** Plaintext bytes handled per backend call when a range spans many chunks. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Contiguous writes are gathered up to this size and sealed in one run. */
export const WRITE_BACK_BYTES = 2 * 1024 * 1024;
/**
 * Gathered writes reach the store at the latest this long after the first of them, unless
 * the caller says otherwise (a mount passes its MountSettings.writeBackMs).
 */
export const WRITE_BACK_DELAY_MS = 1000;
/** A read decrypts at least this much ahead, so sequential reads cost one call per batch. */
const READ_AHEAD_BYTES = 1024 * 1024;
/** Stored bytes read together with the header when a file is opened. */
const PREFETCH_BYTES = 1024 * 1024;
/** Decrypted read-ahead is served for at most this long. */
const READ_CACHE_MS = 1000;

/** Writes gathered in memory: the plaintext for [start, start + length). */
interface PendingWrite {
  readonly start: number;
  data: Buffer;
  length: number;
}

/**
 * The store's modification time, for a store that has one (a cipher file): see
 * SealedFile.modifiedNs.
 */
export interface StoreTimes {
  /** The wall clock in ns since the epoch: the time a write is given. */
  now(): bigint;
  /** Gives the store this modification time (ns since the epoch); the access time stays. */
  setModified(ns: bigint): Promise<void>;
}

/** Verified plaintext of chunks first, first + 1, …, kept for sequential reads. */
interface ReadAhead {
  readonly first: number;
  readonly plain: Uint8Array;
  readonly at: number;
}

/**
 * Random access to one sealed file: reads decrypt only the chunks they touch, writes
 * re-seal only the chunks they touch (read-modify-write at the edges), and the final-chunk
 * flag always sits on the real last chunk. Operations on one instance run one at a time,
 * so concurrent writers never interleave a read-modify-write.
 *
 * Sequential writes are gathered (at most WRITE_BACK_BYTES, at most WRITE_BACK_DELAY_MS)
 * and sealed together, so a stream of small writes neither re-seals the last chunk for
 * every write nor pays a store round trip each time; flush() and sync() write them out.
 */
export class SealedFile {
  private queue: Promise<unknown> = Promise.resolve();
  private pending: PendingWrite | undefined;
  private pendingTimer: NodeJS.Timeout | undefined;
  /** A failure of a timed write-back, reported by the next flush() or sync(). */
  private deferredError: unknown;
  private readAhead: ReadAhead | undefined;
  /** Stored bytes after the header, read at open. */
  private prefetched: { readonly bytes: Uint8Array; readonly at: number } | undefined;
  /** Sealed bytes the store has been given room for (allocateFor) beyond what it holds. */
  private allocatedEnd = 0;
  /** Set when the store's file system has no fallocate: writes then go out unreserved. */
  private cannotAllocate = false;
  /**
   * The file's modification time while gathered writes wait (ns since the epoch): the time of
   * the last write, or a time set since (setModified). The write-back gives it to the store,
   * whose own time would otherwise be that of the write-back.
   */
  private modified: bigint | undefined;
  /** Where the modification time is kept; without it (memory stores) times are not tracked. */
  times: StoreTimes | undefined;

  /**
   * @param endVerified whether the final chunk at `plainSize` verified (or was sealed here):
   *   only that chunk proves where the file ends, so until then no read may answer
   *   "end of file", and an empty file (one empty chunk) is as unproven as any other.
   */
  private constructor(
    private readonly store: ByteStore,
    private readonly cipher: FileCipher,
    private plainSize: number,
    private readonly writeBackMs: number,
    private endVerified: boolean,
  ) {}

  /**
   * Starts a new, empty file in `store` (header plus one empty final chunk). `storeIsEmpty`
   * skips cutting the store to size, for a file that was just created.
   */
  static async create(store: ByteStore, ctx: ContentContext, storeIsEmpty = false, writeBackMs = WRITE_BACK_DELAY_MS): Promise<SealedFile> {
    const cipher = new FileCipher(ctx, newFileHeader(ctx));
    const empty = cipher.sealSync(0, true, new Uint8Array(0));
    const bytes = new Uint8Array(HEADER_BYTES + empty.length);
    bytes.set(cipher.header.bytes, 0);
    bytes.set(empty, HEADER_BYTES);
    await store.write(bytes, 0);
    if (!storeIsEmpty) await store.truncate(bytes.length);
    return new SealedFile(store, cipher, 0, writeBackMs, true);
  }

  /**
   * Opens an existing sealed file; `chunkSize`, when given, is what the vault expects. With
   * the store's size known, the header and the first chunks come in one read, kept (still
   * unverified, as they are stored) for the first read of the file. Nothing is verified
   * here: verifyEnd() proves the size, and every read checks the chunks it returns.
   */
  static async open(store: ByteStore, ctx: ContentContext, chunkSize?: number, storeSize?: number, writeBackMs = WRITE_BACK_DELAY_MS): Promise<SealedFile> {
    const prefix = Buffer.allocUnsafe(storeSize === undefined ? HEADER_BYTES : Math.min(storeSize, HEADER_BYTES + PREFETCH_BYTES));
    const got = await store.read(prefix, 0);
    const header = parseHeader(prefix.subarray(0, got));
    if (chunkSize !== undefined && header.chunkSize !== chunkSize) {
      throw new FormatError('bad-header', `header says chunk size ${header.chunkSize}, the vault uses ${chunkSize}`);
    }
    const size = plainSizeOf(storeSize ?? (await store.size()), header.chunkSize);
    const file = new SealedFile(store, new FileCipher(ctx, header), size, writeBackMs, false);
    if (got > HEADER_BYTES) file.prefetched = { bytes: prefix.subarray(HEADER_BYTES, got), at: Date.now() };
    return file;
  }

  /**
   * Plaintext size, gathered writes included. For a file just opened this is what the stored
   * length says; it is proven once verifyEnd() (or a read reaching the end) has verified the
   * final chunk.
   */
  get size(): number {
    return this.pending ? Math.max(this.plainSize, this.pending.start + this.pending.length) : this.plainSize;
  }

  /** Whether gathered writes have yet to reach the store. */
  get hasPendingWrites(): boolean {
    return this.pending !== undefined;
  }

  /**
   * The modification time to show while it differs from the store's (gathered writes wait, or
   * are being written out); undefined when the store's own time is the file's. A write moves
   * it at once, as on a local disk, not only when its bytes reach the store.
   */
  get modifiedNs(): bigint | undefined {
    return this.modified;
  }

  /**
   * A modification time set explicitly (utimensat, futimens): kept for the write-back of the
   * gathered writes that wait, which would otherwise stamp the store with its own time. The
   * caller sets the store's times itself; with nothing gathered this does nothing more.
   */
  setModified(ns: bigint): Promise<void> {
    return this.exclusive(async () => {
      if (this.pending) this.modified = ns;
    });
  }

  get header() {
    return this.cipher.header;
  }

  private get chunkSize(): number {
    return this.cipher.chunkSize;
  }

  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private lastIndex(size: number): number {
    return lastChunkIndex(size, this.chunkSize);
  }

  private batchChunks(): number {
    return chunksPerBatch(BATCH_BYTES, this.chunkSize);
  }

  /** Plaintext of chunks first..last of a file whose plaintext size is `size`. */
  private async readChunks(first: number, last: number, size: number): Promise<Uint8Array> {
    const C = this.chunkSize;
    const range = chunksPlainRange(first, last, size, C);
    const length = runSealedLength(range.end - range.start, C);
    const offset = sealedChunkOffset(first, C);
    const pre = this.prefetched;
    const prefetchedAt = runChunkOffset(first, C); // the prefetched bytes start after the header
    const endsFile = last === this.lastIndex(size);
    let sealed: Uint8Array;
    if (pre && Date.now() - pre.at < READ_CACHE_MS && prefetchedAt + length <= pre.bytes.length) {
      sealed = pre.bytes.subarray(prefetchedAt, prefetchedAt + length);
    } else {
      sealed = Buffer.allocUnsafe(length);
      const got = await this.store.read(sealed, offset);
      if (got < sealed.length) {
        const chunk = first + runChunkAt(got, C);
        throw new FormatError('truncated', `file ends inside chunk ${chunk}: it was cut short`, chunk);
      }
    }
    const plain = await this.cipher.open(first, endsFile, sealed);
    if (endsFile) this.endVerified = true;
    return plain;
  }

  /**
   * Verifies the final chunk once, so that the size is proven and a read may answer "end of
   * file". Its plaintext stays in the read-ahead: for a file of one chunk, the first read
   * costs nothing more.
   */
  verifyEnd(): Promise<void> {
    return this.exclusive(async () => {
      await this.flushLocked();
      await this.verifyEndLocked();
    });
  }

  private async verifyEndLocked(): Promise<void> {
    if (this.endVerified) return;
    const last = this.lastIndex(this.plainSize);
    await this.cachedChunks(last, last, this.plainSize);
  }

  read(position: number, length: number): Promise<Uint8Array> {
    return this.exclusive(async () => {
      await this.flushLocked();
      const size = this.plainSize;
      const end = Math.min(size, position + length);
      // Nothing to return (at or past the end, or a read of nothing): only a verified final
      // chunk says the file holds no more. A read that reaches the end verifies it anyway.
      if (position >= end) {
        await this.verifyEndLocked();
        return new Uint8Array(0);
      }
      const first = chunkIndexAt(position, this.chunkSize);
      const last = this.lastIndex(end);
      const plain = await this.cachedChunks(first, last, size);
      const start = chunkPlainStart(first, this.chunkSize);
      return plain.subarray(position - start, end - start);
    });
  }

  /**
   * Plaintext of chunks first..last (possibly more after them), from the read-ahead when it
   * holds them. A damaged chunk beyond `last` must not fail this read: then only the
   * requested chunks are read again.
   */
  private async cachedChunks(first: number, last: number, size: number): Promise<Uint8Array> {
    const C = this.chunkSize;
    const ahead = this.readAhead;
    if (ahead && Date.now() - ahead.at < READ_CACHE_MS && ahead.first <= first) {
      const cachedEnd = chunkPlainStart(ahead.first, C) + ahead.plain.length;
      if (cachedEnd >= chunksPlainRange(first, last, size, C).end) return ahead.plain.subarray(chunkPlainStart(first - ahead.first, C));
    }
    const wanted = Math.max(last, first + chunksPerBatch(READ_AHEAD_BYTES, C) - 1);
    const until = Math.min(wanted, this.lastIndex(size));
    let plain: Uint8Array;
    try {
      plain = await this.readRange(first, until, size);
    } catch (err) {
      if (!(err instanceof FormatError) || err.chunk === undefined || err.chunk <= last || until === last) throw err;
      plain = await this.readRange(first, last, size);
    }
    this.readAhead = { first, plain, at: Date.now() };
    return plain;
  }

  /** Plaintext of chunks first..last, read and opened in batches. */
  private async readRange(first: number, last: number, size: number): Promise<Uint8Array> {
    if (last - first < this.batchChunks()) return this.readChunks(first, last, size);
    const C = this.chunkSize;
    const range = chunksPlainRange(first, last, size, C);
    const out = Buffer.allocUnsafe(range.end - range.start);
    for (let a = first; a <= last; a += this.batchChunks()) {
      const b = Math.min(last, a + this.batchChunks() - 1);
      out.set(await this.readChunks(a, b, size), chunkPlainStart(a - first, C));
    }
    return out;
  }

  /**
   * Writes `data` at `position`; an unproven final chunk is verified first, never built upon.
   * A write that grows the file takes the room its sealed bytes will need first
   * (allocateFor), so that a full disk fails this write with ENOSPC, before it is gathered
   * and acknowledged, rather than a later write-back.
   */
  write(position: number, data: Uint8Array): Promise<void> {
    return this.exclusive(async () => {
      await this.verifyEndLocked();
      this.readAhead = undefined;
      if (data.length > 0 && position + data.length > this.size) await this.allocateFor(position + data.length);
      const now = this.times?.now();
      if (this.gather(position, data)) {
        this.modified = now;
        return;
      }
      await this.flushLocked();
      if (position <= this.plainSize && data.length > 0 && data.length < WRITE_BACK_BYTES) {
        await this.startPending(position);
        this.gather(position, data);
        this.modified = now;
        this.pendingTimer = setTimeout(() => void this.exclusive(() => this.flushLocked()).catch((err) => (this.deferredError = err)), this.writeBackMs);
        this.pendingTimer.unref();
        return;
      }
      await this.writeLocked(position, data);
    });
  }

  /**
   * Starts gathering at `position`. The region starts on a chunk boundary, with the old bytes
   * of a partly overwritten chunk read (and verified) now, so a write into a damaged chunk
   * fails at once rather than at the later write-back.
   */
  private async startPending(position: number): Promise<void> {
    const chunk = chunkIndexAt(position, this.chunkSize);
    const start = chunkPlainStart(chunk, this.chunkSize);
    const head = start < position ? (await this.readChunks(chunk, chunk, this.plainSize)).subarray(0, position - start) : undefined;
    this.pending = { start, data: Buffer.allocUnsafe(64 * 1024), length: 0 };
    if (head) this.gather(start, head);
  }

  /** Adds a write to the gathered ones when it continues or overlaps them; false otherwise. */
  private gather(position: number, data: Uint8Array): boolean {
    const pending = this.pending;
    if (!pending || position < pending.start || position > pending.start + pending.length) return false;
    const end = position - pending.start + data.length;
    if (end > WRITE_BACK_BYTES) return false;
    if (end > pending.data.length) {
      const grown = Buffer.allocUnsafe(Math.min(WRITE_BACK_BYTES, Math.max(end, pending.data.length * 2)));
      pending.data.copy(grown, 0, 0, pending.length);
      pending.data = grown;
    }
    pending.data.set(data, position - pending.start);
    pending.length = Math.max(pending.length, end);
    return true;
  }

  /**
   * Waits for every call queued so far and writes gathered writes out, leaving a failed timed
   * write-back to be reported by the next flush() (the one a close or fsync makes).
   */
  settle(): Promise<void> {
    return this.exclusive(() => this.flushLocked().catch((err: unknown) => void (this.deferredError ??= err)));
  }

  /** Writes gathered writes out to the store; reports a failed timed write-back. */
  flush(): Promise<void> {
    return this.exclusive(async () => {
      await this.flushLocked();
      this.throwDeferred();
    });
  }

  private throwDeferred(): void {
    const failed = this.deferredError;
    this.deferredError = undefined;
    if (failed) throw failed;
  }

  private async flushLocked(): Promise<void> {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    clearTimeout(this.pendingTimer);
    try {
      await this.writeLocked(pending.start, pending.data.subarray(0, pending.length));
      // The store's time is now the write-back's: given the file's own back.
      if (this.modified !== undefined) await this.times?.setModified(this.modified);
    } finally {
      this.modified = undefined;
    }
  }

  /**
   * Makes sure the store has room for the sealed form of a file of plaintext size `plainEnd`
   * (fallocate without changing the size: ByteStore.allocate), so that a write growing the
   * file can be refused with ENOSPC while nothing of it was written. Overwrites in place need
   * no new room on the file systems that allocate in place (ext4, tmpfs, xfs); a file system
   * without fallocate is written unreserved, and writeLocked's rollback keeps the file valid.
   */
  private async allocateFor(plainEnd: number): Promise<void> {
    if (!this.store.allocate || this.cannotAllocate) return;
    const need = sealedSize(plainEnd, this.chunkSize);
    const have = Math.max(this.allocatedEnd, sealedSize(this.plainSize, this.chunkSize));
    if (need <= have) return;
    try {
      await this.store.allocate(have, need - have);
      this.allocatedEnd = need;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        this.cannotAllocate = true;
        return;
      }
      // A refused fallocate may keep what it got before it ran out (ext4): cutting the file to
      // its own size hands that back.
      await this.store
        .size()
        .then((stored) => this.store.truncate(stored))
        .catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes `data` at `position`; bytes between the old end and `position` read as zeros.
   *
   * A write that grows the file goes out in steps of at most a batch, each one system call
   * that leaves a valid file behind: the step's last chunk is sealed final, and the next step
   * starts by sealing it again as non-final. So the old last chunk is never left re-sealed as
   * non-final without its successor, also when a later step fails or the server is killed
   * between steps (a step costs one chunk sealed twice per batch). When a step fails (a full
   * disk on a file system without fallocate, an I/O error), the file is cut back to the last
   * valid state (at worst the old file) and its last chunk sealed again as final, then the
   * error is reported.
   */
  private async writeLocked(position: number, data: Uint8Array): Promise<void> {
    const size = this.plainSize;
    const end = position + data.length;
    if (data.length === 0 && position <= size) return;
    this.prefetched = undefined;
    const C = this.chunkSize;
    const newSize = Math.max(size, end);
    const growing = newSize > size;
    if (growing) await this.allocateFor(newSize);
    const oldLast = this.lastIndex(size);
    // Growing the file moves the final flag, so the old last chunk is re-sealed even
    // when the new bytes start in the chunk after it.
    let first = chunkIndexAt(Math.min(position, size), C);
    if (growing) first = Math.min(first, oldLast);
    const last = this.lastIndex(end);
    // The old bytes of the edge chunks, read before anything is written; and the plaintext
    // of the old last chunk, to seal it again as final if a growing write must be undone.
    const kept = new Map<number, Uint8Array>();
    for (const c of new Set([first, last])) {
      const old = await this.oldBytesKept(c, size, position, end);
      if (old) kept.set(c, old);
    }
    let valid = { size, lastChunk: oldLast, plain: growing ? (kept.get(oldLast) ?? (size === 0 ? new Uint8Array(0) : await this.readChunks(oldLast, oldLast, size))) : undefined };
    const span = Math.max(2, this.batchChunks());
    let a = first;
    try {
      for (;;) {
        const b = Math.min(last, a + span - 1);
        const { start: regionStart, end: regionEnd } = chunksPlainRange(a, b, newSize, C);
        const plain = new Uint8Array(regionEnd - regionStart);
        for (const [c, old] of kept) if (c >= a && c <= b) plain.set(old, chunkPlainStart(c, C) - regionStart);
        const from = Math.max(position, regionStart);
        const to = Math.min(end, regionEnd);
        if (to > from) plain.set(data.subarray(from - position, to - position), from - regionStart);
        const sizeAfter = Math.max(valid.size, regionEnd);
        const final = b === this.lastIndex(sizeAfter);
        const sealed = await this.cipher.seal(a, final, plain);
        await this.store.write(sealed, sealedChunkOffset(a, C));
        if (final && growing) valid = { size: sizeAfter, lastChunk: b, plain: plain.subarray(chunkPlainStart(b - a, C)) };
        else valid = { ...valid, size: sizeAfter };
        this.plainSize = sizeAfter;
        if (b === last) break;
        a = final ? b : b + 1;
      }
    } catch (err) {
      if (growing && valid.plain) await this.cutBack(valid.size, valid.lastChunk, valid.plain).catch(() => undefined);
      throw err;
    }
    // The final chunk is now one sealed here.
    if (last === this.lastIndex(newSize)) this.endVerified = true;
  }

  /**
   * Undoes a failed step of a growing write: the store is cut to the valid file of plaintext
   * size `size`, whose last chunk `lastChunk` (plaintext `plain`) is sealed final again.
   */
  private async cutBack(size: number, lastChunk: number, plain: Uint8Array): Promise<void> {
    const C = this.chunkSize;
    this.plainSize = size;
    this.allocatedEnd = 0;
    await this.store.truncate(sealedSize(size, C));
    await this.store.write(await this.cipher.seal(lastChunk, true, plain), sealedChunkOffset(lastChunk, C));
  }

  /**
   * The old plaintext of chunk `c` (of a file of `size` bytes) when the write [position, end)
   * keeps some of it; undefined when it replaces all of it or the chunk holds nothing.
   */
  private async oldBytesKept(c: number, size: number, position: number, end: number): Promise<Uint8Array | undefined> {
    const { start: oldStart, end: oldEnd } = chunksPlainRange(c, c, size, this.chunkSize);
    if (oldEnd <= oldStart) return undefined;
    if (position <= oldStart && end >= oldEnd) return undefined;
    return this.readChunks(c, c, size);
  }

  truncate(newSize: number): Promise<void> {
    return this.exclusive(async () => {
      await this.flushLocked();
      this.readAhead = undefined;
      this.prefetched = undefined;
      const size = this.plainSize;
      // An unproven final chunk is sealed again (verified first when bytes of it stay), so a
      // file truncated to its own size reads back as what it claims to be.
      if (newSize === size && this.endVerified) return;
      if (newSize > size) return this.writeLocked(newSize, new Uint8Array(0));
      const C = this.chunkSize;
      const last = this.lastIndex(newSize);
      const keep = newSize - chunkPlainStart(last, C);
      const plain = newSize === 0 ? new Uint8Array(0) : (await this.readChunks(last, last, size)).subarray(0, keep);
      const sealed = await this.cipher.seal(last, true, plain);
      await this.store.write(sealed, sealedChunkOffset(last, C));
      await this.store.truncate(sealedSize(newSize, C));
      this.plainSize = newSize;
      this.allocatedEnd = 0;
      this.endVerified = true;
    });
  }

  /**
   * fallocate(2) on the plaintext (docs/FORMAT.md §14.3). The store's `allocate` reserves disk
   * space for the stored bytes without changing its size; it runs first, so a full disk fails
   * the call before anything is changed. Then:
   * - `zero`: bytes [offset, offset + length) read as zeros (their chunks re-sealed with zeros:
   *   authenticated, no real hole); with `keepSize` only the part within the file;
   * - otherwise the space is reserved, and without `keepSize` a file shorter than offset + length
   *   grows to it (zeros, as truncate extends).
   * A store that cannot reserve (EOPNOTSUPP) still gets its zeros written, as posix_fallocate
   * does without fallocate; only a pure reservation (`keepSize`, not `zero`) then fails.
   */
  allocate(offset: number, length: number, how: { readonly zero: boolean; readonly keepSize: boolean }): Promise<void> {
    return this.exclusive(async () => {
      await this.verifyEndLocked();
      await this.flushLocked();
      this.readAhead = undefined;
      const C = this.chunkSize;
      const size = this.plainSize;
      const end = offset + length;
      // From the chunk where the change starts (the old final chunk is re-sealed when the file
      // grows) to the end of the chunk holding the range's last byte.
      const from = sealedChunkOffset(chunkIndexAt(Math.min(offset, size), C), C);
      const to = sealedChunkOffset(chunkIndexAt(end - 1, C), C) + storedChunkBytes(C);
      try {
        if (!this.store.allocate) throw Object.assign(new Error('this store allocates nothing'), { code: 'EOPNOTSUPP' });
        await this.store.allocate(from, to - from);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'EOPNOTSUPP' && code !== 'ENOTSUP') || (how.keepSize && !how.zero)) throw err;
      }
      if (how.zero) {
        const zeroEnd = how.keepSize ? Math.min(end, size) : end;
        const piece = chunksPerBatch(BATCH_BYTES, C) * C;
        const zeros = new Uint8Array(Math.min(piece, Math.max(0, zeroEnd - offset)));
        for (let p = offset; p < zeroEnd; ) {
          const q = Math.min(zeroEnd, (Math.floor(p / piece) + 1) * piece);
          await this.writeLocked(p, zeros.subarray(0, q - p));
          p = q;
        }
      } else if (!how.keepSize && end > size) {
        await this.writeLocked(end, new Uint8Array(0));
      }
    });
  }

  /** Writes gathered writes out and makes everything durable in the store. */
  sync(): Promise<void> {
    return this.exclusive(async () => {
      await this.flushLocked();
      this.throwDeferred();
      await this.store.sync();
    });
  }
}
