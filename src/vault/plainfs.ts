import { constants, type Stats } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../crypto/errors.js';
import { maxPlainSize, plainSizeShown, sealedSize } from '../crypto/geometry.js';
import { nsOfParts, nsTimesOf, RENAME_EXCHANGE, RENAME_NOREPLACE, timePartsOf, type CipherIo, type NsTimes, type TimeParts } from './cipherio.js';
import { emptyDirContents, quotedForLog, UNDECRYPTABLE_PREFIX, usesSidecar } from './ciphernames.js';
import { LONG_HASH_CHARS } from './longnames.js';
import type { DirEntry } from './directory.js';
import { IntegrityFailure } from './errors.js';
import { OpenFile, type FileContext } from './openfiles.js';
import { errno, joinPlain, type DirRef, type Resolved } from './tree.js';
import type { Vault } from './vault.js';
import { MAX_PLAIN_NAME_BYTES, SPECIAL_NOUNS, type EntryKind, type SpecialFile, type SpecialType } from './names.js';
import type { ProblemCounters } from './problems.js';
import { VAULT_FILE } from './vaultfile.js';
import type { XattrSetMode } from './cipherio.js';
import { HEADER_BYTES, parseHeader } from '../crypto/header.js';
import { isStoredNamespace, MAX_PLAIN_XATTR_NAME, type XattrOwner } from './xattrs.js';
import { ROOT_DIR_ID } from './names.js';

/** Attributes of a plaintext entry: the cipher entry's, with the plaintext size. */
/** The file-type bits of each kind of entry, as lstat reports them. */
const TYPE_BITS: Readonly<Record<EntryKind, number>> = { file: constants.S_IFREG, dir: constants.S_IFDIR, symlink: constants.S_IFLNK };
/** The file-type bits each special file shows with (its cipher entry is an empty regular file). */
const SPECIAL_BITS: Readonly<Record<SpecialType, number>> = { p: constants.S_IFIFO, s: constants.S_IFSOCK, c: constants.S_IFCHR, b: constants.S_IFBLK };

/** A mknod(2) mode's type as a special file, or undefined for a type that is not one. */
export function specialTypeOf(mode: number): SpecialType | undefined {
  const bits = mode & constants.S_IFMT;
  return (Object.keys(SPECIAL_BITS) as SpecialType[]).find((type) => SPECIAL_BITS[type] === bits);
}

export interface PlainStat extends NsTimes {
  readonly mode: number;
  readonly size: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly ino: number;
  /** The times to the millisecond; atimeNs, mtimeNs and ctimeNs (NsTimes) are exact. */
  readonly atime: Date;
  readonly mtime: Date;
  readonly ctime: Date;
  readonly blocks: number;
  readonly blksize: number;
  /** A device's number (special files only; 0 or absent otherwise). */
  readonly rdev?: number;
  /** The exact times as numbers (seconds, nanoseconds), when known: what the kernel is sent. */
  readonly timeParts?: TimeParts;
}

/** What a stat shows besides the cipher entry's own numbers (its kind, its plaintext size). */
type StatOverrides = Partial<Pick<PlainStat, 'mode' | 'size' | 'nlink' | 'blocks' | 'rdev'>>;

/** A time to set: a Date (ms), or ns since the epoch. */
export type TimeToSet = Date | bigint;
const nsOf = (t: TimeToSet | undefined): bigint | undefined => (t instanceof Date ? BigInt(t.getTime()) * 1_000_000n : t);

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export interface PlainStatfs {
  readonly bsize: number;
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
  readonly namemax: number;
}

export interface PlainFsOptions {
  readOnly?: boolean;
  /** One line per event worth a log entry (integrity failures, undecryptable names). */
  log?: (line: string) => void;
  /**
   * Whether integrity failures get a log line (default true, for the mount's log). An offline
   * tool passes false: each failure reaches its user once, as the error it reports.
   */
  logIntegrity?: boolean;
  /** Where integrity failures, undecryptable names and conflict copies are counted (a mount's `sealfs status`). */
  counters?: ProblemCounters;
}

interface Handle {
  readonly file: OpenFile;
  readonly flags: number;
}

/** A Date of a time in ns since the epoch (to the millisecond). */
const dateOf = (ns: bigint) => new Date(Number(ns / 1_000_000n));

/** Directories whose undecryptable names are remembered as told. */
const MAX_REPORTED_DIRS = 10_000;
/** Undecryptable extended-attribute names remembered as logged. */
const MAX_REPORTED_XATTRS = 10_000;
/** Undecryptable names named in a directory's log line; the rest are counted. */
const TOLD_NAMES = 3;

const ACCESS_MODE = constants.O_RDONLY | constants.O_WRONLY | constants.O_RDWR;

/**
 * Growth of a file (in sealed bytes) from which the free space of the cipher folder is
 * looked at first: a hole is written out as sealed zeros (docs/FORMAT.md has no sparse
 * chunks), and a file grown past the free space would fill the disk and then fail. Writes
 * that append (at most 128 KiB each) never reach it.
 */
const CHECK_SPACE_FROM = 64 * 1024 * 1024;

/**
 * The plaintext file system: every operation a FUSE mount or an offline tool needs, in
 * plaintext paths, carried out on the cipher directory. Errors are Node-style errno errors;
 * authentication failures become EIO after one log line naming the path and chunk.
 */
export class PlainFs {
  private readonly handles = new Map<number, Handle>();
  private readonly openFiles = new Map<number, OpenFile>();
  private nextHandle = 1;
  /** Per cipher directory, the undecryptable names last told (how many, which first). */
  private readonly reportedJunk = new Map<string, { count: number; first: string }>();
  /** Stored attribute names (cipher path and name) already logged as undecryptable. */
  private readonly reportedXattrs = new Set<string>();
  private readonly log: (line: string) => void;
  private readonly isRoot = process.getuid?.() === 0;
  /** The cipher-directory calls and times the vault was opened with (Vault.settings). */
  private readonly io: CipherIo;
  private readonly files: FileContext;
  /** The largest plaintext size a file may have (sizeLimit()), once known. */
  private maxSize: number | undefined;

  constructor(
    readonly vault: Vault,
    private readonly options: PlainFsOptions = {},
  ) {
    this.log = options.log ?? (() => {});
    this.io = vault.io;
    this.files = { content: vault.content, chunkSize: vault.config.chunkSize, io: vault.io, settings: vault.settings };
  }

  private get tree() {
    return this.vault.tree;
  }

  private get chunkSize() {
    return this.vault.config.chunkSize;
  }

  private writable(): void {
    if (this.options.readOnly) throw errno('EROFS', 'mounted read-only');
  }

