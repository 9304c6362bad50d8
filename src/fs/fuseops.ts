/**
 * The FUSE operations of a sealfs mount, by path: each translated onto PlainFs (src/fs/kernel.ts
 * turns the kernel's requests, by node, into these calls).
 * No crypto and no path logic lives here; this file only converts arguments, results and
 * errors. Every operation answers exactly once with a number first (0 or a negative errno,
 * or a byte count for read and write): an answer without a number, or no answer, would
 * leave the kernel request, and the program that made it, hanging forever.
 */
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { FormatError } from '../crypto/errors.js';
import { NameError } from '../vault/errors.js';
import type { Owner, PlainFs, PlainStat } from '../vault/plainfs.js';

/** An operation's answer: a status number first (0, -errno, or a byte count), then results. */
export type FuseCallback = (code: number, ...results: unknown[]) => void;

/** Negative errno values, by name (Linux numbering, from Node's own table). */
const ERRNO = osConstants.errno as Readonly<Record<string, number>>;

export const E = {
  EPERM: -ERRNO.EPERM!,
  ENOENT: -ERRNO.ENOENT!,
  EIO: -ERRNO.EIO!,
  EBADF: -ERRNO.EBADF!,
  EACCES: -ERRNO.EACCES!,
  EEXIST: -ERRNO.EEXIST!,
  EXDEV: -ERRNO.EXDEV!,
  ENOTDIR: -ERRNO.ENOTDIR!,
  EISDIR: -ERRNO.EISDIR!,
  EINVAL: -ERRNO.EINVAL!,
  ENOSPC: -ERRNO.ENOSPC!,
  EROFS: -ERRNO.EROFS!,
  ENAMETOOLONG: -ERRNO.ENAMETOOLONG!,
  ENOSYS: -ERRNO.ENOSYS!,
  ENOTEMPTY: -ERRNO.ENOTEMPTY!,
} as const;

/**
 * Errors that are a normal answer to a request (a missing file, a full disk…). Anything else
 * reaching the mount is unexpected and gets one log line.
 */
const ORDINARY = new Set([
  'ENOENT', 'EEXIST', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'EROFS', 'EACCES', 'EPERM', 'EINVAL', 'EBADF', 'EXDEV', 'ENOSPC',
  'ENAMETOOLONG', 'EDQUOT', 'EFBIG', 'EMLINK', 'ELOOP', 'ETXTBSY', 'EBUSY', 'EMFILE', 'ENFILE', 'EAGAIN', 'EINTR',
]);

export interface FuseOpsOptions {
  /** One line per unexpected error (never file contents, never keys). */
  log?: (line: string) => void;
  /**
   * A secret name that getattr answers (as the root) and nothing lists: the server stats it
   * to tell its own mount from a later one at the same place.
   */
  probeName?: string;
  /** st_blksize reported to programs: their preferred I/O size (cp, dd, stdio buffers). */
  blockSize?: number;
}

/**
 * The negative errno for any error PlainFs (or Node's fs under it) throws. Unknown errors
 * become EIO and are logged, so that a bug is visible instead of silently mapped.
 */
export function toErrno(err: unknown, where: string, log: (line: string) => void = () => {}): number {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e.code === 'string') {
    const number = ERRNO[e.code];
    if (number !== undefined) {
      // PlainFs logs its own EIO (an integrity failure) once; a system call's EIO is logged here.
      const reported = e.code === 'EIO' && e.syscall === undefined;
      if (!ORDINARY.has(e.code) && !reported) log(`${where}: ${e.message}`);
      return -number;
    }
  }
  if (err instanceof NameError) return err.kind === 'too-long' ? E.ENAMETOOLONG : E.EINVAL;
  if (err instanceof FormatError) {
    log(`${where}: integrity: ${err.message}`);
    return E.EIO;
  }
  if (e && typeof e.errno === 'number' && e.errno < 0) {
    log(`${where}: ${e.message}`);
    return e.errno;
  }
  log(`${where}: unexpected error: ${e instanceof Error ? (e.stack ?? e.message).split('\n').slice(0, 3).join(' | ') : String(err)}`);
  return E.EIO;
}

/**
 * Special time values of utimens: src/fs/kernel.ts passes UTIME_NOW and UTIME_OMIT (a time
 * left as it is, as `tar x` leaves the access time) as 2^53-1 and 2^53-2 ms.
 */
export const UTIME_NOW_MS = Number.MAX_SAFE_INTEGER;
export const UTIME_OMIT_MS = Number.MAX_SAFE_INTEGER - 1;

/** The Date to set for a utimens time argument, or undefined to leave that time as it is. */
export function utimensTime(ms: number, now: Date): Date | undefined {
  if (ms === UTIME_OMIT_MS) return undefined;
  if (ms === UTIME_NOW_MS) return now;
  return new Date(ms);
}

