import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { resolve } from 'node:path';
import { escapedBytes, isNotUtf8, nameFromBytes } from './ciphernames.js';
import { FsatOp, requireFsatAddon, type FsatAddon } from './fsat.js';

/** A bounded read of a small control file (a long-name sidecar): ciphernames.readSidecar. */
export interface BoundedReader {
  lstat(path: string): Promise<fs.Stats>;
  /** At most `max` bytes of a regular file, opened without following a link or waiting on a FIFO. */
  readBounded(path: string, max: number): Promise<Uint8Array>;
}

/**
 * The file-system calls made on the cipher directory: the one way sealfs touches it.
 *
 * The provider controls every entry there, so the calls are confined to the vault (native
 * addon, native/sealfs_fsat.c): the vault root is opened once, every path is resolved beneath
 * it without following any link (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; on kernels
 * without openat2, one component at a time with O_NOFOLLOW), and the entry itself is acted on
 * with the *at calls that do not follow links. A planted symlink, or a folder swapped for
 * one, fails that one path (ELOOP, ENOTDIR, EXDEV); a file turned into a folder, FIFO or
 * device fails its open with EIO, without blocking.
 *
 * Paths are the full cipher paths (under the vault root) that Tree hands out; one outside
 * the root is refused with EXDEV.
 *
 * By default the calls run on libuv's thread pool. The mount server uses direct calls
 * (MountSettings.directIo: synchronous system calls, answered as settled promises): each
 * queued call pays a round trip through the pool, which costs far more than a metadata call on
 * a local disk, and a FUSE request waits for several of them in a row. Direct calls are safe
 * there because the cipher directory is never inside the mount that the same process serves
 * (the mount refuses it); fsync stays asynchronous, as it may take long, and so do listing a
 * folder and reading a file's contents, whose cost the provider decides.
 */