  /** Every integrity failure passes here: counted (`sealfs status`) and logged once with the plaintext path. */
  private integrityFailure(plainPath: string, detail: string, chunk?: number): IntegrityFailure {
    this.options.counters?.integrityFailed(plainPath);
    if (this.options.logIntegrity !== false) this.log(`integrity: ${plainPath}${chunk === undefined ? '' : ` (chunk ${chunk})`}: ${detail}`);
    return new IntegrityFailure(plainPath, detail, chunk);
  }

  /** Turns an authentication failure into EIO (IntegrityFailure). */
  private integrity(plainPath: string, err: unknown): never {
    if (err instanceof FormatError) throw this.integrityFailure(plainPath, err.message, err.chunk);
    throw err;
  }

  /**
   * A directory's listing; its undecryptable names are told in one line per directory, again
   * only when what it holds of them changed, so that junk costs the log one line, not one
   * per name.
   */
  private async listing(dir: DirRef) {
    const listing = await this.tree.listing(dir);
    const { undecryptable } = listing;
    this.options.counters?.listed(dir.cipherPath, undecryptable.length, listing.conflicts);
    const first = undecryptable[0];
    const told = this.reportedJunk.get(dir.cipherPath);
    if (first && (told?.count !== undecryptable.length || told.first !== first.cipherName)) {
      // Bounded: a provider can make any number of folders; at worst a folder is told again.
      if (this.reportedJunk.size >= MAX_REPORTED_DIRS) this.reportedJunk.clear();
      this.reportedJunk.set(dir.cipherPath, { count: undecryptable.length, first: first.cipherName });
      const some = undecryptable.slice(0, TOLD_NAMES).map((entry) => quotedForLog(entry.cipherName));
      const more = undecryptable.length > TOLD_NAMES ? `, and ${undecryptable.length - TOLD_NAMES} more` : '';
      const names = undecryptable.length === 1 ? 'name' : 'names';
      this.log(`${undecryptable.length} undecryptable ${names} in ${quotedForLog(dir.plainPath)} (cipher folder ${quotedForLog(dir.cipherPath)}, listed as "${UNDECRYPTABLE_PREFIX}…"): ${some.join(', ')}${more}`);
    }
    return listing;
  }

  // ---- attributes -------------------------------------------------------------

