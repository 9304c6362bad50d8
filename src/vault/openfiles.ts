import { constants, type Stats } from 'node:fs';
import type { ContentContext } from '../crypto/context.js';
import { SealedFile } from '../crypto/sealedfile.js';
import { fdStore } from '../crypto/store.js';
import { sealedSize } from '../crypto/geometry.js';
import type { CipherIo } from './cipherio.js';
import type { MountSettings } from './settings.js';

/** What every open file of a vault shares: its keys, chunk size, cipher-directory calls and times. */
export interface FileContext {
  readonly content: ContentContext;
  readonly chunkSize: number;
  readonly io: CipherIo;
  readonly settings: Pick<MountSettings, 'revalidateMs' | 'writeBackMs'>;
}

/**
 * One open ciphertext file, shared by every handle on it (hard links included), so that
 * all writers go through one SealedFile and its one-at-a-time queue.
 */
export class OpenFile {
  private checkedAt = Date.now();
  private checking: Promise<void> | undefined;
  refs = 0;

  private constructor(
    private readonly ctx: FileContext,
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
  static async openDescriptor(io: CipherIo, cipherPath: string, create?: { mode: number }): Promise<CipherDescriptor> {
    const { fd, writable } = await openCipherFile(io, cipherPath, create);
    try {
      const st = await io.fstat(fd);
      return { fd, writable, ino: st.ino, size: st.size };
    } catch (err) {
      await io.close(fd);
      throw err;
    }
  }

  /**
   * Serves an opened descriptor; closes it when the file turns out not to be a valid one. An
   * existing file's final chunk is verified here, once for every handle the file will serve
   * (it proves the size, and that an empty file is one), unless `verifyEnd` is false: for an
   * open that discards the contents.
   */
  static async fromDescriptor(
    ctx: FileContext,
    cipherPath: string,
    plainPath: string,
    d: CipherDescriptor,
    create: boolean,
    verifyEnd = true,
  ): Promise<OpenFile> {
    try {
      const store = fdStore(d.fd, ctx.io.direct);
      const { writeBackMs } = ctx.settings;
      const sealed = create
        ? await SealedFile.create(store, ctx.content, true, writeBackMs)
        : await SealedFile.open(store, ctx.content, ctx.chunkSize, d.size, writeBackMs);
      if (!create && verifyEnd) await sealed.verifyEnd();
      return new OpenFile(ctx, cipherPath, plainPath, d.ino, d.fd, sealed, d.writable);
    } catch (err) {
      await ctx.io.close(d.fd);
      throw err;
    }
  }

  /**
   * Picks up a sync client's rewrite of this very file (same inode, a size that is no longer
   * ours): it is read again, and its new header means chunks of the old version can never
   * verify in it. A file *replaced* by a new one is not followed: as with a file renamed
   * over on a local disk, an open file stays the version it was opened as, so no handle
   * ever reads a mix of two versions; new opens get the new file. The rewrite is served
   * only once its final chunk verified, as at open; until then every request tries again.
   */
  async revalidate(): Promise<void> {
    // One check at a time, which every other request waits for: none may go on with the old
    // version while it is being replaced.
    if (this.checking) return this.checking;
    // Gathered writes go out first (within writeBackMs); until then ours is the newest.
    if (Date.now() - this.checkedAt < this.ctx.settings.revalidateMs || this.sealed.hasPendingWrites) return;
    this.checking = this.check().finally(() => (this.checking = undefined));
    return this.checking;
  }

  /**
   * Waits for a check in progress (revalidate): for calls that use `sealed` without one of
   * their own. A failed check was told to the request that made it.
   */
  async settled(): Promise<void> {
    await this.checking?.catch(() => undefined);
  }

  private async check(): Promise<void> {
    this.checkedAt = Date.now();
    const { io, content, chunkSize, settings } = this.ctx;
    const old = this.sealed;
    // A call queued on the old version before the check began lands first, so the descriptor
    // then holds everything the old version will ever write.
    await old.settle();
    const st = await io.fstat(this.fd);
    if (st.size !== sealedSize(old.size, chunkSize)) {
      try {
        const rewritten = await SealedFile.open(fdStore(this.fd, io.direct), content, chunkSize, undefined, settings.writeBackMs);
        await rewritten.verifyEnd();
        this.sealed = rewritten;
      } catch (err) {
        this.checkedAt = 0;
        throw err;
      }
    }
  }

  /** Verifies the final chunk if it was not yet (a file opened to be truncated): a no-op otherwise. */
  verifyEnd(): Promise<void> {
    return this.sealed.verifyEnd();
  }

  /** Reserves disk space for stored bytes [offset, offset + length) of the ciphertext file, its size unchanged. */
  reserve(offset: number, length: number): Promise<void> {
    return this.ctx.io.reserve(this.fd, this.cipherPath, offset, length);
  }

  /** The ciphertext file's attributes, through the descriptor (its name may be gone). */
  stat(): Promise<Stats> {
    return this.ctx.io.fstat(this.fd);
  }

  async close(): Promise<void> {
    await this.ctx.io.close(this.fd);
  }
}

export interface CipherDescriptor {
  readonly fd: number;
  readonly writable: boolean;
  readonly ino: number;
  readonly size: number;
}

async function openCipherFile(io: CipherIo, path: string, create?: { mode: number }): Promise<{ fd: number; writable: boolean }> {
  if (create) {
    return { fd: await io.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, create.mode), writable: true };
  }
  try {
    return { fd: await io.open(path, constants.O_RDWR), writable: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw err;
    return { fd: await io.open(path, constants.O_RDONLY), writable: false };
  }
}
