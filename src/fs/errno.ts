/**
 * The one place where an error becomes the errno a FUSE request is answered with. Every
 * kernel handler's failure comes here (src/fs/kernel.ts), whatever threw it: PlainFs and Node's
 * fs (errors with a `code`), the vault's NameError, the crypto layer's FormatError, or a bug.
 */
import { constants as osConstants } from 'node:os';
import { FormatError } from '../crypto/errors.js';
import { NameError } from '../vault/errors.js';

/** Errno numbers by name (Linux numbering, Node's own table): the only errno table of the mount. */
export const ERRNO = osConstants.errno as Readonly<Record<string, number>>;

/**
 * Errors that are a normal answer to a request (a missing file, a full disk…). Anything else
 * reaching the mount is unexpected and gets one log line.
 */
const ORDINARY = new Set([
  'ENOENT', 'EEXIST', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'EROFS', 'EACCES', 'EPERM', 'EINVAL', 'EBADF', 'EXDEV', 'ENOSPC',
  'ENAMETOOLONG', 'EDQUOT', 'EFBIG', 'EMLINK', 'ELOOP', 'ETXTBSY', 'EBUSY', 'EMFILE', 'ENFILE', 'EAGAIN', 'EINTR', 'EILSEQ',
  // Extended attributes: absent, not stored in this namespace, a buffer or value too small or large.
  'ENODATA', 'EOPNOTSUPP', 'ENOTSUP', 'ERANGE', 'E2BIG',
]);

/**
 * The errno (positive, as fuse_reply_err takes it) for any error a request ran into.
 * Unknown errors become EIO and are logged with `where` (which request, which path), so
 * that a bug is visible instead of silently mapped.
 */
export function errnoOf(err: unknown, where: string, log: (line: string) => void): number {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e.code === 'string') {
    const number = ERRNO[e.code];
    if (number !== undefined) {
      // PlainFs logs its own EIO (an integrity failure) once; a system call's EIO is logged here.
      const reported = e.code === 'EIO' && e.syscall === undefined;
      if (!ORDINARY.has(e.code) && !reported) log(`${where}: ${e.message}`);
      return number;
    }
  }
  if (err instanceof NameError) return err.kind === 'too-long' ? ERRNO.ENAMETOOLONG! : ERRNO.EINVAL!;
  if (err instanceof FormatError) {
    log(`${where}: integrity: ${err.message}`);
    return ERRNO.EIO!;
  }
  if (e && typeof e.errno === 'number' && e.errno < 0) {
    log(`${where}: ${e.message}`);
    return -e.errno;
  }
  log(`${where}: unexpected error: ${e instanceof Error ? (e.stack ?? e.message).split('\n').slice(0, 3).join(' | ') : String(err)}`);
  return ERRNO.EIO!;
}
