import { loadAddon } from '../crypto/backends/native.js';

/**
 * The native addon's confined calls on the cipher folder (native/sealfs_fsat.c): every path
 * is taken beneath a descriptor of the vault root and no link is ever followed.
 */
export interface FsatAddon {
  /** Opens the vault root (a folder) once; the descriptor is what every call is relative to. */
  fsatOpenRoot(path: string): number;
  /**
   * One call. `path` (and `path2` for rename and link) are full paths whose first `skip`
   * bytes are the root's own path; for symlink, `path2` is the link's target, stored as is.
   */
  fsat(op: FsatOp, root: number, skip: number, path: string, path2: string | null, a: number, b: number, c: number, d: number, data: Buffer | null): unknown;
  fsatAsync(op: FsatOp, root: number, skip: number, path: string, path2: string | null, a: number, b: number, c: number, d: number, data: Buffer | null): Promise<unknown>;
  /**
   * Takes the vault's lock: flock(LOCK_EX | LOCK_NB) of the folder at `path` (following links:
   * the user's own choice). fd >= 0 holds it until closed; busy: another holds it; error:
   * flock's error code where the file system has no locks. major, minor, ino: the folder's,
   * as /proc/locks names a locked file.
   */
  fsatLockFolder(path: string): { fd: number; busy: boolean; error?: string; major: number; minor: number; ino: number };
  /** Tests only: resolve by walking components, as on kernels without openat2. */
  fsatForceWalk(on: boolean): void;
  /** The wall clock (CLOCK_REALTIME) in ns since the epoch. */
  fsatNow(): bigint;
}

/** The calls, numbered as in sealfs_fsat.c. */
export const FsatOp = {
  lstat: 0,
  readdir: 1,
  open: 2,
  mkdir: 3,
  rmdir: 4,
  unlink: 5,
  rename: 6,
  link: 7,
  symlink: 8,
  readlink: 9,
  chmod: 10,
  lchown: 11,
  lutimes: 12,
  writeFile: 13,
  statfs: 14,
  readFile: 15,
  lstatMany: 16,
  maxSize: 17,
  /** fallocate(FALLOC_FL_KEEP_SIZE) of an open cipher file's descriptor (CipherIo.reserve). */
  reserve: 18,
  /** a: a cipher file's descriptor; data: atime sec, nsec, mtime sec, nsec as int64 LE. */
  futimens: 19,
  getxattr: 20,
  listxattr: 21,
  setxattr: 22,
  removexattr: 23,
} as const;
export type FsatOp = (typeof FsatOp)[keyof typeof FsatOp];


let addon: FsatAddon | undefined;
let missing: string | undefined;

/** The addon's confined calls, or undefined when the addon is not built (or predates them). */
export function fsatAddon(): FsatAddon | undefined {
  if (addon === undefined && missing === undefined) {
    try {
      const loaded = loadAddon() as unknown as Partial<FsatAddon>;
      if (typeof loaded.fsat === 'function' && typeof loaded.fsatNow === 'function') addon = loaded as FsatAddon;
      else missing = 'the native addon is an older build without the confined calls: run "npm run build:native"';
    } catch (err) {
      missing = (err as Error).message;
    }
  }
  return addon;
}

/**
 * The confined calls; without them no cipher folder is opened at all, as Node's own calls
 * would follow links the provider planted.
 */
export function requireFsatAddon(): FsatAddon {
  const found = fsatAddon();
  if (!found) throw new Error(`${missing}; sealfs opens no cipher folder without its confined calls`);
  return found;
}
