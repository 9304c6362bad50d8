/**
 * One writer per vault on a machine. Two servers of one vault each keep their own open
 * files, listings and gathered writes, so what one writes the other overwrites: a second
 * mount of a vault (by any path: a symlink, a bind mount) is refused, as is a repair while
 * it is mounted.
 *
 * The lock is an exclusive flock(2) on the vault folder itself (native/sealfs_fsat.c,
 * fsatLockFolder). Nothing is written, in the cipher folder or anywhere: no lock file that a
 * sync client would carry to another machine, or that a crash would leave behind. The
 * kernel drops the lock when the process holding it ends, however it ends (kill -9 too), and
 * it locks the folder's inode, which every path to the vault reaches, whoever the user is.
 * Who holds it is read from /proc/locks (the holder's pid, and the folder as
 * major:minor:inode).
 */
import { closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { requireFsatAddon } from './fsat.js';

/** The vault folder's identity as /proc/locks names it. */
export interface FolderId {
  readonly major: number;
  readonly minor: number;
  readonly ino: number;
}

export type VaultLock =
  /** Held until release() or the end of this process. */
  | { readonly state: 'held'; readonly folder: FolderId; release(): void }
  /** Another process holds it: `holder` is its pid when /proc/locks tells. */
  | { readonly state: 'busy'; readonly folder: FolderId; readonly holder?: number }
  /** The folder's file system keeps no locks (flock failed with `error`): not locked. */
  | { readonly state: 'unsupported'; readonly folder: FolderId; readonly error: string };

/** Takes the lock of the vault folder `cipherDir` (the caller's path, links followed), without waiting. */
export async function lockVaultFolder(cipherDir: string): Promise<VaultLock> {
  const taken = requireFsatAddon().fsatLockFolder(cipherDir);
  const folder: FolderId = { major: taken.major, minor: taken.minor, ino: taken.ino };
  if (taken.fd >= 0) {
    let fd: number | undefined = taken.fd;
    return {
      state: 'held',
      folder,
      release: () => {
        if (fd !== undefined) closeSync(fd);
        fd = undefined;
      },
    };
  }
  if (taken.busy) return { state: 'busy', folder, holder: await lockHolder(folder) };
  return { state: 'unsupported', folder, error: taken.error ?? 'unknown error' };
}

/**
 * The pid holding a flock of `folder`, from /proc/locks: lines such as
 * `3: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF` (the device's numbers in hex); lines
 * with `->` are processes waiting for a lock, not holding it.
 */
export function parseLockHolder(text: string, folder: FolderId): number | undefined {
  const id = `${folder.major.toString(16).padStart(2, '0')}:${folder.minor.toString(16).padStart(2, '0')}:${folder.ino}`;
  const sameInode: number[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] !== 'FLOCK' || fields[3] !== 'WRITE') continue;
    const pid = Number(fields[4]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (fields[5] === id) return pid;
    if (fields[5]?.endsWith(`:${folder.ino}`)) sameInode.push(pid);
  }
  // btrfs names a subvolume's files by the file system's device, not the one stat shows.
  return sameInode.length === 1 ? sameInode[0] : undefined;
}

async function lockHolder(folder: FolderId): Promise<number | undefined> {
  const text = await readFile('/proc/locks', 'utf8').catch(() => '');
  return parseLockHolder(text, folder);
}