export interface CipherIo extends BoundedReader {
  readonly direct: boolean;
  lstat(path: string): Promise<fs.Stats>;
  /**
   * lstat of several entries of the folder `dir` in one call (a page of a listing with
   * attributes: callers pass tens of names, not a whole folder); undefined for a name whose
   * lstat failed. Names are cipher names as listed, without '/'.
   */
  lstatMany(dir: string, names: readonly string[]): Promise<(fs.Stats | undefined)[]>;
  readdir(path: string): Promise<string[]>;
  readdirTypes(path: string): Promise<fs.Dirent[]>;
  writeText(path: string, text: string): Promise<void>;
  /** Opens a regular file (never a link, FIFO, device or folder: those are ELOOP or EIO). */
  open(path: string, flags: number, mode?: number): Promise<number>;
  fstat(fd: number): Promise<fs.Stats>;
  close(fd: number): Promise<void>;
  mkdir(path: string, mode: number): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** renameat2: `flags` 0, RENAME_NOREPLACE (EEXIST when `to` exists) or RENAME_EXCHANGE (both must exist; they swap). */
  rename(from: string, to: string, flags?: number): Promise<void>;
  unlink(path: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  readlink(path: string): Promise<string>;
  chmod(path: string, mode: number): Promise<void>;
  lchown(path: string, uid: number, gid: number): Promise<void>;
  lutimes(path: string, atime: Date | number, mtime: Date | number): Promise<void>;
  /**
   * Sets an entry's access and modification times, exact to the nanosecond (ns since the
   * epoch), without following a link; an undefined time is left as it is (UTIME_OMIT).
   */
  utimens(path: string, atime: bigint | undefined, mtime: bigint | undefined): Promise<void>;
  /** utimens through the descriptor of a cipher file opened by open(); `path` only names it in errors. */
  futimens(fd: number, path: string, atime: bigint | undefined, mtime: bigint | undefined): Promise<void>;
  /** The wall clock in ns since the epoch: the time the server gives a write (as a disk would). */
  now(): bigint;
  statfs(path: string): Promise<fs.StatsFs>;
  /**
   * The largest size any file can have on the file system holding the regular file `path`
   * (its s_maxbytes, found with lseek without changing the file).
   */
  maxFileSize(path: string): Promise<number>;
  /**
   * Allocates [offset, offset + length) of the open cipher file `fd` without changing its
   * size (fallocate FALLOC_FL_KEEP_SIZE): the space a write beyond its end will take, so a
   * full disk is ENOSPC before the write is acknowledged. EOPNOTSUPP where the cipher
   * folder's file system has no fallocate.
   */
  reserve(fd: number, offset: number, length: number): Promise<void>;
  /**
   * Extended attributes of the regular file or folder at `path` (never a link: ELOOP; a FIFO
   * or device: EIO), read through an O_PATH descriptor of the entry itself. A value or list
   * is at most 64 KiB (what Linux stores); ENODATA when the attribute is not there.
   */
  getxattr(path: string, name: string): Promise<Buffer>;
  /** The attribute names of the entry at `path`, as stored: bytes, whatever the provider put there. */
  listxattr(path: string): Promise<Buffer[]>;
  /** `mode`: 'set' (create or replace), 'create' (EEXIST when there) or 'replace' (ENODATA when not). */
  setxattr(path: string, name: string, value: Uint8Array, mode: XattrSetMode): Promise<void>;
  removexattr(path: string, name: string): Promise<void>;
}

/** renameat2's flags (linux/fs.h), as CipherIo.rename takes them. */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

/**
 * A stat's times in ns since the epoch (as Node's BigIntStats has them), exact: the stats
 * CipherIo returns carry them; a Date or a ms number holds only milliseconds.
 */
export interface NsTimes {
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

/**
 * The same three times as seconds and nanoseconds (atime s, ns, mtime s, ns, ctime s, ns),
 * as the addon gives them: what the kernel is sent, without a BigInt per time (a listing of
 * 100,000 entries made millions of them).
 */
export type TimeParts = ArrayLike<number>;

/** The times of `st` as numbers when it came from CipherIo. */
export function timePartsOf(st: fs.Stats): TimeParts | undefined {
  return st instanceof CipherStats ? st.timeParts : undefined;
}

const msToNs = (ms: number) => BigInt(Math.round(ms * 1e6));

/** The exact times of `st` when it came from CipherIo; from its milliseconds otherwise. */
export function nsTimesOf(st: fs.Stats): NsTimes {
  if (st instanceof CipherStats) return st;
  return { atimeNs: msToNs(st.atimeMs), mtimeNs: msToNs(st.mtimeMs), ctimeNs: msToNs(st.ctimeMs) };
}


/** How setxattr treats an existing attribute (XATTR_CREATE, XATTR_REPLACE or neither). */
export type XattrSetMode = 'set' | 'create' | 'replace';
const SET_MODES: Readonly<Record<XattrSetMode, number>> = { set: 0, create: 1, replace: 2 };

/** Splits a listxattr answer (names each ended by NUL) into names. */
function splitNames(list: Buffer): Buffer[] {
  const names: Buffer[] = [];
  for (let at = 0; at < list.length; ) {
    const end = list.indexOf(0, at);
    const stop = end < 0 ? list.length : end;
    if (stop > at) names.push(list.subarray(at, stop));
    at = stop + 1;
  }
  return names;
}

/** One time of TimeParts (at 0, 2 or 4) in ns since the epoch. */
export function nsOfParts(parts: TimeParts, at: number): bigint {
  return BigInt(parts[at]!) * NS_PER_S + BigInt(parts[at + 1]!);
}

/** Numbers of one stat in the addon's answers (STAT_NUMBERS in sealfs_fsat.c). */
const STAT_NUMBERS = 19;
const NS_PER_S = 1_000_000_000n;

/** lstat's answer, with fs.Stats's shape. */
class CipherStats implements fs.Stats {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  birthtimeMs = 0;
  /** The three times as seconds and nanoseconds (TimeParts). */
  readonly timeParts: Float64Array;

  /**
   * `s`: lstat's Float64Array (sealfs_fsat.c): dev ino mode nlink uid gid rdev size blksize
   * blocks atimeMs mtimeMs ctimeMs, then the three times as seconds and nanoseconds.
   */
  constructor(s: Float64Array) {
    this.dev = s[0]!;
    this.ino = s[1]!;
    this.mode = s[2]!;
    this.nlink = s[3]!;
    this.uid = s[4]!;
    this.gid = s[5]!;
    this.rdev = s[6]!;
    this.size = s[7]!;
    this.blksize = s[8]!;
    this.blocks = s[9]!;
    this.atimeMs = s[10]!;
    this.mtimeMs = s[11]!;
    this.ctimeMs = s[12]!;
    this.timeParts = s.subarray(13, 19);
  }

