import { constants, type Stats } from 'node:fs';
import type { ContentContext } from '../crypto/context.js';
import { SealedFile, type StoreTimes } from '../crypto/sealedfile.js';
import { fdStore, type Reserver } from '../crypto/store.js';
import { sealedSize } from '../crypto/geometry.js';
import { nsTimesOf, type CipherIo } from './cipherio.js';
import type { MountSettings } from './settings.js';

/** relatime's bound: an access time older than this moves at the next read (a day, in ns). */
const RELATIME_NS = 24n * 3600n * 1_000_000_000n;

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
  /** Whether a read through the mount moved the access time already (noteRead). */
  private readNoted = false;
  refs = 0;

  private constructor(
    private readonly ctx: FileContext,
    public cipherPath: string,
    public plainPath: string,
    public ino: number,
    private fd: number,
    public sealed: SealedFile,
    readonly writable: boolean,
  ) {
    sealed.times = this.times;
  }

  /**
   * The cipher file's modification time is the plaintext file's (sync clients compare them):
   * the write-back of gathered writes gives the cipher file the time of the last write, or the
   * time set since, through the descriptor (futimens), in nanoseconds.
   */
  private readonly times: StoreTimes = {
    now: () => this.ctx.io.now(),
    setModified: (ns) => this.ctx.io.futimens(this.fd, this.cipherPath, undefined, ns),
  };

  /**
   * Sets the times (ns since the epoch; undefined leaves one as it is) on the cipher file,
   * through the descriptor, and keeps an explicit modification time for the write-back of
   * writes still gathered (SealedFile.setModified), which would otherwise replace it.
   */
  async setTimes(atime: bigint | undefined, mtime: bigint | undefined): Promise<void> {
    await this.settled();
    if (mtime !== undefined) await this.sealed.setModified(mtime);
    await this.ctx.io.futimens(this.fd, this.cipherPath, atime, mtime);
  }

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
      const store = fdStore(d.fd, ctx.io.direct, reserverOf(ctx.io));
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
        const rewritten = await SealedFile.open(fdStore(this.fd, io.direct, reserverOf(io)), content, chunkSize, undefined, settings.writeBackMs);
        await rewritten.verifyEnd();
        rewritten.times = this.times;
        this.sealed = rewritten;
      } catch (err) {
        this.checkedAt = 0;
        throw err;
      }
    }
  }

  /**
   * A read through the mount moves the access time as relatime does on a local disk (the
   * cipher file is opened with O_NOATIME, so the server's own reads never do): to now, when
   * it is not newer than the modification time or is more than a day old. Checked once per
   * open file; a failure (a file of another user) leaves the time as it is.
   */
  async noteRead(): Promise<void> {
    if (this.readNoted) return;
    this.readNoted = true;
    try {
      const st = nsTimesOf(await this.ctx.io.fstat(this.fd));
      const now = this.ctx.io.now();
      const mtime = this.sealed.modifiedNs ?? st.mtimeNs;
      if (st.atimeNs <= mtime || st.atimeNs < now - RELATIME_NS) await this.ctx.io.futimens(this.fd, this.cipherPath, now, undefined);
    } catch {
      // The access time is a hint; reading goes on.
    }
  }

  /** Verifies the final chunk if it was not yet (a file opened to be truncated): a no-op otherwise. */
  verifyEnd(): Promise<void> {
    return this.sealed.verifyEnd();
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

/** How a cipher file's store takes room on the disk ahead of a write (CipherIo.reserve). */
function reserverOf(io: CipherIo): Reserver {
  return (fd, offset, length) => io.reserve(fd, offset, length);
}

/**
 * Cipher files are opened with O_NOATIME: what the server reads of them for its own needs (the
 * header at open, the old chunk a write re-seals) must not move the access time, which is the
 * plaintext file's (`cp -p` sets it while written data still waits for the write-back that
 * reads). A read through the mount moves it as relatime would (OpenFile.noteRead). The kernel
 * allows O_NOATIME only to the file's owner (or CAP_FOWNER): without it, EPERM, the file is
 * opened as before. A file created here is this process's own.
 */
async function openNoAtime(io: CipherIo, path: string, flags: number): Promise<number> {
  try {
    return await io.open(path, flags | constants.O_NOATIME);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    return io.open(path, flags);
  }
}

async function openCipherFile(io: CipherIo, path: string, create?: { mode: number }): Promise<{ fd: number; writable: boolean }> {
  if (create) {
    return { fd: await io.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOATIME, create.mode), writable: true };
  }
  try {
    return { fd: await openNoAtime(io, path, constants.O_RDWR), writable: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw err;
    return { fd: await openNoAtime(io, path, constants.O_RDONLY), writable: false };
  }
}