  async getattr(plainPath: string): Promise<PlainStat> {
    if (plainPath === '/') return this.statOf(await this.io.lstat(this.tree.root.cipherPath));
    const found = await this.tree.resolve(plainPath);
    if (found.entry.opaque) return this.opaqueStat(await this.io.lstat(found.parent.cipherPath));
    let st: Stats;
    try {
      st = await this.io.lstat(found.cipherPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.tree.noteRemoved(found.parent, found.entry.name);
      throw err;
    }
    return this.entryStat(plainPath, found, st);
  }

  /**
   * Attributes of several entries of the folder `dirPath` (a page of a listing with
   * attributes), from one batch of lstat calls; undefined for a name that is gone or whose
   * attributes fail (a later getattr of it says why).
   */
  async getattrMany(dirPath: string, names: readonly string[]): Promise<(PlainStat | undefined)[]> {
    const dir = await this.tree.dir(dirPath);
    // The names come from a listing already made (opendir); each entry is looked at in the
    // cipher folder itself below, so the listing's age does not matter: a folder of 100,000
    // names is not read again for every page that its listing cache outlived.
    const { entries } = await this.tree.listing(dir, true);
    const found = names.map((name) => entries.get(name));
    const stored = found.filter((entry): entry is DirEntry => entry !== undefined && !entry.opaque);
    const [stats, dirStat] = await Promise.all([
      this.io.lstatMany(dir.cipherPath, stored.map((entry) => entry.cipherName)),
      found.some((entry) => entry?.opaque) ? this.io.lstat(dir.cipherPath) : undefined,
    ]);
    const statOf = new Map(stored.map((entry, k) => [entry, stats[k]]));
    return Promise.all(
      found.map(async (entry) => {
        if (!entry) return undefined;
        if (entry.opaque) return dirStat && this.opaqueStat(dirStat);
        const st = statOf.get(entry);
        if (!st) return undefined;
        const plainPath = joinPlain(dir.plainPath, entry.name);
        return this.entryStat(plainPath, this.tree.resolved(dir, entry), st).catch(() => undefined);
      }),
    );
  }

  /** An entry the provider swapped for another kind of entry (DirEntry.replacedBy): logged once per request, never opened. */
  private replaced(plainPath: string, found: Resolved): IntegrityFailure {
    return this.integrityFailure(plainPath, `its cipher entry ${found.cipherPath} is ${found.entry.replacedBy!}: replaced in the cipher folder`);
  }

  /** Never looked at itself (a FIFO, a name no string reaches): an empty file no mode lets open. */
  private opaqueStat(dirStat: Stats): PlainStat {
    return this.statOf(dirStat, { mode: constants.S_IFREG, size: 0, nlink: 1, blocks: 0 });
  }

  /** A resolved entry's attributes from its cipher entry's lstat. */
  private async entryStat(plainPath: string, found: Resolved, st: Stats): Promise<PlainStat> {
    if ((st.mode & constants.S_IFMT) !== TYPE_BITS[found.entry.kind]) {
      // Swapped for another type of entry since the listing (a FIFO, a folder, a link): never
      // shown to the kernel as what it now is; the next listing shows what it has become.
      this.tree.noteRemoved(found.parent, found.entry.name);
      throw errno('EIO', `${plainPath}: its cipher entry ${found.cipherPath} is no longer a ${found.entry.kind}`);
    }
    if (found.entry.kind === 'symlink') {
      const target = await this.targetOf(plainPath, found);
      return this.statOf(st, { size: Buffer.byteLength(target) });
    }
    if (found.entry.special) return this.specialStat(plainPath, found, st);
    if (found.entry.kind === 'file' && !found.entry.undecryptable) {
      const open = this.openFiles.get(st.ino);
      return open ? this.openStat(open, st) : this.statOf(st, { size: this.plainSize(st.size) });
    }
    return this.statOf(st);
  }

  /**
   * A special file's attributes: its type and device number from its name, permissions,
   * owner and times from its empty cipher file. A cipher file under a special name that is not
   * empty was written to by someone else (sealfs never does): an integrity failure, shown
   * as an empty file no mode lets open, as an entry swapped for another kind.
   */
  private specialStat(plainPath: string, found: Resolved, st: Stats): PlainStat {
    const special = found.entry.special!;
    if (st.size !== 0) {
      this.integrityFailure(plainPath, this.notEmpty(found, st.size));
      return this.statOf(st, { mode: constants.S_IFREG, size: 0, nlink: 1, blocks: 0 });
    }
    return this.statOf(st, { mode: SPECIAL_BITS[special.type] | (st.mode & 0o7777), size: 0, blocks: 0, rdev: special.rdev });
  }

  private notEmpty(found: Resolved, size: number): string {
    return `its cipher entry ${found.cipherPath} stands for a ${SPECIAL_NOUNS[found.entry.special!.type]} and must be empty, but holds ${size} bytes: written in the cipher folder`;
  }

  /** Attributes of an open file, also after its name was unlinked or replaced. */
  async fgetattr(fh: number): Promise<PlainStat> {
    const { file } = this.handle(fh);
    return this.openStat(file, await file.stat());
  }

  /**
   * An open file's attributes from its cipher file's: the size and, while written data waits
   * for the write-back, the modification time (and change time) of the last write or of a time
   * set since (SealedFile.modifiedNs), which the write-back then gives the cipher file.
   */
  private openStat(file: OpenFile, st: Stats): PlainStat {
    const shown = this.statOf(st, { size: file.sealed.size });
    const modified = file.sealed.modifiedNs;
    if (modified === undefined) return shown;
    const ctimeNs = modified > shown.ctimeNs ? modified : shown.ctimeNs;
    const atimeNs = shown.atimeNs;
    return { ...shown, timeParts: undefined, atimeNs, atime: shown.atime, mtimeNs: modified, mtime: dateOf(modified), ctimeNs, ctime: dateOf(ctimeNs) };
  }

  /** Plaintext size from the cipher size; a damaged size reads as the whole chunks it holds. */
  private plainSize(size: number): number {
    return plainSizeShown(size, this.chunkSize);
  }

  /**
   * The attributes of a cipher entry as shown (with `o` for what differs: kind, plaintext size).
   * Times stay numbers until asked for as BigInts or Dates (getters): a listing with attributes
   * makes one of these per entry.
   */
  private statOf(s: Stats, o: StatOverrides = {}): PlainStat {
    const parts = timePartsOf(s);
    const exact = parts ? undefined : nsTimesOf(s);
    return {
      mode: o.mode ?? s.mode,
      size: o.size ?? s.size,
      uid: s.uid,
      gid: s.gid,
      nlink: o.nlink ?? s.nlink,
      ino: s.ino,
      blocks: o.blocks ?? s.blocks,
      blksize: s.blksize,
      ...(o.rdev !== undefined ? { rdev: o.rdev } : {}),
      timeParts: parts,
      get atimeNs() {
        return parts ? nsOfParts(parts, 0) : exact!.atimeNs;
      },
      get mtimeNs() {
        return parts ? nsOfParts(parts, 2) : exact!.mtimeNs;
      },
      get ctimeNs() {
        return parts ? nsOfParts(parts, 4) : exact!.ctimeNs;
      },
      get atime() {
        return s.atime;
      },
      get mtime() {
        return s.mtime;
      },
      get ctime() {
        return s.ctime;
      },
    };
  }


  async readdir(plainPath: string): Promise<string[]> {
    const dir = await this.tree.dir(plainPath);
    return [...(await this.listing(dir)).entries.keys()];
  }

  async statfs(): Promise<PlainStatfs> {
    const st = await this.io.statfs(this.tree.root.cipherPath);
    return { bsize: st.bsize, blocks: st.blocks, bfree: st.bfree, bavail: st.bavail, files: st.files, ffree: st.ffree, namemax: MAX_PLAIN_NAME_BYTES };
  }

  async chmod(plainPath: string, mode: number): Promise<void> {
    this.writable();
    await this.io.chmod(await this.cipherPathOf(plainPath), mode);
  }

  async chown(plainPath: string, uid: number, gid: number): Promise<void> {
    this.writable();
    await this.io.lchown(await this.cipherPathOf(plainPath), uid, gid);
  }

  /**
   * Sets the access and modification times, to the nanosecond; an undefined one stays as it
   * is. An open file gets them through its descriptor, and keeps the modification time for
   * the write-back of data still gathered (OpenFile.setTimes): `cp -p` and `tar x` set it
   * before that data reached the cipher file.
   */
  async utimens(plainPath: string, atime: TimeToSet | undefined, mtime: TimeToSet | undefined): Promise<void> {
    this.writable();
    if (atime === undefined && mtime === undefined) return;
    const cipherPath = await this.cipherPathOf(plainPath);
    const open = this.openFiles.size > 0 ? this.openFiles.get((await this.io.lstat(cipherPath)).ino) : undefined;
    if (open) await open.setTimes(nsOf(atime), nsOf(mtime));
    else await this.io.utimens(cipherPath, nsOf(atime), nsOf(mtime));
  }

  /** utimens through an open handle (its file's name may be gone). */
  async futimens(fh: number, atime: TimeToSet | undefined, mtime: TimeToSet | undefined): Promise<void> {
    this.writable();
    if (atime === undefined && mtime === undefined) return;
    await this.handle(fh).file.setTimes(nsOf(atime), nsOf(mtime));
  }

  private async cipherPathOf(plainPath: string): Promise<string> {
    return plainPath === '/' ? this.tree.root.cipherPath : (await this.tree.resolve(plainPath)).cipherPath;
  }

  // ---- files ------------------------------------------------------------------

  private async newEntry(plainPath: string, kind: DirEntry['kind'], special?: SpecialFile): Promise<{ parent: DirRef; entry: DirEntry; cipherPath: string }> {
    this.writable();
    const { parent, name } = await this.tree.parentOf(plainPath);
    if ((await this.listing(parent)).entries.has(name)) throw errno('EEXIST', `${plainPath} exists`);
    const dirId = kind === 'dir' ? this.vault.names.deriveDirId(parent.dirId, name) : undefined;
    const { cipherName, sidecar } = this.tree.decoder.cipherNameFor(parent.dirId, name, dirId, special);
    if (sidecar) await this.writeSidecar(parent, sidecar);
    const entry: DirEntry = { name, cipherName, kind, ...(dirId ? { dirId } : {}), ...(special ? { special } : {}), ...(sidecar ? { sidecar: sidecar.name } : {}) };
    return { parent, entry, cipherPath: join(parent.cipherPath, cipherName) };
  }

  /**
   * Writes a new entry's long-name sidecar; one that could not be written whole (a full disk)
   * is removed again unless another entry uses it, so no empty sidecar is left behind.
   */
  private async writeSidecar(parent: DirRef, sidecar: { readonly name: string; readonly content: string }): Promise<void> {
    try {
      await this.io.writeText(join(parent.cipherPath, sidecar.name), sidecar.content);
    } catch (err) {
      // Only a sidecar this call made and could not fill: anything else in its place (a link the
      // provider planted, ELOOP) is not ours to remove.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        await this.removeSidecar(parent, { name: '', cipherName: '', kind: 'file', sidecar: sidecar.name }).catch(() => undefined);
      }
      throw err;
    }
  }

