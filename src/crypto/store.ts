import { fstat, fstatSync, fsync, ftruncate, ftruncateSync, read, readSync, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';

/** Where a sealed file's bytes live: a file descriptor in production, memory in tests. */
export interface ByteStore {
  size(): Promise<number>;
  /** Reads up to data.length bytes at `position`; returns how many were read. */
  read(data: Uint8Array, position: number): Promise<number>;
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>;
  truncate(size: number): Promise<void>;
  sync(): Promise<void>;
  /**
   * Makes sure [offset, offset + length) has room on the disk, without changing the size
   * (fallocate FALLOC_FL_KEEP_SIZE): rejects with ENOSPC when the disk cannot hold it, and
   * EOPNOTSUPP where its file system cannot tell. Absent where nothing is allocated (memory).
   */
  allocate?(offset: number, length: number): Promise<void>;
}

/** Allocates [offset, offset + length) of descriptor `fd` without changing its size. */
export type Reserver = (fd: number, offset: number, length: number) => Promise<void>;

const fstatAsync = promisify(fstat);
const readAsync = promisify(read);
const writeAsync = promisify(write);
const ftruncateAsync = promisify(ftruncate);
const fsyncAsync = promisify(fsync);

/**
 * A ByteStore over an open file descriptor, with asynchronous calls; or, with `direct`,
 * with synchronous system calls (for the mount server's cipher files; see CipherIo in
 * src/vault/cipherio.ts). sync() is asynchronous either way.
 */
export function fdStore(fd: number, direct = false, reserver?: Reserver): ByteStore {
  const store = fdStoreOf(fd, direct);
  if (reserver) store.allocate = (offset, length) => reserver(fd, offset, length);
  return store;
}

function fdStoreOf(fd: number, direct: boolean): ByteStore {
  if (direct) return directFdStore(fd);
  return {
    size: async () => (await fstatAsync(fd)).size,
    read: async (data, position) => {
      let done = 0;
      while (done < data.length) {
        const { bytesRead } = await readAsync(fd, data, done, data.length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done;
    },
    write: async (data, position) => {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await writeAsync(fd, data, done, data.length - done, position + done);
        done += bytesWritten;
      }
    },
    truncate: (size) => ftruncateAsync(fd, size),
    sync: () => fsyncAsync(fd),
  };
}

function directFdStore(fd: number): ByteStore {
  return {
    size: async () => fstatSync(fd).size,
    read: async (data, position) => {
      let done = 0;
      while (done < data.length) {
        const n = readSync(fd, data, done, data.length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    write: async (data, position) => {
      for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, position + done);
    },
    truncate: async (size) => ftruncateSync(fd, size),
    sync: () => fsyncAsync(fd),
  };
}

/** A growable in-memory ByteStore (tests, buffers). */
export class MemoryStore implements ByteStore {
  private data = new Uint8Array(0);
  private length = 0;

  constructor(initial?: Uint8Array) {
    if (initial) {
      this.data = Uint8Array.from(initial);
      this.length = initial.length;
    }
  }

  bytes(): Uint8Array {
    return this.data.subarray(0, this.length);
  }

  async size(): Promise<number> {
    return this.length;
  }

  async read(target: Uint8Array, position: number): Promise<number> {
    const n = Math.max(0, Math.min(target.length, this.length - position));
    target.set(this.data.subarray(position, position + n));
    return n;
  }

  async write(source: Uint8Array, position: number): Promise<void> {
    this.reserve(position + source.length);
    if (position > this.length) this.data.fill(0, this.length, position);
    this.data.set(source, position);
    this.length = Math.max(this.length, position + source.length);
  }

  async truncate(size: number): Promise<void> {
    this.reserve(size);
    if (size > this.length) this.data.fill(0, this.length, size);
    this.length = size;
  }

  async sync(): Promise<void> {}

  private reserve(size: number): void {
    if (size <= this.data.length) return;
    const grown = new Uint8Array(Math.max(size, this.data.length * 2));
    grown.set(this.data.subarray(0, this.length));
    this.data = grown;
  }
}
