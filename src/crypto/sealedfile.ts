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

  /** Writes `data` at `position`; an unproven final chunk is verified first, never built upon. */
  write(position: number, data: Uint8Array): Promise<void> {
    return this.exclusive(async () => {
      await this.verifyEndLocked();
      this.readAhead = undefined;
      if (this.gather(position, data)) return;
      await this.flushLocked();
      if (position <= this.plainSize && data.length > 0 && data.length < WRITE_BACK_BYTES) {
        await this.startPending(position);
        this.gather(position, data);
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
    await this.writeLocked(pending.start, pending.data.subarray(0, pending.length));
  }

  /** Writes `data` at `position`; bytes between the old end and `position` read as zeros. */
  private async writeLocked(position: number, data: Uint8Array): Promise<void> {
    const size = this.plainSize;
    const end = position + data.length;
    if (data.length === 0 && position <= size) return;
    this.prefetched = undefined;
    const C = this.chunkSize;
    const newSize = Math.max(size, end);
    const newLast = this.lastIndex(newSize);
    // Growing the file moves the final flag, so the old last chunk is re-sealed even
    // when the new bytes start in the chunk after it.
    let first = chunkIndexAt(Math.min(position, size), C);
    if (newSize > size) first = Math.min(first, this.lastIndex(size));
    const last = this.lastIndex(end);
    for (let a = first; a <= last; a += this.batchChunks()) {
      const b = Math.min(last, a + this.batchChunks() - 1);
      const { start: regionStart, end: regionEnd } = chunksPlainRange(a, b, newSize, C);
      const plain = new Uint8Array(regionEnd - regionStart);
      for (const c of new Set([a === first ? a : -1, b === last ? b : -1])) {
        if (c >= 0) await this.keepOldBytes(c, size, position, end, plain, regionStart);
      }
      const from = Math.max(position, regionStart);
      const to = Math.min(end, regionEnd);
      if (to > from) plain.set(data.subarray(from - position, to - position), from - regionStart);
      const sealed = await this.cipher.seal(a, b === newLast, plain);
      await this.store.write(sealed, sealedChunkOffset(a, C));
    }
    this.plainSize = newSize;
    // The final chunk is now one sealed here.
    if (last === newLast) this.endVerified = true;
  }

  /** Copies into `plain` the old bytes of chunk `c` that the write does not replace. */
  private async keepOldBytes(c: number, size: number, position: number, end: number, plain: Uint8Array, regionStart: number) {
    const { start: oldStart, end: oldEnd } = chunksPlainRange(c, c, size, this.chunkSize);
    if (oldEnd <= oldStart) return;
    if (position <= oldStart && end >= oldEnd) return;
    const old = await this.readChunks(c, c, size);
    plain.set(old, oldStart - regionStart);
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
      this.endVerified = true;
    });
  }

  /**
   * fallocate(2) on the plaintext (docs/FORMAT.md §16). `reserve(offset, length)` reserves
   * disk space for stored bytes without changing the store's size; it runs first, so a full
   * disk fails the call before anything is changed. Then:
   * - `zero`: bytes [offset, offset + length) read as zeros (their chunks re-sealed with zeros:
   *   authenticated, no real hole); with `keepSize` only the part within the file;
   * - otherwise the space is reserved, and without `keepSize` a file shorter than offset + length
   *   grows to it (zeros, as truncate extends).
   * A store that cannot reserve (EOPNOTSUPP) still gets its zeros written, as posix_fallocate
   * does without fallocate; only a pure reservation (`keepSize`, not `zero`) then fails.
   */
  allocate(offset: number, length: number, how: { readonly zero: boolean; readonly keepSize: boolean }, reserve: (offset: number, length: number) => Promise<void>): Promise<void> {
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
        await reserve(from, to - from);
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