  /** Whether new entries are given to the user who made them (only root can): see own(). */
  get recordsOwners(): boolean {
    return this.isRoot;
  }

  private async own(cipherPath: string, owner?: Owner): Promise<void> {
    if (owner && this.isRoot) await this.io.lchown(cipherPath, owner.uid, owner.gid);
  }

  private register(file: OpenFile, flags: number): number {
    file.refs++;
    this.openFiles.set(file.ino, file);
    const fh = this.nextHandle++;
    this.handles.set(fh, { file, flags });
    return fh;
  }

  async create(plainPath: string, mode: number, owner?: Owner, flags = constants.O_RDWR): Promise<number> {
    const { parent, entry, cipherPath } = await this.newEntry(plainPath, 'file');
    const descriptor = await OpenFile.openDescriptor(this.io, cipherPath, { mode });
    const file = await OpenFile.fromDescriptor(this.files, cipherPath, plainPath, descriptor, true).catch((err: unknown) => this.uncreate(parent, entry, cipherPath, err));
    await this.own(cipherPath, owner);
    this.tree.noteAdded(parent, entry);
    return this.register(file, flags);
  }

  /**
   * A file whose header and empty chunk could not be written (a full disk) is removed again,
   * with its long-name sidecar: no entry without a valid sealed file is left behind (it would
   * read as a truncated file). Throws `err`.
   */
  private async uncreate(parent: DirRef, entry: DirEntry, cipherPath: string, err: unknown): Promise<never> {
    await this.io.unlink(cipherPath).catch(() => undefined);
    await this.removeSidecar(parent, entry).catch(() => undefined);
    throw err;
  }

  /**
   * Opens a file once its final chunk verified (once per open file, for all its handles): it
   * proves the size, so no read can end the file early and an empty or forged file fails here
   * with EIO, also where the kernel, knowing the size is 0, never sends a read. An open that
   * cannot read waits: O_TRUNC discards the contents, and a write-only open may be the
   * kernel's open before it truncates (`: > file`; it does not pass O_TRUNC): its first write
   * verifies the end (SealedFile.write) unless a truncation replaced it.
   */
  async open(plainPath: string, flags: number): Promise<number> {
    const canRead = (flags & ACCESS_MODE) !== constants.O_WRONLY;
    return this.openHandle(plainPath, flags, canRead && !(flags & constants.O_TRUNC));
  }

  private async openHandle(plainPath: string, flags: number, verifyEnd: boolean): Promise<number> {
    if ((flags & ACCESS_MODE) !== constants.O_RDONLY || flags & constants.O_TRUNC) this.writable();
    const found = await this.tree.resolve(plainPath);
    if (found.entry.kind === 'dir') throw errno('EISDIR', `${plainPath} is a directory`);
    if (found.entry.undecryptable) throw new IntegrityFailure(plainPath, 'name does not decrypt');
    if (found.entry.replacedBy) throw this.replaced(plainPath, found);
    if (found.entry.special) throw await this.specialOpened(plainPath, found);
    const file = await this.openFile(found, plainPath, verifyEnd);
    const fh = this.register(file, flags);
    if (flags & constants.O_TRUNC) await this.ftruncate(fh, 0);
    return fh;
  }

  /**
   * Why a special file cannot be opened here: the kernel opens FIFOs, sockets and devices
   * itself and never asks the server, so only an offline tool gets here (ENXIO, as opening a
   * socket), or a cipher file under a special name that is not empty (an integrity failure).
   */
  private async specialOpened(plainPath: string, found: Resolved): Promise<Error> {
    const st = await this.io.lstat(found.cipherPath);
    if (st.size !== 0) return this.integrityFailure(plainPath, this.notEmpty(found, st.size));
    return errno('ENXIO', `${plainPath} is a ${SPECIAL_NOUNS[found.entry.special!.type]}: it has no contents to open`);
  }

  private async openFile(found: Resolved, plainPath: string, verifyEnd: boolean): Promise<OpenFile> {
    const descriptor = await OpenFile.openDescriptor(this.io, found.cipherPath);
    const shared = this.openFiles.get(descriptor.ino);
    if (shared) void this.io.close(descriptor.fd);
    try {
      if (!shared) return await OpenFile.fromDescriptor(this.files, found.cipherPath, plainPath, descriptor, false, verifyEnd);
      // Shared with an open that skipped the check (O_TRUNC) and has not written the end yet.
      if (verifyEnd) await shared.verifyEnd();
      return shared;
    } catch (err) {
      return this.integrity(plainPath, err);
    }
  }

  private handle(fh: number): Handle {
    const handle = this.handles.get(fh);
    if (!handle) throw errno('EBADF', `no open file with handle ${fh}`);
    return handle;
  }

  /**
   * The largest plaintext size a file may have: what the cipher folder's file system lets a
   * sealed file grow to (asked once, through the vault file), and at most what JavaScript
   * counts exactly (geometry.maxPlainSize).
   */
  private async sizeLimit(): Promise<number> {
    if (this.maxSize === undefined) {
      const sealedMax = await this.io.maxFileSize(join(this.tree.root.cipherPath, VAULT_FILE)).catch(() => Number.MAX_SAFE_INTEGER);
      this.maxSize = maxPlainSize(sealedMax, this.chunkSize);
    }
    return this.maxSize;
  }

  /**
   * Before a file grows from `size` to `end` bytes: EFBIG past the largest size a file may have
   * (as a local file system answers past its own), and ENOSPC at once when the sealed zeros
   * of a large hole would not fit in the free space, instead of filling the disk first.
   */
  private async checkGrowth(plainPath: string, size: number, end: number): Promise<void> {
    if (end <= size) return;
    const limit = await this.sizeLimit();
    if (end > limit) throw errno('EFBIG', `${plainPath}: ${end} bytes is more than the largest file this vault's folder holds (${limit} bytes)`);
    const growth = sealedSize(end, this.chunkSize) - sealedSize(size, this.chunkSize);
    if (growth < CHECK_SPACE_FROM) return;
    const st = await this.io.statfs(this.tree.root.cipherPath);
    if (growth > st.bavail * st.bsize) {
      throw errno('ENOSPC', `${plainPath}: growing it to ${end} bytes takes ${growth} bytes in the cipher folder, which has ${st.bavail * st.bsize} free`);
    }
  }

  async read(fh: number, position: number, length: number): Promise<Uint8Array> {
    const { file } = this.handle(fh);
    try {
      await file.revalidate();
      // Read-only (a ro mount, the offline commands): the cipher folder is left as it is.
      if (!this.options.readOnly) await file.noteRead();
      return await file.sealed.read(position, length);
    } catch (err) {
      return this.integrity(file.plainPath, err);
    }
  }

