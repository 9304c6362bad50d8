import { CHUNK_OVERHEAD } from './ciphers.js';
import type { ContentContext } from './context.js';
import { newFileHeader } from './context.js';
import { FormatError } from './errors.js';
import { FileCipher } from './filecipher.js';
import { HEADER_BYTES, parseHeader } from './header.js';
import { plainSizeOf, sealedChunkOffset, sealedSize } from './layout.js';
import type { ByteStore } from './store.js';

/** Plaintext bytes handled per backend call when a range spans many chunks. */
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Random access to one sealed file: reads decrypt only the chunks they touch, writes
 * re-seal only the chunks they touch (read-modify-write at the edges), and the final-chunk
 * flag always sits on the real last chunk. Operations on one instance run one at a time,
 * so concurrent writers never interleave a read-modify-write.
 */
export class SealedFile {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly store: ByteStore,
    private readonly cipher: FileCipher,
    private plainSize: number,
  ) {}

  /** Starts a new, empty file in `store` (header plus one empty final chunk). */
  static async create(store: ByteStore, ctx: ContentContext): Promise<SealedFile> {
    const cipher = new FileCipher(ctx, newFileHeader(ctx));
    const empty = cipher.sealSync(0, true, new Uint8Array(0));
    const bytes = new Uint8Array(HEADER_BYTES + empty.length);
    bytes.set(cipher.header.bytes, 0);
    bytes.set(empty, HEADER_BYTES);
    await store.write(bytes, 0);
    await store.truncate(bytes.length);
    return new SealedFile(store, cipher, 0);
  }

  /** Opens an existing sealed file; `chunkSize`, when given, is what the vault expects. */
  static async open(store: ByteStore, ctx: ContentContext, chunkSize?: number): Promise<SealedFile> {
    const headerBytes = new Uint8Array(HEADER_BYTES);
    const got = await store.read(headerBytes, 0);
    const header = parseHeader(headerBytes.subarray(0, got));
    if (chunkSize !== undefined && header.chunkSize !== chunkSize) {
      throw new FormatError('bad-header', `header says chunk size ${header.chunkSize}, the vault uses ${chunkSize}`);
    }
    const size = plainSizeOf(await store.size(), header.chunkSize);
    return new SealedFile(store, new FileCipher(ctx, header), size);
  }

  get size(): number {
    return this.plainSize;
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
    return size === 0 ? 0 : Math.floor((size - 1) / this.chunkSize);
  }

  private batchChunks(): number {
    return Math.max(1, Math.floor(BATCH_BYTES / this.chunkSize));
  }

  /** Plaintext of chunks first..last of a file whose plaintext size is `size`. */
  private async readChunks(first: number, last: number, size: number): Promise<Uint8Array> {
    const C = this.chunkSize;
    const plainLength = Math.min((last + 1) * C, size) - first * C;
    const sealed = new Uint8Array(FileCipher.sealedLength(plainLength, C));
    const got = await this.store.read(sealed, sealedChunkOffset(first, C));
    if (got < sealed.length) {
      const chunk = first + Math.floor(got / (C + CHUNK_OVERHEAD));
      throw new FormatError('truncated', `file ends inside chunk ${chunk}: it was cut short`, chunk);
    }
    return this.cipher.open(first, last === this.lastIndex(size), sealed);
  }

  read(position: number, length: number): Promise<Uint8Array> {
    return this.exclusive(async () => {
      const size = this.plainSize;
      const end = Math.min(size, position + length);
      if (position >= end) return new Uint8Array(0);
      const C = this.chunkSize;
      const out = new Uint8Array(end - position);
      const lastChunk = this.lastIndex(end);
      for (let a = Math.floor(position / C); a <= lastChunk; a += this.batchChunks()) {
        const b = Math.min(lastChunk, a + this.batchChunks() - 1);
        const plain = await this.readChunks(a, b, size);
        const from = Math.max(position, a * C);
        const to = Math.min(end, a * C + plain.length);
        out.set(plain.subarray(from - a * C, to - a * C), from - position);
      }
      return out;
    });
  }

  write(position: number, data: Uint8Array): Promise<void> {
    return this.exclusive(() => this.writeLocked(position, data));
  }

  /** Writes `data` at `position`; bytes between the old end and `position` read as zeros. */
  private async writeLocked(position: number, data: Uint8Array): Promise<void> {
    const size = this.plainSize;
    const end = position + data.length;
    if (data.length === 0 && position <= size) return;
    const C = this.chunkSize;
    const newSize = Math.max(size, end);
    const newLast = this.lastIndex(newSize);
    // Growing the file moves the final flag, so the old last chunk is re-sealed even
    // when the new bytes start in the chunk after it.
    let first = Math.floor(Math.min(position, size) / C);
    if (newSize > size) first = Math.min(first, this.lastIndex(size));
    const last = this.lastIndex(end);
    for (let a = first; a <= last; a += this.batchChunks()) {
      const b = Math.min(last, a + this.batchChunks() - 1);
      const regionStart = a * C;
      const regionEnd = Math.min((b + 1) * C, newSize);
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
  }

  /** Copies into `plain` the old bytes of chunk `c` that the write does not replace. */
  private async keepOldBytes(c: number, size: number, position: number, end: number, plain: Uint8Array, regionStart: number) {
    const C = this.chunkSize;
    const oldStart = c * C;
    const oldEnd = Math.min((c + 1) * C, size);
    if (oldEnd <= oldStart) return;
    if (position <= oldStart && end >= oldEnd) return;
    const old = await this.readChunks(c, c, size);
    plain.set(old, oldStart - regionStart);
  }

  truncate(newSize: number): Promise<void> {
    return this.exclusive(async () => {
      const size = this.plainSize;
      if (newSize === size) return;
      if (newSize > size) return this.writeLocked(newSize, new Uint8Array(0));
      const C = this.chunkSize;
      const last = this.lastIndex(newSize);
      const keep = newSize - last * C;
      const plain = newSize === 0 ? new Uint8Array(0) : (await this.readChunks(last, last, size)).subarray(0, keep);
      const sealed = await this.cipher.seal(last, true, plain);
      await this.store.write(sealed, sealedChunkOffset(last, C));
      await this.store.truncate(sealedSize(newSize, C));
      this.plainSize = newSize;
    });
  }

  sync(): Promise<void> {
    return this.exclusive(() => this.store.sync());
  }
}
