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
  /** Tests only: resolve by walking components, as on kernels without openat2. */
  fsatForceWalk(on: boolean): void;
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
} as const;
export type FsatOp = (typeof FsatOp)[keyof typeof FsatOp];


let addon: FsatAddon | null | undefined;

/** The addon's confined calls, or undefined when the addon is not built (or predates them). */
export function fsatAddon(): FsatAddon | undefined {
  if (addon === undefined) {
    try {
      const loaded = loadAddon() as unknown as Partial<FsatAddon>;
      addon = typeof loaded.fsat === 'function' ? (loaded as FsatAddon) : null;
    } catch {
      addon = null;
    }
  }
  return addon ?? undefined;
}
