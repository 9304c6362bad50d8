import { close, constants, open as openCallback } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { ContentContext } from '../crypto/context.js';
import { SealedFile } from '../crypto/sealedfile.js';
import { fdStore } from '../crypto/store.js';
import { sealedSize } from '../crypto/layout.js';

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

  static async open(ctx: ContentContext, chunkSize: number, cipherPath: string, plainPath: string, create?: { mode: number }): Promise<OpenFile> {
    const { fd, writable } = await openCipherFile(cipherPath, create);
    try {
      const store = fdStore(fd);
      const sealed = create ? await SealedFile.create(store, ctx) : await SealedFile.open(store, ctx, chunkSize);
      const ino = (await lstat(cipherPath)).ino;
      return new OpenFile(ctx, chunkSize, cipherPath, plainPath, ino, fd, sealed, writable);
    } catch (err) {
      await closeFd(fd);
      throw err;
    }
  }

  /**
   * Picks up a sync client's change: a replaced file (new inode) is reopened; a file
   * rewritten in place (size no longer ours) is re-read. Each version has its own file id
   * and key, so chunks of two versions can never be mixed in one read.
   */
  async revalidate(): Promise<void> {
    if (Date.now() - this.checkedAt < REVALIDATE_MS) return;
    this.checkedAt = Date.now();
    const st = await lstat(this.cipherPath).catch(() => undefined);
    if (!st) return; // unlinked while open: keep serving the open file, as POSIX does
    if (st.ino !== this.ino) {
      const fresh = await openCipherFile(this.cipherPath);
      try {
        const sealed = await SealedFile.open(fdStore(fresh.fd), this.ctx, this.chunkSize);
        const old = this.fd;
        this.fd = fresh.fd;
        this.sealed = sealed;
        this.ino = st.ino;
        await closeFd(old);
      } catch (err) {
        await closeFd(fresh.fd);
        throw err;
      }
    } else if (st.size !== sealedSize(this.sealed.size, this.chunkSize)) {
      this.sealed = await SealedFile.open(fdStore(this.fd), this.ctx, this.chunkSize);
    }
  }

  async close(): Promise<void> {
    await closeFd(this.fd);
  }
}

// Raw descriptors, not FileHandles: a FileHandle closes its descriptor when collected.
const open = promisify(openCallback);

async function openCipherFile(path: string, create?: { mode: number }): Promise<{ fd: number; writable: boolean }> {
  if (create) {
    return { fd: await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, create.mode), writable: true };
  }
  try {
    return { fd: await open(path, constants.O_RDWR), writable: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw err;
    return { fd: await open(path, constants.O_RDONLY), writable: false };
  }
}

async function closeFd(fd: number): Promise<void> {
  await new Promise<void>((resolveClose) => close(fd, () => resolveClose()));
}
