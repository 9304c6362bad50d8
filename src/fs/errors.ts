/** Mounting or unmounting failed; the message is one line meant for the user. */
export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountError';
  }
}

/**
 * What a file system error code means, in words, with what to do: messages never show a
 * raw code (ENOENT, EACCES…), which tells a user nothing. Also the set of codes that mean
 * "this file or folder could not be read or written" (src/cli/exit.ts gives them exit 3).
 */
export const FS_ERROR_WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'does not exist (check the path)',
  ENOTDIR: 'a part of the path is not a folder (check the path)',
  EACCES: 'permission denied (check the owner and mode of it and of the folders above it)',
  EPERM: 'operation not permitted (check its owner and mode)',
  EEXIST: 'already exists (refusing to overwrite)',
  EISDIR: 'is a folder where a file was expected',
  ENOSPC: 'no space left on the device (free some space, then try again)',
  EDQUOT: 'disk quota exceeded (free some space, then try again)',
  EROFS: 'is on a read-only file system',
  EBUSY: 'is busy (in use by another program)',
  ELOOP: 'too many levels of symbolic links (check the path)',
  ENAMETOOLONG: 'a name in the path is too long',
  ENXIO: 'cannot be opened (no such device, or a socket)',
  EIO: 'input/output error (the disk or the file system failed; see `dmesg`)',
};

/**
 * One line for a file system error: its path and the words for its code (Node's fs calls);
 * without a path (sealfs's own errno errors, whose message already names the plaintext
 * path) its message without the code in front. Undefined when its code has no words here.
 */
export function describeFsError(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException | undefined;
  const words = typeof e?.code === 'string' ? FS_ERROR_WORDS[e.code] : undefined;
  if (words === undefined) return undefined;
  if (e!.path !== undefined) return `${e!.path}: ${words}`;
  const said = e!.message.replace(new RegExp(`^${e!.code}: `), '');
  return said === e!.message || said === '' ? words : said;
}
