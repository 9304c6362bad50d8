/**
 * Reading a small control file whole: a long name's sidecar, the vault file, a key store
 * file. The one way sealfs reads such a file, because the cipher folder is hostile input:
 * the name itself must be a regular file (a symbolic link is never followed, a FIFO never
 * waited on, a device never read), it is read with asynchronous calls only (never blocking
 * the serving thread), and never more than a hard bound of bytes. Inside a vault the reads go
 * through the vault's confined calls (src/vault/cipherio.ts); elsewhere through Node's.
 */
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { nodeReadBounded, type BoundedReader } from './cipherio.js';

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

/** Reads with Node's calls: the last component is never followed, a FIFO never waited on. */
export const NODE_READER: BoundedReader = { lstat, readBounded: nodeReadBounded };

/** What a cipher-folder entry that is not a regular file is, in words (a Stats or a Dirent). */
export function typeWords(st: Pick<Stats, 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isSocket' | 'isCharacterDevice' | 'isBlockDevice'>): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

const notRegular = (what: string): ControlFileRead => ({ ok: false, fault: 'not-regular', detail: `it is ${what}, not a regular file` });
const tooLarge = (maxBytes: number): ControlFileRead => ({ ok: false, fault: 'too-large', detail: `it is larger than ${maxBytes} bytes` });

/** Reads the regular file `path` whole if it holds at most `maxBytes` bytes (at most maxBytes + 1 are ever read). */
export async function readControlFile(path: string, maxBytes: number, io: BoundedReader = NODE_READER): Promise<ControlFileRead> {
  try {
    // lstat first, so that opening never touches a device or waits on a FIFO; the reader's
    // O_NOFOLLOW and its check of the descriptor's own type catch an entry swapped in between.
    const named = await io.lstat(path);
    if (!named.isFile()) return notRegular(typeWords(named));
    if (named.size > maxBytes) return tooLarge(maxBytes);
    // The size may change while it is read: read one byte past the bound to see that.
    const bytes = await io.readBounded(path, maxBytes + 1);
    return bytes.length > maxBytes ? tooLarge(maxBytes) : { ok: true, bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length) };
  } catch (err) {
    const error = err as NodeJS.ErrnoException;
    if (error.code === 'ENOENT') return { ok: false, fault: 'missing', detail: 'it is missing', error };
    // A symbolic link, or another type of entry, swapped in after the lstat.
    if (error.code === 'ELOOP') return notRegular('a symbolic link');
    if (error.code === 'EIO' && /not a regular file/.test(error.message)) return notRegular('no longer a regular file');
    return { ok: false, fault: 'unreadable', detail: `it cannot be read: ${error.message}`, error };
  }
}
