/**
 * Reading a small control file whole: a long name's sidecar, the vault file, a key store
 * file. The one way sealfs reads such a file, because the cipher folder is hostile input:
 * the name itself must be a regular file (a symbolic link is never followed, a FIFO never
 * waited on, a device never read), it is read with asynchronous calls only (never blocking
 * the serving thread), and never more than a hard bound of bytes.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';

export type ControlFileFault =
  /** There is no such file. */
  | 'missing'
  /** It is a directory, a symbolic link or a special file. */
  | 'not-regular'
  /** It holds more than the bound. */
  | 'too-large'
  /** It could not be opened or read (permission, I/O error, a parent that is not a folder). */
  | 'unreadable';

export type ControlFileRead =
  | { readonly ok: true; readonly bytes: Buffer }
  | {
      readonly ok: false;
      readonly fault: ControlFileFault;
      /** Why, as the end of a sentence about the file: "it is a FIFO". */
      readonly detail: string;
      /** The system call's error, for 'missing' and 'unreadable'. */
      readonly error?: NodeJS.ErrnoException;
    };

function typeOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

const notRegular = (st: Stats): ControlFileRead => ({ ok: false, fault: 'not-regular', detail: `it is ${typeOf(st)}, not a regular file` });
const tooLarge = (maxBytes: number): ControlFileRead => ({ ok: false, fault: 'too-large', detail: `it is larger than ${maxBytes} bytes` });

/** Reads the regular file `path` whole if it holds at most `maxBytes` bytes (at most maxBytes + 1 are ever read). */
export async function readControlFile(path: string, maxBytes: number): Promise<ControlFileRead> {
  try {
    // lstat first, so that opening never touches a device or waits on a FIFO; O_NOFOLLOW and
    // the descriptor's own type catch an entry swapped in between (O_NONBLOCK: a FIFO swapped
    // in opens without waiting for a writer).
    const named = await lstat(path);
    if (!named.isFile()) return notRegular(named);
    if (named.size > maxBytes) return tooLarge(maxBytes);
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const st = await handle.stat();
      if (!st.isFile()) return notRegular(st);
      if (st.size > maxBytes) return tooLarge(maxBytes);
      // The size may change while it is read: read one byte past the bound to see that.
      const buffer = Buffer.alloc(maxBytes + 1);
      let length = 0;
      for (let n = -1; n !== 0 && length < buffer.length; length += n) {
        n = (await handle.read(buffer, length, buffer.length - length, length)).bytesRead;
      }
      return length > maxBytes ? tooLarge(maxBytes) : { ok: true, bytes: buffer.subarray(0, length) };
    } finally {
      await handle.close();
    }
  } catch (err) {
    const error = err as NodeJS.ErrnoException;
    if (error.code === 'ENOENT') return { ok: false, fault: 'missing', detail: 'it is missing', error };
    // O_NOFOLLOW met a symbolic link swapped in after the lstat.
    if (error.code === 'ELOOP') return { ok: false, fault: 'not-regular', detail: 'it is a symbolic link, not a regular file' };
    return { ok: false, fault: 'unreadable', detail: `it cannot be read: ${error.message}`, error };
  }
}