  async write(fh: number, position: number, data: Uint8Array): Promise<number> {
    this.writable();
    const { file, flags } = this.handle(fh);
    if ((flags & ACCESS_MODE) === constants.O_RDONLY) throw errno('EBADF', `${file.plainPath} is open read-only`);
    if (!file.writable) throw errno('EACCES', `${file.plainPath}: ciphertext file is not writable`);
    // As pwrite(2): writing nothing changes nothing, also past the end (the kernel never sends
    // such a write; offline callers may).
    if (data.length === 0) return 0;
    try {
      await file.revalidate();
      // O_APPEND goes to the real end even when the kernel's idea of the size is stale.
      const at = flags & constants.O_APPEND ? file.sealed.size : position;
      await this.checkGrowth(file.plainPath, file.sealed.size, at + data.length);
      await file.sealed.write(at, data);
    } catch (err) {
      return this.integrity(file.plainPath, err);
    }
    return data.length;
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    this.writable();
    const { file } = this.handle(fh);
    try {
      await file.settled();
      await this.checkGrowth(file.plainPath, file.sealed.size, size);
      await file.sealed.truncate(size);
    } catch (err) {
      this.integrity(file.plainPath, err);
    }
  }

  /** ftruncate verifies whatever it keeps: the end of the old contents need not be proven first. */
  async truncate(plainPath: string, size: number): Promise<void> {
    const fh = await this.openHandle(plainPath, constants.O_WRONLY, false);
    try {
      await this.ftruncate(fh, size);
    } finally {
      await this.release(fh);
    }
  }

  async fsync(fh: number): Promise<void> {
    const { file } = this.handle(fh);
    try {
      await file.settled();
      await file.sealed.sync();
    } catch (err) {
      this.integrity(file.plainPath, err);
    }
  }

  /** At every close(): gathered writes reach the cipher directory before close() returns. */
  async flush(fh: number): Promise<void> {
    const { file } = this.handle(fh);
    try {
      await file.settled();
      await file.sealed.flush();
    } catch (err) {
      this.integrity(file.plainPath, err);
    }
  }

  async release(fh: number): Promise<void> {
    const { file } = this.handle(fh);
    this.handles.delete(fh);
    if (--file.refs === 0) {
      this.openFiles.delete(file.ino);
      try {
        await file.settled();
        await file.sealed.flush();
      } finally {
        // Nothing waits on closing the descriptor: release answers as soon as data is out.
        void file.close();
      }
    }
  }

  /** Open handles: one per open(2) of a file through the mount that is not yet closed. */
  get openHandles(): number {
    return this.handles.size;
  }

  /** Closes every open file (at unmount). */
  async releaseAll(): Promise<void> {
    for (const fh of [...this.handles.keys()]) await this.release(fh);
  }

  /**
   * fallocate(2) through an open handle (docs/FORMAT.md §14.3): `zero` makes the range read
   * as zeros (PUNCH_HOLE, ZERO_RANGE: re-sealed zeros, no real hole), otherwise space is
   * reserved; without `keepSize` the file grows to offset + length. Disk space is reserved in
   * the cipher folder before anything changes, so a full disk is ENOSPC with the file as it was.
   */
  async fallocate(fh: number, offset: number, length: number, how: { readonly zero: boolean; readonly keepSize: boolean }): Promise<void> {
    this.writable();
    const { file, flags } = this.handle(fh);
    if ((flags & ACCESS_MODE) === constants.O_RDONLY) throw errno('EBADF', `${file.plainPath} is open read-only`);
    if (!file.writable) throw errno('EACCES', `${file.plainPath}: ciphertext file is not writable`);
    if (!(offset >= 0) || !(length > 0)) throw errno('EINVAL', `fallocate of ${file.plainPath}: offset ${offset}, length ${length}`);
    if (offset + length > Number.MAX_SAFE_INTEGER) throw errno('EFBIG', `${file.plainPath}: fallocate beyond ${Number.MAX_SAFE_INTEGER} bytes`);
    try {
      await file.revalidate();
      await file.sealed.allocate(offset, length, how);
    } catch (err) {
      this.integrity(file.plainPath, err);
    }
  }

  // ---- extended attributes (docs/FORMAT.md §14.2) ----------------------------------

  /**
   * Where the attributes of `plainPath` live and what their values are bound to (read only
   * when needed: a file's header costs a read). Symbolic links have none (Linux keeps user.*
   * attributes to files and directories).
   */
  private async xattrEntry(plainPath: string): Promise<{ cipherPath: string; kind: 'file' | 'dir' | 'symlink'; owner: () => Promise<XattrOwner> }> {
    if (plainPath === '/') {
      const cipherPath = this.tree.root.cipherPath;
      return { cipherPath, kind: 'dir', owner: async () => ({ kind: 'dir', dirId: ROOT_DIR_ID }) };
    }
    const found = await this.tree.resolve(plainPath);
    if (found.entry.replacedBy) throw this.replaced(plainPath, found);
    if (found.entry.opaque || found.entry.undecryptable) throw new IntegrityFailure(plainPath, 'name does not decrypt');
    const { cipherPath, entry } = found;
    if (entry.kind === 'dir') return { cipherPath, kind: 'dir', owner: async () => ({ kind: 'dir', dirId: entry.dirId! }) };
    const owner = async (): Promise<XattrOwner> => {
      const bytes = await this.io.readBounded(cipherPath, HEADER_BYTES);
      try {
        return { kind: 'file', header: parseHeader(bytes).bytes };
      } catch (err) {
        return this.integrity(plainPath, err);
      }
    };
    return { cipherPath, kind: entry.kind, owner };
  }

  /** The value of attribute `name` (bytes); ENODATA when it is not there, EIO when it fails authentication. */
  async getxattr(plainPath: string, name: Uint8Array): Promise<Uint8Array> {
    const absent = () => errno('ENODATA', `${plainPath} has no extended attribute ${xattrNameForLog(name)}`);
    if (!isStoredNamespace(name) || name.length > MAX_PLAIN_XATTR_NAME) throw absent();
    const { cipherPath, kind, owner } = await this.xattrEntry(plainPath);
    if (kind === 'symlink') throw absent();
    const storedName = this.vault.xattrs.cipherName(name);
    const stored = await this.io.getxattr(cipherPath, storedName);
    const value = this.vault.xattrs.open(await owner(), name, stored);
    if (!value) throw this.integrityFailure(plainPath, `extended attribute ${xattrNameForLog(name)} does not authenticate (${cipherPath}, ${storedName}): moved from another entry or name, or damaged`);
    return value;
  }