  // Exact times as BigInts only when asked for.
  get atimeNs(): bigint { return nsOfParts(this.timeParts, 0); }
  get mtimeNs(): bigint { return nsOfParts(this.timeParts, 2); }
  get ctimeNs(): bigint { return nsOfParts(this.timeParts, 4); }

  /** Node's fstat with `bigint: true` (a descriptor's stat), in the same shape. */
  static ofBigInt(b: fs.BigIntStats): CipherStats {
    const numbers = [b.dev, b.ino, b.mode, b.nlink, b.uid, b.gid, b.rdev, b.size, b.blksize, b.blocks].map(Number);
    const ms = (ns: bigint) => Number(ns) / 1e6;
    const parts = (ns: bigint) => timespecNs(ns);
    return new CipherStats(
      Float64Array.from([...numbers, ms(b.atimeNs), ms(b.mtimeNs), ms(b.ctimeNs), ...parts(b.atimeNs), ...parts(b.mtimeNs), ...parts(b.ctimeNs)]),
    );
  }

  get atime(): Date { return new Date(this.atimeMs); }
  get mtime(): Date { return new Date(this.mtimeMs); }
  get ctime(): Date { return new Date(this.ctimeMs); }
  get birthtime(): Date { return new Date(this.birthtimeMs); }
  private type(): number { return this.mode & fs.constants.S_IFMT; }
  isFile(): boolean { return this.type() === fs.constants.S_IFREG; }
  isDirectory(): boolean { return this.type() === fs.constants.S_IFDIR; }
  isSymbolicLink(): boolean { return this.type() === fs.constants.S_IFLNK; }
  isFIFO(): boolean { return this.type() === fs.constants.S_IFIFO; }
  isSocket(): boolean { return this.type() === fs.constants.S_IFSOCK; }
  isCharacterDevice(): boolean { return this.type() === fs.constants.S_IFCHR; }
  isBlockDevice(): boolean { return this.type() === fs.constants.S_IFBLK; }
}

/** Entry types as sealfs_fsat.c lists them (libuv's UV_DIRENT_* numbering). */
const DirentType = { file: 1, dir: 2, link: 3, fifo: 4, socket: 5, char: 6, block: 7 } as const;

/** A listed entry, with fs.Dirent's shape. */
class CipherDirent implements fs.Dirent {
  constructor(
    readonly name: string,
    readonly parentPath: string,
    private readonly kind: number,
  ) {}
  get path(): string { return this.parentPath; }
  isFile(): boolean { return this.kind === DirentType.file; }
  isDirectory(): boolean { return this.kind === DirentType.dir; }
  isSymbolicLink(): boolean { return this.kind === DirentType.link; }
  isFIFO(): boolean { return this.kind === DirentType.fifo; }
  isSocket(): boolean { return this.kind === DirentType.socket; }
  isCharacterDevice(): boolean { return this.kind === DirentType.char; }
  isBlockDevice(): boolean { return this.kind === DirentType.block; }
}

function notUtf8(path: string): NodeJS.ErrnoException {
  const err = new Error(`EILSEQ: cipher path ${escapedBytes(path)} has a name that is not UTF-8`) as NodeJS.ErrnoException;
  err.code = 'EILSEQ';
  err.path = path;
  return err;
}

function outside(path: string, root: string): NodeJS.ErrnoException {
  const err = new Error(`EXDEV: cipher path ${path} is outside the vault ${root}`) as NodeJS.ErrnoException;
  err.code = 'EXDEV';
  err.path = path;
  return err;
}

/** Seconds and nanoseconds of a time as Node's utimes takes it (a Date, or seconds). */
function timespec(t: Date | number): [number, number] {
  const ms = typeof t === 'number' ? t * 1000 : t.getTime();
  const sec = Math.floor(ms / 1000);
  return [sec, Math.round((ms - sec * 1000) * 1e6)];
}

/** utimensat's "leave this time as it is" (UTIME_OMIT in <sys/stat.h>), as a nanoseconds field. */
const UTIME_OMIT = 2 ** 30 - 2;

/** Seconds and nanoseconds (0 to 999,999,999, also before 1970) of a time in ns since the epoch. */
function timespecNs(ns: bigint): [number, number] {
  let sec = ns / NS_PER_S;
  if (ns < sec * NS_PER_S) sec -= 1n; // bigint division rounds toward zero
  return [Number(sec), Number(ns - sec * NS_PER_S)];
}

/** A time as the addon's utimensat takes it: seconds and nanoseconds, or UTIME_OMIT. */
const timeArgs = (ns: bigint | undefined): [number, number] => (ns === undefined ? [0, UTIME_OMIT] : timespecNs(ns));

const closeRoot = new FinalizationRegistry<number>((fd) => fs.close(fd, () => {}));

/** The confined calls (see CipherIo) beneath the folder `root`, direct or queued. */
function confinedCipherIo(addon: FsatAddon, root: string, direct: boolean): CipherIo {
  // Control files (a long name's sidecar) get the mode the user's umask gives, read now: the
  // mount server then clears its own umask so that entries get exactly the mode the kernel
  // asks for (src/fs/mount.ts), and a sidecar must not become writable by everyone.
  const controlFileMode = 0o666 & ~process.umask();
  const rootPath = resolve(root);
  const prefix = rootPath.endsWith('/') ? rootPath : rootPath + '/';
  const skip = Buffer.byteLength(rootPath);
  let rootFd: number | undefined;
  const calling = (call: FsatAddon['fsat']) => async (op: FsatOp, path: string, path2: string | null = null, a = 0, b = 0, c = 0, d = 0, data: Buffer | null = null) => {
    if (path !== rootPath && !path.startsWith(prefix)) throw outside(path, rootPath);
    // Such a name has no string the calls could pass on: it would reach another entry's bytes.
    if (isNotUtf8(path) || (path2 !== null && isNotUtf8(path2))) throw notUtf8(isNotUtf8(path) ? path : path2!);
    if (path2 !== null && (op === FsatOp.rename || op === FsatOp.link) && path2 !== rootPath && !path2.startsWith(prefix)) throw outside(path2, rootPath);
    if (rootFd === undefined) {
      rootFd = addon.fsatOpenRoot(rootPath);
      closeRoot.register(io, rootFd);
    }
    return call(op, rootFd, skip, path, path2, a, b, c, d, data);
  };
  const at = calling(direct ? addon.fsat : addon.fsatAsync);
  // A listing, and a file's contents, take as long as the provider makes them (a folder of a
  // million names): never on the serving thread, even where metadata calls are direct.
  const atQueued = calling(addon.fsatAsync);
  // A name that is not UTF-8 comes as its bytes (native/sealfs_fsat.c): see nameFromBytes.
  const list = async (path: string) => {
    const { names, types } = (await atQueued(FsatOp.readdir, path)) as { names: (string | Buffer)[]; types: number[] };
    return { names: names.map((name) => (typeof name === 'string' ? name : nameFromBytes(name))), types };
  };
  const io: CipherIo = {
    direct,
    lstat: async (p) => new CipherStats((await at(FsatOp.lstat, p)) as Float64Array),
    lstatMany: async (dir, names) => {
      // A name that is not UTF-8 has no string to pass (see calling): reported as failed.
      const passed = names.filter((name) => !isNotUtf8(name));
      const numbers = (await at(FsatOp.lstatMany, dir, null, 0, 0, 0, 0, Buffer.from(passed.map((name) => `${name}\0`).join('')))) as Float64Array;
      const byName = new Map<string, fs.Stats>();
      passed.forEach((name, k) => {
        const at = k * (1 + STAT_NUMBERS);
        if (numbers[at] === 0) byName.set(name, new CipherStats(numbers.subarray(at + 1, at + 1 + STAT_NUMBERS)));
      });
      return names.map((name) => byName.get(name));
    },
    readdir: async (p) => (await list(p)).names,
    readdirTypes: async (p) => {
      const { names, types } = await list(p);
      return names.map((name, i) => new CipherDirent(name, p, types[i]!));
    },
    writeText: async (p, t) => void (await at(FsatOp.writeFile, p, null, controlFileMode, 0, 0, 0, Buffer.from(t))),
    open: async (p, flags, mode = 0o666) => (await at(FsatOp.open, p, null, flags, mode)) as number,
    fstat: direct ? async (fd) => CipherStats.ofBigInt(fs.fstatSync(fd, { bigint: true })) : fstatQueued,
    close: direct ? async (fd) => closeQuietly(fd) : (fd) => new Promise((done) => fs.close(fd, () => done())),
    mkdir: async (p, mode) => void (await at(FsatOp.mkdir, p, null, mode)),
    rmdir: async (p) => void (await at(FsatOp.rmdir, p)),
    rename: async (a, b, flags = 0) => void (await at(FsatOp.rename, a, b, flags)),
    unlink: async (p) => void (await at(FsatOp.unlink, p)),
    link: async (a, b) => void (await at(FsatOp.link, a, b)),
    symlink: async (t, p) => void (await at(FsatOp.symlink, p, t)),
    readlink: async (p) => (await at(FsatOp.readlink, p)) as string,
    readBounded: async (p, max) => (await atQueued(FsatOp.readFile, p, null, max)) as Buffer,
    chmod: async (p, m) => void (await at(FsatOp.chmod, p, null, m)),
    lchown: async (p, u, g) => void (await at(FsatOp.lchown, p, null, u, g)),
    lutimes: async (p, a, m) => void (await at(FsatOp.lutimes, p, null, ...timespec(a), ...timespec(m))),
    utimens: async (p, a, m) => void (await at(FsatOp.lutimes, p, null, ...timeArgs(a), ...timeArgs(m))),
    futimens: async (fd, p, a, m) => {
      const times = Buffer.alloc(32);
      [...timeArgs(a), ...timeArgs(m)].forEach((n, k) => times.writeBigInt64LE(BigInt(n), k * 8));
      await at(FsatOp.futimens, p, null, fd, 0, 0, 0, times);
    },
    now: () => addon.fsatNow(),
    statfs: async (p) => (await at(FsatOp.statfs, p)) as fs.StatsFs,
    maxFileSize: async (p) => (await at(FsatOp.maxSize, p)) as number,
    // Queued: reserving gigabytes takes the file system a while.
    reserve: async (fd, offset, length) => void (await atQueued(FsatOp.reserve, rootPath, null, offset, length, 0, fd)),
    // Queued, as reads of what the provider controls are (bounded to 64 KiB each all the same).
    getxattr: async (p, name) => (await atQueued(FsatOp.getxattr, p, name)) as Buffer,
    listxattr: async (p) => splitNames((await atQueued(FsatOp.listxattr, p)) as Buffer),
    setxattr: async (p, name, value, mode) => void (await atQueued(FsatOp.setxattr, p, name, SET_MODES[mode], 0, 0, 0, Buffer.from(value.buffer, value.byteOffset, value.byteLength))),
    removexattr: async (p, name) => void (await atQueued(FsatOp.removexattr, p, name)),
  };
  return io;
}

/** readBounded with Node's calls: the last component is never followed, a FIFO never waited on. */
export async function nodeReadBounded(path: string, max: number): Promise<Uint8Array> {
  const handle = await fsp.open(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    if (!(await handle.stat()).isFile()) throw notRegular(path);
    const buffer = Buffer.alloc(max);
    let length = 0;
    for (let n = -1; n !== 0 && length < buffer.length; length += n) {
      n = (await handle.read(buffer, length, buffer.length - length, length)).bytesRead;
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

function notRegular(path: string): NodeJS.ErrnoException {
  const err = new Error(`EIO: not a regular file, open '${path}'`) as NodeJS.ErrnoException;
  err.code = 'EIO';
  err.syscall = 'open';
  err.path = path;
  return err;
}

function fstatQueued(fd: number): Promise<fs.Stats> {
  return new Promise((done, fail) => fs.fstat(fd, { bigint: true }, (err, st) => (err ? fail(err) : done(CipherStats.ofBigInt(st)))));
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Closing is best effort: the descriptor is gone either way.
  }
}

/**
 * The calls on the vault whose cipher directory is `root`, as `settings.directIo` asks. There
 * is no unconfined way: without the native addon no call reaches a cipher folder.
 */
export function cipherIoFor(settings: { readonly directIo: boolean }, root: string): CipherIo {
  return confinedCipherIo(requireFsatAddon(), root, settings.directIo);
}

/**
 * Queued calls confined to the whole file system ("/"): no link is followed anywhere in a
 * path. For callers that list a cipher folder without a vault (DirectoryDecoder's default).
 */
export function rootedCipherIo(): CipherIo {
  return (rooted ??= cipherIoFor({ directIo: false }, '/'));
}
let rooted: CipherIo | undefined;