const UINT32 = 2 ** 32;

/** Block counts stay within 32 bits (what older statfs callers handle): grow the fragment size until they fit. */
export function scaleStatfs(bsize: number, blocks: number, bfree: number, bavail: number): { frsize: number; blocks: number; bfree: number; bavail: number } {
  let frsize = bsize;
  let scale = 1;
  while (blocks / scale >= UINT32 && frsize * 2 < UINT32) {
    scale *= 2;
    frsize *= 2;
  }
  const fit = (n: number) => Math.min(UINT32 - 1, Math.floor(n / scale));
  return { frsize, blocks: fit(blocks), bfree: fit(bfree), bavail: fit(bavail) };
}

const clamp32 = (n: number) => Math.max(0, Math.min(UINT32 - 1, Math.floor(n)));

/** The operations by path, as a plain object: testable without mounting. */
export interface FuseOps {
  init(cb: FuseCallback): void;
  getattr(path: string, cb: FuseCallback): void;
  /** Attributes through an open handle: also for a file whose name is gone. */
  fgetattr(path: string, fh: number, cb: FuseCallback): void;
  readdir(path: string, cb: FuseCallback): void;
  statfs(path: string, cb: FuseCallback): void;
  open(path: string, flags: number, cb: FuseCallback): void;
  /** `owner`: the calling program's user and group, for the new entry (applied when serving as root). */
  create(path: string, mode: number, cb: FuseCallback, owner?: Owner): void;
  read(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: FuseCallback): void;
  write(path: string, fh: number, buf: Uint8Array, len: number, pos: number, cb: FuseCallback): void;
  flush(path: string, fh: number, cb: FuseCallback): void;
  fsync(path: string, datasync: number, fh: number, cb: FuseCallback): void;
  release(path: string, fh: number, cb: FuseCallback): void;
  truncate(path: string, size: number, cb: FuseCallback): void;
  ftruncate(path: string, fh: number, size: number, cb: FuseCallback): void;
  unlink(path: string, cb: FuseCallback): void;
  rename(src: string, dest: string, cb: FuseCallback): void;
  link(src: string, dest: string, cb: FuseCallback): void;
  symlink(target: string, path: string, cb: FuseCallback, owner?: Owner): void;
  readlink(path: string, cb: FuseCallback): void;
  mkdir(path: string, mode: number, cb: FuseCallback, owner?: Owner): void;
  rmdir(path: string, cb: FuseCallback): void;
  chmod(path: string, mode: number, cb: FuseCallback): void;
  chown(path: string, uid: number, gid: number, cb: FuseCallback): void;
  utimens(path: string, atime: number, mtime: number, cb: FuseCallback): void;
}

/** Requests that have not been answered yet; the mount waits for them before it lets go of files. */
export interface Inflight {
  readonly count: number;
  /** Resolves once no request is being served. */
  idle(): Promise<void>;
}

/** A logger that never throws: a failing log (a closed terminal, a full disk) must not stop an answer. */
export function quiet(log: ((line: string) => void) | undefined): (line: string) => void {
  if (!log) return () => {};
  return (line) => {
    try {
      log(line);
    } catch {
      // nowhere left to report it
    }
  };
}