  /**
   * The names of the entry's attributes. Attributes that are not sealfs's (the provider's, the
   * system's) are not shown; one of sealfs's whose name does not decrypt is skipped and logged
   * once, never shown as garbage.
   */
  async listxattr(plainPath: string): Promise<Uint8Array[]> {
    const { cipherPath, kind } = await this.xattrEntry(plainPath);
    if (kind === 'symlink') return [];
    const names: Uint8Array[] = [];
    for (const stored of await this.io.listxattr(cipherPath)) {
      const name = this.vault.xattrs.plainName(stored);
      if (name) names.push(name);
      else if (name === undefined) this.undecryptableXattr(plainPath, cipherPath, stored);
    }
    return names;
  }

  private undecryptableXattr(plainPath: string, cipherPath: string, stored: Uint8Array): void {
    const text = Buffer.from(stored).toString('latin1');
    const key = `${cipherPath}\0${text}`;
    if (this.reportedXattrs.has(key)) return;
    if (this.reportedXattrs.size >= MAX_REPORTED_XATTRS) this.reportedXattrs.clear();
    this.reportedXattrs.add(key);
    this.options.counters?.integrityFailed(plainPath);
    this.log(`integrity: ${plainPath}: extended attribute ${quotedForLog(text)} of ${quotedForLog(cipherPath)} does not decrypt: not listed`);
  }

  /** Sets attribute `name`; `mode` 'create' fails with EEXIST, 'replace' with ENODATA. */
  async setxattr(plainPath: string, name: Uint8Array, value: Uint8Array, mode: XattrSetMode): Promise<void> {
    this.writable();
    if (!isStoredNamespace(name)) throw errno('EOPNOTSUPP', `${plainPath}: only user.* extended attributes are stored (not ${xattrNameForLog(name)})`);
    const { cipherPath, kind, owner } = await this.xattrEntry(plainPath);
    if (kind === 'symlink') throw errno('EPERM', `${plainPath}: a symbolic link has no user.* extended attributes`);
    const storedName = this.vault.xattrs.cipherName(name);
    await this.io.setxattr(cipherPath, storedName, this.vault.xattrs.seal(await owner(), name, value), mode);
  }

  async removexattr(plainPath: string, name: Uint8Array): Promise<void> {
    this.writable();
    if (!isStoredNamespace(name)) throw errno('EOPNOTSUPP', `${plainPath}: only user.* extended attributes are stored (not ${xattrNameForLog(name)})`);
    const { cipherPath, kind } = await this.xattrEntry(plainPath);
    if (kind === 'symlink') throw errno('EPERM', `${plainPath}: a symbolic link has no user.* extended attributes`);
    if (name.length > MAX_PLAIN_XATTR_NAME) throw errno('ENODATA', `${plainPath} has no extended attribute ${xattrNameForLog(name)}`);
    await this.io.removexattr(cipherPath, this.vault.xattrs.cipherName(name));
  }

  // ---- names ------------------------------------------------------------------

  async unlink(plainPath: string): Promise<void> {
    this.writable();
    const found = await this.tree.resolve(plainPath);
    if (found.entry.kind === 'dir') throw errno('EISDIR', `${plainPath} is a directory`);
    await this.io.unlink(found.cipherPath);
    await this.removeSidecar(found.parent, found.entry);
    this.tree.noteRemoved(found.parent, found.entry.name);
  }

