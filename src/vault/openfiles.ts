import { constants } from 'node:fs';
import type { ContentContext } from '../crypto/context.js';
import { SealedFile } from '../crypto/sealedfile.js';
import { fdStore } from '../crypto/store.js';
import { sealedSize } from '../crypto/layout.js';
import { cipherIo } from './cipherio.js';

/**
 * How often an open file checks whether a sync client replaced or rewrote its ciphertext
 * underneath; the documented bound on serving an old version.
 */
export const REVALIDATE_MS = 1000;

/**
 * One open ciphertext file, shared by every handle on it (hard links included), so that
 * all writers go through one SealedFile and its one-at-a-time queue.
 */
export class OpenFile {
  private checkedAt = Date.now();
  refs = 0;
  /**
   * Set when the name this file was opened under was unlinked or replaced through the mount:
   * a new file there is not a newer version of this one, so it is no longer looked for.
   */
  detached = false;

  private constructor(
    private readonly ctx: ContentContext,
    private readonly chunkSize: number,
    public cipherPath: string,
    public plainPath: string,
    public ino: number,
    private fd: number,
    public sealed: SealedFile,
    readonly writable: boolean,
  ) {}

  /**
   * Opens the ciphertext file at `cipherPath` and tells its inode, so a caller can share an
   * OpenFile that already serves it before reading anything.
   */
  static async openDescriptor(cipherPath: string, create?: { mode: number }): Promise<CipherDescriptor> {
    const { fd, writable } = await openCipherFile(cipherPath, create);
    try {
      const st = await cipherIo().fstat(fd);
      return { fd, writable, ino: st.ino, size: st.size };
    } catch (err) {
      await closeDescriptor(fd);
      throw err;
    }
  }

  /** Serves an opened descriptor; closes it when the file turns out not to be a valid one. */
  static async fromDescriptor(
    ctx: ContentContext,
    chunkSize: number,
    cipherPath: string,
    plainPath: string,
    d: CipherDescriptor,
    create: boolean,
  ): Promise<OpenFile> {
    try {
      const store = fdStore(d.fd, cipherIo().direct);
      const sealed = create ? await SealedFile.create(store, ctx, true) : await SealedFile.open(store, ctx, chunkSize, d.size);
      return new OpenFile(ctx, chunkSize, cipherPath, plainPath, d.ino, d.fd, sealed, d.writable);
    } catch (err) {
      await closeDescriptor(d.fd);
      throw err;
    }
  }

  /**
   * Picks up a sync client's change: a replaced file (new inode) is reopened; a file
   * rewritten in place (size no longer ours) is re-read. Each version has its own file id
   * and key, so chunks of two versions can never be mixed in one read.
   */
  async revalidate(): Promise<void> {
    // Gathered writes go out first (within WRITE_BACK_DELAY_MS); until then ours is the newest.
    if (this.detached || Date.now() - this.checkedAt < REVALIDATE_MS || this.sealed.hasPendingWrites) return;
    this.checkedAt = Date.now();
    const st = await cipherIo().lstat(this.cipherPath).catch(() => undefined);
    if (!st) return; // unlinked while open: keep serving the open file, as POSIX does
    if (st.ino !== this.ino) {
      const fresh = await openCipherFile(this.cipherPath);
      try {
        const sealed = await SealedFile.open(fdStore(fresh.fd, cipherIo().direct), this.ctx, this.chunkSize);
        const old = this.fd;
        this.fd = fresh.fd;
        this.sealed = sealed;
        this.ino = st.ino;
        await closeDescriptor(old);
      } catch (err) {
        await closeDescriptor(fresh.fd);
        throw err;
      }
    } else if (st.size !== sealedSize(this.sealed.size, this.chunkSize)) {
      this.sealed = await SealedFile.open(fdStore(this.fd, cipherIo().direct), this.ctx, this.chunkSize);
    }
  }

  async close(): Promise<void> {
    await closeDescriptor(this.fd);
  }
}

export interface CipherDescriptor {
  readonly fd: number;
  readonly writable: boolean;
  readonly ino: number;
  readonly size: number;
}


async function openCipherFile(path: string, create?: { mode: number }): Promise<{ fd: number; writable: boolean }> {
  if (create) {
    return { fd: await cipherIo().open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, create.mode), writable: true };
  }
  try {
    return { fd: await cipherIo().open(path, constants.O_RDWR), writable: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw err;
    return { fd: await cipherIo().open(path, constants.O_RDONLY), writable: false };
  }
}

export function closeDescriptor(fd: number): Promise<void> {
  return cipherIo().close(fd);
}