export function fuseOps(fs: PlainFs, options: FuseOpsOptions = {}): FuseOps & { inflight: Inflight } {
  const log = quiet(options.log);
  const blockSize = options.blockSize ?? 128 * 1024;
  let pending = 0;
  let waiters: (() => void)[] = [];

  /**
   * Runs one request: `work` resolves to the status number and results. Exactly one answer,
   * whatever happens, and never an exception out to the caller.
   */
  function serve(where: string, cb: FuseCallback, work: () => Promise<[number, ...unknown[]]>): void {
    pending++;
    let answered = false;
    const answer = (code: number, results: unknown[]) => {
      if (answered) return;
      answered = true;
      pending--;
      if (pending === 0 && waiters.length) {
        const ready = waiters;
        waiters = [];
        for (const resolve of ready) resolve();
      }
      try {
        cb(code, ...results);
      } catch (err) {
        log(`${where}: answering the kernel failed: ${(err as Error).message}`);
      }
    };
    let promise: Promise<[number, ...unknown[]]>;
    try {
      promise = work();
    } catch (err) {
      answer(toErrno(err, where, log), []);
      return;
    }
    promise.then(
      ([code, ...results]) => answer(code, results),
      (err: unknown) => answer(toErrno(err, where, log), []),
    );
  }

  const ok = async (run: () => Promise<unknown>): Promise<[number]> => {
    await run();
    return [0];
  };

  function statOf(st: PlainStat): Record<string, number | Date> {
    return {
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      dev: 0,
      nlink: st.nlink,
      ino: st.ino,
      rdev: 0,
      blksize: blockSize,
      blocks: st.blocks,
      atime: st.atime,
      mtime: st.mtime,
      ctime: st.ctime,
    };
  }

  const ops: FuseOps = {
    init: (cb) => cb(0),

    getattr: (path, cb) =>
      serve(`getattr ${path}`, cb, async () => [0, statOf(await fs.getattr(options.probeName && path === `/${options.probeName}` ? '/' : path))]),

    fgetattr: (path, fh, cb) => serve(`fgetattr ${path}`, cb, async () => [0, statOf(await fs.fgetattr(fh))]),

    // '.' and '..' as every POSIX directory lists them (they can never be plaintext names).
    readdir: (path, cb) => serve(`readdir ${path}`, cb, async () => [0, ['.', '..', ...(await fs.readdir(path))]]),

    statfs: (path, cb) =>
      serve(`statfs ${path}`, cb, async () => {
        const st = await fs.statfs();
        const scaled = scaleStatfs(st.bsize, st.blocks, st.bfree, st.bavail);
        return [
          0,
          {
            bsize: clamp32(st.bsize),
            frsize: clamp32(scaled.frsize),
            blocks: scaled.blocks,
            bfree: scaled.bfree,
            bavail: scaled.bavail,
            files: clamp32(st.files),
            ffree: clamp32(st.ffree),
            favail: clamp32(st.ffree),
            fsid: 0,
            flag: 0,
            namemax: st.namemax,
          },
        ];
      }),

    open: (path, flags, cb) => serve(`open ${path}`, cb, async () => [0, await fs.open(path, flags)]),

    // Opened read-write whatever the caller asked: the kernel checks the caller's access mode itself.
    create: (path, mode, cb, owner) => serve(`create ${path}`, cb, async () => [0, await fs.create(path, mode & 0o7777, owner, fsConstants.O_RDWR)]),

    read: (path, fh, buf, len, pos, cb) =>
      serve(`read ${path}`, cb, async () => {
        const data = await fs.read(fh, pos, len);
        // `buf` is libfuse's memory and only valid until cb: fill it first.
        const n = Math.min(data.length, len, buf.length);
        buf.set(n === data.length ? data : data.subarray(0, n), 0);
        return [n];
      }),

    // `buf` is libfuse's memory, valid until cb; SealedFile copies it into its own chunk
    // buffer before sealing and keeps no reference once the write has resolved.
    write: (path, fh, buf, len, pos, cb) =>
      serve(`write ${path}`, cb, async () => [await fs.write(fh, pos, len === buf.length ? buf : buf.subarray(0, len))]),

    // Writes go straight to the ciphertext file: nothing is buffered that close() must push.
    flush: (path, fh, cb) => serve(`flush ${path}`, cb, () => ok(() => fs.flush(fh))),

    fsync: (path, _datasync, fh, cb) => serve(`fsync ${path}`, cb, () => ok(() => fs.fsync(fh))),

    release: (path, fh, cb) => serve(`release ${path}`, cb, () => ok(() => fs.release(fh))),

    truncate: (path, size, cb) => serve(`truncate ${path}`, cb, () => ok(() => fs.truncate(path, size))),

    ftruncate: (path, fh, size, cb) =>
      serve(`ftruncate ${path}`, cb, () => ok(() => (fh ? fs.ftruncate(fh, size) : fs.truncate(path, size)))),

    unlink: (path, cb) => serve(`unlink ${path}`, cb, () => ok(() => fs.unlink(path))),

    rename: (src, dest, cb) => serve(`rename ${src}`, cb, () => ok(() => fs.rename(src, dest))),

    link: (src, dest, cb) => serve(`link ${src}`, cb, () => ok(() => fs.link(src, dest))),

    symlink: (target, path, cb, owner) => serve(`symlink ${path}`, cb, () => ok(() => fs.symlink(target, path, owner))),

    readlink: (path, cb) => serve(`readlink ${path}`, cb, async () => [0, await fs.readlink(path)]),

    mkdir: (path, mode, cb, owner) => serve(`mkdir ${path}`, cb, () => ok(() => fs.mkdir(path, mode & 0o7777, owner))),

    rmdir: (path, cb) => serve(`rmdir ${path}`, cb, () => ok(() => fs.rmdir(path))),

    chmod: (path, mode, cb) => serve(`chmod ${path}`, cb, () => ok(() => fs.chmod(path, mode & 0o7777))),

    chown: (path, uid, gid, cb) => serve(`chown ${path}`, cb, () => ok(() => fs.chown(path, uid, gid))),

    utimens: (path, atime, mtime, cb) =>
      serve(`utimens ${path}`, cb, async () => {
        const now = new Date();
        await fs.utimens(path, utimensTime(atime, now), utimensTime(mtime, now));
        return [0];
      }),
  };

  const inflight: Inflight = {
    get count() {
      return pending;
    },
    idle: () => (pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
  };

  return { ...ops, inflight };
}