  /**
   * Removes a long-name sidecar once no entry uses it any more: a sync client's conflict
   * copy of a long-named entry reads the original's sidecar.
   */
  private async removeSidecar(parent: DirRef, entry: DirEntry): Promise<void> {
    if (!entry.sidecar) return;
    const hash = entry.sidecar.slice(0, LONG_HASH_CHARS);
    const users = (await this.io.readdir(parent.cipherPath)).filter((name) => usesSidecar(name, hash));
    // A sidecar is a file: unlink, never a recursive remove (the provider may have put a
    // folder under its name since the listing).
    if (users.length === 0) await this.io.unlink(join(parent.cipherPath, entry.sidecar)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT' && err.code !== 'EISDIR') throw err; // a folder there is the provider's, left as it is
    });
  }

  async mkdir(plainPath: string, mode: number, owner?: Owner): Promise<void> {
    const { parent, entry, cipherPath } = await this.newEntry(plainPath, 'dir');
    await this.io.mkdir(cipherPath, mode);
    await this.own(cipherPath, owner);
    this.tree.noteAdded(parent, entry);
  }

  async rmdir(plainPath: string): Promise<void> {
    this.writable();
    const found = await this.tree.resolve(plainPath);
    if (found.entry.kind !== 'dir') throw errno('ENOTDIR', `${plainPath} is not a directory`);
    await this.removeEmptyDir(found);
    this.tree.noteRemoved(found.parent, found.entry.name);
  }

  /**
   * Removes a directory that is empty in the plaintext view, with what the view hides in it
   * (ciphernames.emptyDirContents); a sync client's folder goes only if it is empty.
   */
  private async removeEmptyDir(found: Resolved): Promise<void> {
    const plainPath = joinPlain(found.parent.plainPath, found.entry.name);
    const contents = emptyDirContents(await this.io.readdirTypes(found.cipherPath));
    const notEmpty = (name: string, why: string) => {
      this.log(`not removing ${plainPath}: its cipher directory ${quotedForLog(found.cipherPath)} holds ${quotedForLog(name)}, ${why}`);
      return errno('ENOTEMPTY', `${plainPath} is not empty (it holds ${quotedForLog(name)})`);
    };
    if (!contents.empty) throw contents.blocker ? notEmpty(contents.blocker.name, contents.blocker.why) : errno('ENOTEMPTY', `${plainPath} is not empty`);
    for (const name of contents.dirs) {
      await this.io
        .rmdir(join(found.cipherPath, name))
        .catch((err: NodeJS.ErrnoException) => {
          throw err.code === 'ENOTEMPTY' || err.code === 'EEXIST' ? notEmpty(name, "a folder the plaintext view hides (a sync client's), which is not empty") : err;
        });
    }
    for (const name of contents.files) await this.io.unlink(join(found.cipherPath, name));
    await this.io.rmdir(found.cipherPath);
    await this.removeSidecar(found.parent, found.entry);
    this.forgetFolder(found.cipherPath);
  }

  /** rename(2); with `noReplace` (RENAME_NOREPLACE) an existing `toPath` is EEXIST. */
  async rename(fromPath: string, toPath: string, noReplace = false): Promise<void> {
    this.writable();
    const from = await this.tree.resolve(fromPath);
    const { parent: toParent, name: toName } = await this.tree.parentOf(toPath);
    const existing = (await this.listing(toParent)).entries.get(toName);
    if (noReplace && existing) throw errno('EEXIST', `${toPath} exists`);
    if (existing && existing.cipherName === from.entry.cipherName && toParent.cipherPath === from.parent.cipherPath) return;
    const isDir = from.entry.kind === 'dir';
    if (isDir && (toPath + '/').startsWith(fromPath + '/')) throw errno('EINVAL', `cannot move ${fromPath} into itself`);
    const { cipherName, sidecar } = this.tree.decoder.cipherNameFor(toParent.dirId, toName, from.entry.dirId, from.entry.special);
    const target = join(toParent.cipherPath, cipherName);
    if (existing) {
      const existingPath = join(toParent.cipherPath, existing.cipherName);
      if (isDir && existing.kind !== 'dir') throw errno('ENOTDIR', `${toPath} is not a directory`);
      if (!isDir && existing.kind === 'dir') throw errno('EISDIR', `${toPath} is a directory`);
      if (existing.kind === 'dir') {
        if (existing.cipherName !== cipherName) await this.removeEmptyDir({ parent: toParent, entry: existing, cipherPath: existingPath });
        else if ((await this.listing(this.tree.childDir(toParent, existing))).entries.size > 0) throw errno('ENOTEMPTY', `${toPath} is not empty`);
      } else {
        // Two names of one file: rename(2) does nothing.
        const [a, b] = await Promise.all([this.io.lstat(from.cipherPath), this.io.lstat(existingPath)]);
        if (a.ino === b.ino && a.dev === b.dev) return;
        if (existing.cipherName !== cipherName) {
          await this.io.unlink(existingPath);
          await this.removeSidecar(toParent, existing);
        }
      }
    }
    if (sidecar) await this.writeSidecar(toParent, sidecar);
    // RENAME_NOREPLACE reaches the cipher folder too: an entry that appeared there since the
    // listing (a sync client's download) is never replaced.
    await this.io.rename(from.cipherPath, target, noReplace ? RENAME_NOREPLACE : 0);
    if (from.entry.sidecar && from.entry.sidecar !== sidecar?.name) await this.removeSidecar(from.parent, from.entry);
    this.tree.noteRemoved(from.parent, from.entry.name);
    const moved: DirEntry = {
      name: toName,
      cipherName,
      kind: from.entry.kind,
      ...(from.entry.dirId ? { dirId: from.entry.dirId } : {}),
      ...(from.entry.special ? { special: from.entry.special } : {}),
      ...(sidecar ? { sidecar: sidecar.name } : {}),
    };
    this.tree.noteAdded(toParent, moved);
    if (isDir) this.forgetFolder(from.cipherPath);
    this.retarget(from.cipherPath, target, fromPath, toPath);
  }

  /** A cipher folder moved or went: its cached listings and its counts go with it. */
  private forgetFolder(cipherPath: string): void {
    this.tree.forget(cipherPath);
    this.options.counters?.forget(cipherPath);
  }

  /** Keeps open files pointing at their ciphertext after a rename through the mount. */
  private retarget(fromCipher: string, toCipher: string, fromPlain: string, toPlain: string): void {
    for (const file of this.openFiles.values()) {
      if (file.cipherPath === fromCipher || file.cipherPath.startsWith(fromCipher + '/')) {
        file.cipherPath = toCipher + file.cipherPath.slice(fromCipher.length);
        file.plainPath = toPlain + file.plainPath.slice(fromPlain.length);
      }
    }
  }

  async link(existingPath: string, newPath: string): Promise<void> {
    const from = await this.tree.resolve(existingPath);
    if (from.entry.kind === 'dir') throw errno('EPERM', `${existingPath} is a directory`);
    const { parent, entry, cipherPath } = await this.newEntry(newPath, from.entry.kind, from.entry.special);
    await this.io.link(from.cipherPath, cipherPath);
    this.tree.noteAdded(parent, entry);
  }

  async symlink(target: string, plainPath: string, owner?: Owner): Promise<void> {
    const { parent, entry, cipherPath } = await this.newEntry(plainPath, 'symlink');
    await this.io.symlink(this.vault.names.encryptSymlinkTarget(target), cipherPath);
    await this.own(cipherPath, owner);
    this.tree.noteAdded(parent, entry);
  }

  /**
   * mknod(2): a FIFO, socket or device is an empty regular file in the cipher folder whose
   * name says what it is (FORMAT.md §14); a regular file is an empty sealed file as create()
   * makes it. The kernel lets only a caller with CAP_MKNOD ask for a device, and sealfs mounts
   * are nodev, so a device shown in the mount never opens the device it names.
   */
  async mknod(plainPath: string, mode: number, rdev: number, owner?: Owner): Promise<void> {
    const type = specialTypeOf(mode);
    if ((mode & constants.S_IFMT) === constants.S_IFREG) return this.release(await this.create(plainPath, mode & 0o7777, owner, constants.O_WRONLY));
    if (!type) throw errno('EINVAL', `${plainPath}: mknod of file type 0${(mode & constants.S_IFMT).toString(8)} is not supported`);
    const special: SpecialFile = { type, rdev: type === 'c' || type === 'b' ? rdev : 0 };
    const { parent, entry, cipherPath } = await this.newEntry(plainPath, 'file', special);
    // O_EXCL: an entry the provider put under this name since the listing is never taken over.
    await this.io.close(await this.io.open(cipherPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode & 0o7777));
    await this.own(cipherPath, owner);
    this.tree.noteAdded(parent, entry);
  }

  /**
   * renameat2(RENAME_EXCHANGE): `aPath` and `bPath` swap places. A name binds its directory
   * and, in its payload, a directory's own id or a special file's type (FORMAT.md §10.2), so:
   *
   * - when both entries have the same payload form (two files, a file and a symbolic link, two
   *   FIFOs of one kind…), the names they would get are exactly the ones they have: one
   *   renameat2(RENAME_EXCHANGE) of the two cipher entries, atomic;
   * - otherwise (a file and a folder, two folders with their own ids, a file and a FIFO),
   *   each entry needs a new name: the sidecars of the new names are written first, then
   *   `a` moves to its new name in b's folder and `b` to its new name in a's folder, each with
   *   RENAME_NOREPLACE, then the old sidecars go. A crash between the two moves leaves both
   *   entries in b's folder under their right names (one of them shown as "(duplicate 2)",
   *   the one that stayed), nothing at `aPath`, and at worst an unused sidecar (scrub reports
   *   it): no entry is lost or becomes undecryptable.
   */
  async exchange(aPath: string, bPath: string): Promise<void> {
    this.writable();
    const [a, b] = await Promise.all([this.tree.resolve(aPath), this.tree.resolve(bPath)]);
    for (const [found, path] of [[a, aPath], [b, bPath]] as const) {
      if (found.entry.undecryptable) throw new IntegrityFailure(path, 'name does not decrypt');
      if (found.entry.replacedBy) throw this.replaced(path, found);
    }
    if (a.cipherPath === b.cipherPath) return;
    if ((a.entry.kind === 'dir' && (bPath + '/').startsWith(aPath + '/')) || (b.entry.kind === 'dir' && (aPath + '/').startsWith(bPath + '/'))) {
      throw errno('EINVAL', `cannot exchange ${aPath} and ${bPath}: one holds the other`);
    }
    const aPlainName = aPath.slice(aPath.lastIndexOf('/') + 1);
    const bPlainName = bPath.slice(bPath.lastIndexOf('/') + 1);
    // Where each one goes: its cipher name in the other's folder, and that name's sidecar.
    let aTarget: { cipherName: string; sidecar?: string };
    let bTarget: typeof aTarget;
    if (payloadForm(a.entry) === payloadForm(b.entry)) {
      await this.io.rename(a.cipherPath, b.cipherPath, RENAME_EXCHANGE);
      aTarget = { cipherName: b.entry.cipherName, ...(b.entry.sidecar ? { sidecar: b.entry.sidecar } : {}) };
      bTarget = { cipherName: a.entry.cipherName, ...(a.entry.sidecar ? { sidecar: a.entry.sidecar } : {}) };
    } else {
      const aName = this.tree.decoder.cipherNameFor(b.parent.dirId, bPlainName, a.entry.dirId, a.entry.special);
      const bName = this.tree.decoder.cipherNameFor(a.parent.dirId, aPlainName, b.entry.dirId, b.entry.special);
      if (aName.sidecar) await this.io.writeText(join(b.parent.cipherPath, aName.sidecar.name), aName.sidecar.content);
      if (bName.sidecar) await this.io.writeText(join(a.parent.cipherPath, bName.sidecar.name), bName.sidecar.content);
      aTarget = { cipherName: aName.cipherName, ...(aName.sidecar ? { sidecar: aName.sidecar.name } : {}) };
      bTarget = { cipherName: bName.cipherName, ...(bName.sidecar ? { sidecar: bName.sidecar.name } : {}) };
      const aTo = join(b.parent.cipherPath, aTarget.cipherName);
      await this.io.rename(a.cipherPath, aTo, RENAME_NOREPLACE);
      try {
        await this.io.rename(b.cipherPath, join(a.parent.cipherPath, bTarget.cipherName), RENAME_NOREPLACE);
      } catch (err) {
        // Put `a` back where it was: the exchange did not happen.
        await this.io.rename(aTo, a.cipherPath, RENAME_NOREPLACE).catch((undo: Error) => this.log(`exchange ${aPath} ${bPath}: moving ${aPath} back failed: ${undo.message}`));
        throw err;
      }
      // Each folder's old sidecar goes unless a (conflict copy's) entry still reads it.
      if (a.entry.sidecar && a.entry.sidecar !== bTarget.sidecar) await this.removeSidecar(a.parent, a.entry);
      if (b.entry.sidecar && b.entry.sidecar !== aTarget.sidecar) await this.removeSidecar(b.parent, b.entry);
    }
    // The listings: each place now holds the other entry (same shown name, new cipher name).
    const moved = (entry: DirEntry, place: DirEntry, target: typeof aTarget): DirEntry => ({
      name: place.name,
      cipherName: target.cipherName,
      kind: entry.kind,
      ...(entry.dirId ? { dirId: entry.dirId } : {}),
      ...(entry.special ? { special: entry.special } : {}),
      ...(target.sidecar ? { sidecar: target.sidecar } : {}),
      ...(place.conflict !== undefined && target.cipherName === place.cipherName ? { conflict: place.conflict } : {}),
    });
    this.tree.noteRemoved(a.parent, a.entry.name);
    this.tree.noteRemoved(b.parent, b.entry.name);
    this.tree.noteAdded(b.parent, moved(a.entry, b.entry, aTarget));
    this.tree.noteAdded(a.parent, moved(b.entry, a.entry, bTarget));
    const aTo = join(b.parent.cipherPath, aTarget.cipherName);
    const bTo = join(a.parent.cipherPath, bTarget.cipherName);
    for (const found of [a, b]) if (found.entry.kind === 'dir') this.forgetFolder(found.cipherPath);
    for (const to of [aTo, bTo]) this.forgetFolder(to);
    this.retargetMany([
      { fromCipher: a.cipherPath, toCipher: aTo, fromPlain: aPath, toPlain: bPath },
      { fromCipher: b.cipherPath, toCipher: bTo, fromPlain: bPath, toPlain: aPath },
    ]);
  }

  /** retarget for several moves made at once (an exchange): each open file moves at most once. */
  private retargetMany(moves: readonly { fromCipher: string; toCipher: string; fromPlain: string; toPlain: string }[]): void {
    const under = (path: string, dir: string) => path === dir || path.startsWith(dir + '/');
    for (const file of this.openFiles.values()) {
      const move = moves.find((m) => under(file.cipherPath, m.fromCipher));
      if (!move) continue;
      file.cipherPath = move.toCipher + file.cipherPath.slice(move.fromCipher.length);
      if (under(file.plainPath, move.fromPlain)) file.plainPath = move.toPlain + file.plainPath.slice(move.fromPlain.length);
    }
  }

  async readlink(plainPath: string): Promise<string> {
    const found = await this.tree.resolve(plainPath);
    if (found.entry.kind !== 'symlink') throw errno('EINVAL', `${plainPath} is not a symbolic link`);
    return this.targetOf(plainPath, found);
  }

  /** The decrypted target of the symbolic link `found` (resolved from `plainPath`). */
  private async targetOf(plainPath: string, found: Resolved): Promise<string> {
    const target = this.vault.names.decryptSymlinkTarget(await this.io.readlink(found.cipherPath));
    if (target === undefined) throw this.integrityFailure(plainPath, `symlink target does not decrypt (${found.cipherPath})`);
    return target;
  }
}

/**
 * What an entry's name payload holds besides its name (FORMAT.md §10.2): two entries with the
 * same form get the same cipher name for the same place, so exchanging them needs no new name.
 */
function payloadForm(entry: DirEntry): string {
  if (entry.kind === 'dir') return `dir ${Buffer.from(entry.dirId ?? []).toString('hex')}`;
  if (entry.special) return `special ${entry.special.type} ${entry.special.rdev}`;
  return 'name'; // files and symbolic links: the name alone
}

/** An attribute name for messages: its bytes as JSON text (no control characters reach a log line raw). */
function xattrNameForLog(name: Uint8Array): string {
  return JSON.stringify(Buffer.from(name).toString('utf8'));
}
