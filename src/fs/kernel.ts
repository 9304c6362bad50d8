/**
 * The kernel side of a mount: requests of libfuse3's low-level API (native/fuse), which name
 * files by node id, each answered by one PlainFs call and one reply. Nodes are tracked in
 * src/fs/nodetable.ts, errors become errno values in src/fs/errno.ts; the opcode, stat and
 * statfs layouts come from the addon itself.
 */
import { constants as fsConstants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../packageroot.js';
import type { Owner, PlainFs, PlainStat, PlainStatfs } from '../vault/plainfs.js';
import type { MountSettings } from '../vault/settings.js';
import { errno } from '../vault/tree.js';
import { ERRNO, errnoOf } from './errno.js';
import { NodeTable, type Node } from './nodetable.js';
import { MODE_BITS, shownAccess, type PermissionRule } from './permissions.js';

/**
 * Folders with more entries than this are listed with their entries' attributes (READDIRPLUS
 * pages with node ids); smaller ones as plain names, which the kernel looks up as it needs.
 */
const PLUS_MIN_ENTRIES = 1024;

/** Writes in flight that get a slot of the write arena; more get buffers of their own. */
const WRITE_SLOTS = 16;

type OpName =
  | 'END' | 'LOOKUP' | 'FORGET' | 'GETATTR' | 'SETATTR' | 'READLINK' | 'MKDIR' | 'UNLINK' | 'RMDIR' | 'SYMLINK' | 'RENAME'
  | 'LINK' | 'OPEN' | 'READ' | 'WRITE' | 'FLUSH' | 'RELEASE' | 'FSYNC' | 'OPENDIR' | 'READDIR' | 'RELEASEDIR' | 'STATFS'
  | 'CREATE' | 'READDIRPLUS' | 'MKNOD' | 'SETXATTR' | 'GETXATTR' | 'LISTXATTR' | 'REMOVEXATTR' | 'FALLOCATE';
type StatField =
  | 'INO' | 'MODE' | 'NLINK' | 'UID' | 'GID' | 'RDEV' | 'SIZE' | 'BLKSIZE' | 'BLOCKS'
  | 'ATIME_S' | 'ATIME_NS' | 'MTIME_S' | 'MTIME_NS' | 'CTIME_S' | 'CTIME_NS';
type StatfsField = 'BSIZE' | 'FRSIZE' | 'BLOCKS' | 'BFREE' | 'BAVAIL' | 'FILES' | 'FFREE' | 'NAMEMAX';
type SetattrBit = 'MODE' | 'UID' | 'GID' | 'SIZE' | 'ATIME' | 'MTIME' | 'ATIME_NOW' | 'MTIME_NOW';

type Session = object;
type Handler = (op: number, id: number, ...args: unknown[]) => void;

/** native/fuse/sealfs_fuse.c. Reply functions return false when the request is no longer outstanding. */
interface Binding {
  /** The handler's first argument, by name. */
  readonly opcodes: Readonly<Record<OpName, number>>;
  /** Index of each field in the Float64Array of a stat reply. */
  readonly statFields: Readonly<Record<StatField, number>>;
  /** Index of each field in the Float64Array of a statfs reply. */
  readonly statfsFields: Readonly<Record<StatfsField, number>>;
  /** setattr's to_set bits (fuse_lowlevel.h). */
  readonly setattrBits: Readonly<Record<SetattrBit, number>>;
  /** rename's flags (renameat2). */
  readonly renameFlags: Readonly<Record<'NOREPLACE' | 'EXCHANGE', number>>;
  /** setxattr's flags (sys/xattr.h). */
  readonly xattrFlags: Readonly<Record<'CREATE' | 'REPLACE', number>>;
  /** fallocate's mode bits (linux/falloc.h). */
  readonly fallocateFlags: Readonly<Record<'KEEP_SIZE' | 'PUNCH_HOLE' | 'ZERO_RANGE' | 'COLLAPSE_RANGE' | 'INSERT_RANGE', number>>;
  /** fuse_pkgversion() of the libfuse3 loaded, e.g. "3.14.0". */
  readonly libfuseVersion: string;
  /** `arena`: whole maxWrite-sized slots that hold write data until releaseWrite. */
  mount(mountpoint: string, options: string, maxWrite: number, handler: Handler, arena: ArrayBuffer): Session;
  close(session: Session): void;
  releaseWrite(session: Session, slot: number): void;
  /** `errno` positive; 0 answers success for operations without data. */
  replyErr(id: number, errno: number): boolean;
  replyEntry(id: number, node: number, generation: number, stat: Float64Array, attrTimeout: number, entryTimeout: number): boolean;
  replyCreate(id: number, node: number, generation: number, stat: Float64Array, attrTimeout: number, entryTimeout: number, fh: number): boolean;
  replyAttr(id: number, stat: Float64Array, timeout: number): boolean;
  /** The size of an attribute value or name list (a getxattr or listxattr of size 0). */
  replyXattr(id: number, size: number): boolean;
  replyOpen(id: number, fh: number): boolean;
  replyWrite(id: number, count: number): boolean;
  replyBuf(id: number, bytes: Uint8Array, length: number): boolean;
  replyReadlink(id: number, target: string): boolean;
  replyStatfs(id: number, numbers: Float64Array): boolean;
  replyDirents(id: number, names: readonly string[], start: number, size: number): number;
  /** Entries with attributes (see the C comment); returns how many fitted, -1 when the request is gone. */
  replyDirentsPlus(
    id: number, names: readonly string[], first: number, nodes: Float64Array, stats: Float64Array, size: number, attrTimeout: number, entryTimeout: number,
  ): number;
  /** Bytes of an entry with attributes before its name (libfuse's fuse_add_direntry_plus). */
  readonly direntPlusHeader: number;
  /** The inode number of an entry whose attributes are not known. */
  readonly unknownIno: number;
  /** [uid, gid] of the program that made a request still outstanding. */
  caller(id: number): [number, number] | undefined;
}

export const FUSE_ADDON_PATH = 'native/fuse/build/Release/sealfs_fuse.node';

let binding: Binding | undefined;

/** The FUSE addon, loaded on first use so that every other command works without it. */
export function loadFuseBinding(): Binding {
  if (binding) return binding;
  const path = join(packageRoot(), FUSE_ADDON_PATH);
  if (!existsSync(path)) throw new Error(`${path} is not built: install libfuse3-dev, then run \`npm run build\``);
  const loaded = createRequire(import.meta.url)(path) as Partial<Binding>;
  for (const table of ['opcodes', 'statFields', 'statfsFields', 'setattrBits', 'renameFlags', 'xattrFlags', 'fallocateFlags'] as const) {
    if (typeof loaded[table] !== 'object') throw new Error(`${path} is an older build without its ${table} table: run \`npm run build\``);
  }
  binding = loaded as Binding;
  return binding;
}

// ---------------------------------------------------------------------------- attributes

const UINT32 = 2 ** 32;
const clamp32 = (n: number) => Math.max(0, Math.min(UINT32 - 1, Math.floor(n)));

/**
 * What statfs reports: block counts stay within 32 bits (what older statfs callers handle), so
 * the fragment size grows until they fit.
 */
export function statfsFigures(st: PlainStatfs): Record<StatfsField, number> {
  let frsize = st.bsize;
  let scale = 1;
  while (st.blocks / scale >= UINT32 && frsize * 2 < UINT32) {
    scale *= 2;
    frsize *= 2;
  }
  const fit = (n: number) => Math.min(UINT32 - 1, Math.floor(n / scale));
  return {
    BSIZE: clamp32(st.bsize),
    FRSIZE: clamp32(frsize),
    BLOCKS: fit(st.blocks),
    BFREE: fit(st.bfree),
    BAVAIL: fit(st.bavail),
    FILES: clamp32(st.files),
    FFREE: clamp32(st.ffree),
    NAMEMAX: st.namemax,
  };
}

/** A table's fields laid out in a Float64Array as the addon numbers them. */
function laidOut<K extends string>(fields: Readonly<Record<K, number>>, values: Readonly<Record<K, number>>): Float64Array {
  const out = new Float64Array(Object.keys(fields).length);
  for (const name of Object.keys(fields) as K[]) out[fields[name]] = values[name];
  return out;
}

const NS_PER_S = 1_000_000_000n;
/** Seconds and nanoseconds (0 to 999,999,999, also before 1970) of a time in ns since the epoch. */
const seconds = (ns: bigint) => Number((ns < 0n && ns % NS_PER_S !== 0n ? ns / NS_PER_S - 1n : ns / NS_PER_S));
const nanoseconds = (ns: bigint) => Number(((ns % NS_PER_S) + NS_PER_S) % NS_PER_S);

/** The six time fields the kernel is sent: from the numbers when the stat has them, else from its BigInts. */
function timeFields(st: PlainStat): Record<'ATIME_S' | 'ATIME_NS' | 'MTIME_S' | 'MTIME_NS' | 'CTIME_S' | 'CTIME_NS', number> {
  const p = st.timeParts;
  if (p) return { ATIME_S: p[0]!, ATIME_NS: p[1]!, MTIME_S: p[2]!, MTIME_NS: p[3]!, CTIME_S: p[4]!, CTIME_NS: p[5]! };
  return {
    ATIME_S: seconds(st.atimeNs),
    ATIME_NS: nanoseconds(st.atimeNs),
    MTIME_S: seconds(st.mtimeNs),
    MTIME_NS: nanoseconds(st.mtimeNs),
    CTIME_S: seconds(st.ctimeNs),
    CTIME_NS: nanoseconds(st.ctimeNs),
  };
}

/** A setattr time from the addon: seconds and nanoseconds, the seconds NaN for a time to leave as it is. */
const setTime = (sec: number, nsec: number): bigint | undefined => (Number.isNaN(sec) ? undefined : BigInt(sec) * NS_PER_S + BigInt(nsec));

// ---------------------------------------------------------------------------- replies

type Reply =
  | { readonly kind: 'err'; readonly errno: number }
  | { readonly kind: 'entry'; readonly node: Node; readonly stat: Float64Array }
  | { readonly kind: 'create'; readonly node: Node; readonly stat: Float64Array; readonly fh: number }
  | { readonly kind: 'attr'; readonly stat: Float64Array }
  | { readonly kind: 'xattr'; readonly size: number }
  | { readonly kind: 'open'; readonly fh: number }
  | { readonly kind: 'write'; readonly count: number }
  | { readonly kind: 'buf'; readonly bytes: Uint8Array; readonly length: number }
  | { readonly kind: 'readlink'; readonly target: string }
  | { readonly kind: 'statfs'; readonly numbers: Float64Array }
  | { readonly kind: 'dirents'; readonly names: readonly string[]; readonly start: number; readonly size: number }
  | {
      readonly kind: 'direntsplus';
      readonly names: readonly string[];
      readonly first: number;
      /** One lookup of each counted here; released again for entries that are not answered. */
      readonly nodes: Float64Array;
      readonly stats: Float64Array;
      readonly size: number;
    };

const OK: Reply = { kind: 'err', errno: 0 };
const fail = (code: number): Reply => ({ kind: 'err', errno: code });

/**
 * A value or name list answered as getxattr and listxattr ask: its size for a request of size
 * 0 (the caller is measuring), ERANGE when it does not fit `size`, else the bytes.
 */
const xattrReply = (bytes: Uint8Array, size: number): Reply =>
  size === 0 ? { kind: 'xattr', size: bytes.length } : bytes.length > size ? fail(ERRNO.ERANGE!) : { kind: 'buf', bytes, length: bytes.length };

/**
 * The kernel takes ENOSYS from an xattr or fallocate request as "never supported" and stops
 * asking until unmount: whatever failed, such a request is answered EOPNOTSUPP instead.
 */
const neverEnosys = async (run: () => Promise<Reply>): Promise<Reply> => {
  try {
    return await run();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSYS') throw errno('EOPNOTSUPP', (err as Error).message);
    throw err;
  }
};

export interface KernelOptions {
  /** Options for libfuse, e.g. ['fsname=x', 'allow_other']. */
  readonly options: readonly string[];
  readonly maxWrite: number;
  /** st_blksize reported to programs: their preferred I/O size (cp, dd, stdio buffers). */
  readonly blockSize: number;
  /** Which owner and mode the kernel sees, from the cipher folder's (src/fs/permissions.ts). */
  readonly permissions: PermissionRule;
  /** How long the kernel may trust attributes and names. */
  readonly settings: Pick<MountSettings, 'attrTimeoutMs' | 'entryTimeoutMs'>;
  /**
   * A secret name that getattr answers (as the root) and nothing lists: the server stats it
   * to tell its own mount from a later one at the same place.
   */
  readonly probeName?: string;
  /** One line per unexpected error (never file contents, never keys); must not throw. */
  readonly log: (line: string) => void;
  /** The kernel ended the connection: unmounted, or aborted. */
  readonly onEnd: () => void;
}

/** Requests that have not been answered yet; the mount waits for them before it lets go of files. */
export interface Inflight {
  readonly count: number;
  /** Resolves once no request is being served. */
  idle(): Promise<void>;
}

export interface KernelSession {
  readonly inflight: Inflight;
  /** Stops serving and frees the session (detaching the mount if it is still there). */
  close(): void;
}

/**
 * Mounts `mountpoint` and serves its requests from `fs` on this thread's event loop until
 * the kernel ends the connection or close() is called.
 */
export function serveKernel(mountpoint: string, fs: PlainFs, options: KernelOptions): KernelSession {
  const native = loadFuseBinding();
  const { log } = options;
  const SET = native.setattrBits;
  const RENAME = native.renameFlags;
  const XATTR = native.xattrFlags;
  const FALLOC = native.fallocateFlags;
  const attrTimeout = options.settings.attrTimeoutMs / 1000;
  const entryTimeout = options.settings.entryTimeoutMs / 1000;
  const nodes = new NodeTable();
  const STAT_LENGTH = Object.keys(native.statFields).length;
  /** At least what an entry with attributes takes (names are 8-byte aligned). */
  const direntPlusSize = (name: string): number => native.direntPlusHeader + ((Buffer.byteLength(name) + 7) & ~7);
  const dirs = new Map<number, readonly string[]>();
  let nextDir = 1;
  let closed = false;

  /** An error answered as ENOENT without a log line. */
  const node = (id: number): Node => {
    const n = nodes.get(id);
    if (!n) throw errno('ENOENT', `unknown node ${id}`);
    return n;
  };
  /** The path of a node that still has its name; ENOENT otherwise. */
  const pathOf = (n: Node): string => {
    const p = nodes.path(n);
    if (p === undefined) throw errno('ENOENT', `${n.lastPath ?? `node ${n.id}`} no longer exists`);
    return p;
  };
  const childPath = (parent: Node, name: string): string => {
    const p = nodes.childPath(parent, name);
    if (p === undefined) throw errno('ENOENT', `the parent of ${name} no longer exists`);
    return p;
  };

  const { mountOwner } = options.permissions;
  /** Who a new entry belongs to: the calling program, when that is not this server's user. */
  const ownerOf = (request: number): Owner | undefined => {
    const caller = native.caller(request);
    if (!caller || (caller[0] === mountOwner.uid && caller[1] === mountOwner.gid)) return undefined;
    return { uid: caller[0], gid: caller[1] };
  };

  /** Every attribute the kernel gets passes here: owner and mode only as the permission rule allows. */
  const statArray = (st: PlainStat): Float64Array => {
    const access = shownAccess(st, options.permissions);
    return laidOut(native.statFields, {
      INO: st.ino,
      MODE: access.mode,
      NLINK: st.nlink,
      UID: access.uid,
      GID: access.gid,
      RDEV: st.rdev ?? 0, // a device's number (special files, FORMAT.md §14)
      SIZE: st.size,
      BLKSIZE: options.blockSize,
      BLOCKS: st.blocks,
      ...timeFields(st),
    });
  };

  const probe = options.probeName === undefined ? undefined : `/${options.probeName}`;
  /** Attributes by path; the probe name answers as the root. */
  const statPath = (path: string): Promise<PlainStat> => fs.getattr(path === probe ? '/' : path);

  /**
   * A node's attributes, through `fh` when the request names a handle. fstat() reaches the
   * kernel without one: a file whose name is gone is then reached through any handle of it.
   */
  const attrs = async (n: Node, fh: number): Promise<Reply> => {
    const via = fh >= 0 ? fh : nodes.path(n) === undefined ? nodes.anyHandle(n) : undefined;
    const st = via !== undefined ? await fs.fgetattr(via) : await statPath(pathOf(n));
    return { kind: 'attr', stat: statArray(st) };
  };

  /**
   * The cipher inode of a file or link with more than one name: its names share one node
   * (nodetable.ts), so that what is done through one is seen through the others at once.
   */
  const linkedInode = (st: PlainStat): string | undefined =>
    st.nlink > 1 && (st.mode & fsConstants.S_IFMT) !== fsConstants.S_IFDIR ? String(st.ino) : undefined;

  /** The node for parent/name, whose attributes are `st`: for a hard-linked file, its other names' node. */
  const nodeFor = async (parent: Node, name: string, st: PlainStat): Promise<Node> => {
    const inode = linkedInode(st);
    const same = inode === undefined || nodes.named(parent, name) ? undefined : nodes.withInode(inode);
    if (same && inode !== undefined) {
      // Only while that node's own name is still this file in the cipher folder: a sync client
      // may have replaced it since, and its inode number may have gone to another file.
      const path = nodes.path(same);
      const still = path !== undefined && (await statPath(path).then((other) => other.ino === st.ino, () => false));
      if (still && nodes.withInode(inode) === same) return nodes.addLink(same, parent, name, inode);
    }
    const found = nodes.remember(parent, name);
    if (inode !== undefined) nodes.markLinked(found, inode);
    // The name just looked up is one that exists: the node is reached by it from now on.
    nodes.preferName(found, parent, name);
    return found;
  };

  /** Attributes of a new or found entry, answered as an entry (one more kernel lookup). */
  const entry = async (parent: Node, name: string, path: string): Promise<Reply> => {
    const st = await statPath(path);
    const stat = statArray(st);
    return { kind: 'entry', node: await nodeFor(parent, name, st), stat };
  };

  const handlers: { readonly [K in OpName]?: (...args: never[]) => Promise<Reply> } = {
    LOOKUP: async (parentId: number, name: string) => {
      const parent = node(parentId);
      return entry(parent, name, childPath(parent, name));
    },

    GETATTR: async (id: number, fh: number) => attrs(node(id), fh),

    SETATTR: async (
      id: number, toSet: number, mode: number, uid: number, gid: number, size: number, atimeSec: number, mtimeSec: number, fh: number, atimeNsec: number, mtimeNsec: number,
    ) => {
      const n = node(id);
      if (toSet & SET.MODE) await fs.chmod(pathOf(n), mode & MODE_BITS);
      if (toSet & (SET.UID | SET.GID)) await fs.chown(pathOf(n), uid, gid);
      if (toSet & SET.SIZE) await (fh > 0 ? fs.ftruncate(fh, size) : fs.truncate(pathOf(n), size));
      if (toSet & (SET.ATIME | SET.MTIME | SET.ATIME_NOW | SET.MTIME_NOW)) {
        const [atime, mtime] = [setTime(atimeSec, atimeNsec), setTime(mtimeSec, mtimeNsec)];
        // futimens reaches the server by node, without a handle: through one (any of the
        // node's) only when the name is gone.
        const via = fh > 0 ? fh : nodes.path(n) === undefined ? nodes.anyHandle(n) : undefined;
        await (via !== undefined ? fs.futimens(via, atime, mtime) : fs.utimens(pathOf(n), atime, mtime));
      }
      return attrs(n, fh);
    },

    READLINK: async (id: number) => ({ kind: 'readlink', target: await fs.readlink(pathOf(node(id))) }),

    MKDIR: async (parentId: number, name: string, mode: number, request: number) => {
      const parent = node(parentId);
      const path = childPath(parent, name);
      await fs.mkdir(path, mode & MODE_BITS, ownerOf(request));
      return entry(parent, name, path);
    },

    UNLINK: async (parentId: number, name: string) => {
      const parent = node(parentId);
      await fs.unlink(childPath(parent, name));
      nodes.detach(parent, name);
      return OK;
    },

    RMDIR: async (parentId: number, name: string) => {
      const parent = node(parentId);
      await fs.rmdir(childPath(parent, name));
      nodes.detach(parent, name);
      return OK;
    },

    SYMLINK: async (target: string, parentId: number, name: string, request: number) => {
      const parent = node(parentId);
      const path = childPath(parent, name);
      await fs.symlink(target, path, ownerOf(request));
      return entry(parent, name, path);
    },

    RENAME: async (parentId: number, name: string, newParentId: number, newName: string, flags: number) => {
      const parent = node(parentId);
      const newParent = node(newParentId);
      const from = childPath(parent, name);
      const to = childPath(newParent, newName);
      if (flags & ~(RENAME.NOREPLACE | RENAME.EXCHANGE)) return fail(ERRNO.EINVAL!); // RENAME_WHITEOUT
      if (flags & RENAME.EXCHANGE) {
        if (flags & RENAME.NOREPLACE) return fail(ERRNO.EINVAL!);
        await fs.exchange(from, to);
        nodes.exchange(parent, name, newParent, newName);
        return OK;
      }
      await fs.rename(from, to, (flags & RENAME.NOREPLACE) !== 0);
      nodes.move(parent, name, newParent, newName);
      return OK;
    },

    // mkfifo, mknod, bind() of a Unix socket: the kernel opens what it makes itself.
    MKNOD: async (parentId: number, name: string, mode: number, rdev: number, request: number) => {
      const parent = node(parentId);
      const path = childPath(parent, name);
      await fs.mknod(path, (mode & fsConstants.S_IFMT) | (mode & MODE_BITS), rdev, ownerOf(request));
      return entry(parent, name, path);
    },

    // The new name is the same node as the file's other names: the kernel then updates the
    // link count (and everything else) of the one inode it has for them.
    LINK: async (id: number, newParentId: number, newName: string) => {
      const source = node(id);
      const newParent = node(newParentId);
      const path = childPath(newParent, newName);
      await fs.link(pathOf(source), path);
      const st = await statPath(path);
      const stat = statArray(st);
      return { kind: 'entry', node: nodes.addLink(source, newParent, newName, String(st.ino)), stat };
    },

    OPEN: async (id: number, flags: number) => {
      const n = node(id);
      const fh = await fs.open(pathOf(n), flags);
      nodes.opened(n, fh);
      return { kind: 'open', fh };
    },

    // Opened read-write whatever the caller asked: the kernel checks the caller's access mode itself.
    CREATE: async (parentId: number, name: string, mode: number, _flags: number, request: number) => {
      const parent = node(parentId);
      const fh = await fs.create(childPath(parent, name), mode & MODE_BITS, ownerOf(request), fsConstants.O_RDWR);
      let stat: Float64Array;
      try {
        stat = statArray(await fs.fgetattr(fh));
      } catch (err) {
        await fs.release(fh);
        throw err;
      }
      const created = nodes.remember(parent, name);
      nodes.opened(created, fh);
      return { kind: 'create', node: created, stat, fh };
    },

    // The reply copies the bytes to the kernel before it returns: no buffer of our own needed.
    READ: async (_id: number, size: number, offset: number, fh: number) => {
      const bytes = await fs.read(fh, offset, size);
      return { kind: 'buf', bytes, length: Math.min(bytes.length, size) };
    },

    WRITE: async (_id: number, data: Uint8Array, offset: number, fh: number, slot: number) => {
      try {
        return { kind: 'write', count: await fs.write(fh, offset, data) };
      } finally {
        // PlainFs keeps no reference to written data once the write has resolved.
        if (slot >= 0 && !closed) native.releaseWrite(session, slot);
      }
    },

    // Writes gathered in memory reach the cipher directory at every close().
    FLUSH: async (_id: number, fh: number) => {
      await fs.flush(fh);
      return OK;
    },

    RELEASE: async (id: number, fh: number) => {
      const n = nodes.get(id);
      if (n) nodes.closed(n, fh);
      await fs.release(fh);
      return OK;
    },

    FSYNC: async (_id: number, _datasync: number, fh: number) => {
      await fs.fsync(fh);
      return OK;
    },

    OPENDIR: async (id: number) => {
      // '.' and '..' as every POSIX directory lists them (they can never be plaintext names).
      const names = ['.', '..', ...(await fs.readdir(pathOf(node(id))))];
      const dh = nextDir++;
      dirs.set(dh, names);
      return { kind: 'open', fh: dh };
    },

    READDIR: async (_id: number, size: number, offset: number, dh: number) => {
      const names = dirs.get(dh);
      return names ? { kind: 'dirents', names, start: offset, size } : fail(ERRNO.EBADF!);
    },

    READDIRPLUS: async (id: number, size: number, offset: number, dh: number) => {
      const names = dirs.get(dh);
      if (!names) return fail(ERRNO.EBADF!);
      const dir = node(id);
      // The entries that fit, each with its attributes: no lookup per name afterwards.
      const batch: string[] = [];
      for (let i = offset, used = 0; i < names.length; i++) {
        used += direntPlusSize(names[i]!);
        if (used > size) break;
        batch.push(names[i]!);
      }
      const stats = new Float64Array(batch.length * STAT_LENGTH);
      // Only a large folder's pages carry attributes: for a small one the kernel's own cache of
      // what it looked up serves better (bench:mount's md5 of 1,000 files took 40% longer with
      // attributes in every page).
      const named = names.length > PLUS_MIN_ENTRIES ? batch.filter((name) => name !== '.' && name !== '..') : [];
      const found = await fs.getattrMany(pathOf(dir), named).catch(() => named.map(() => undefined));
      const statOf = new Map(named.map((name, k) => [name, found[k]]));
      // A file with several names is left to a lookup, which finds the node its names share.
      for (const [name, st] of statOf) if (st && linkedInode(st) !== undefined) statOf.set(name, undefined);
      batch.forEach((name, j) => {
        const st = statOf.get(name);
        if (st) stats.set(statArray(st), j * STAT_LENGTH);
        else {
          stats[j * STAT_LENGTH + native.statFields.INO] = native.unknownIno;
          stats[j * STAT_LENGTH + native.statFields.MODE] = name === '.' || name === '..' ? fsConstants.S_IFDIR : 0;
        }
      });
      // Lookups are counted last, once nothing can fail before the reply (which forgets the
      // ones it could not send).
      const ids = Float64Array.from(batch, (name) => (statOf.get(name) ? nodes.remember(dir, name).id : 0));
      return { kind: 'direntsplus', names: batch, first: offset, nodes: ids, stats, size };
    },

    RELEASEDIR: async (_id: number, dh: number) => {
      dirs.delete(dh);
      return OK;
    },

    STATFS: async () => ({ kind: 'statfs', numbers: laidOut(native.statfsFields, statfsFigures(await fs.statfs())) }),

    // Extended attributes: names and values are bytes (Buffers from the addon).
    SETXATTR: async (id: number, name: Buffer, value: Buffer, flags: number) =>
      neverEnosys(async () => {
        if (flags & ~(XATTR.CREATE | XATTR.REPLACE)) return fail(ERRNO.EINVAL!);
        await fs.setxattr(pathOf(node(id)), name, value, flags & XATTR.CREATE ? 'create' : flags & XATTR.REPLACE ? 'replace' : 'set');
        return OK;
      }),

    GETXATTR: async (id: number, name: Buffer, size: number) => neverEnosys(async () => xattrReply(await fs.getxattr(pathOf(node(id)), name), size)),

    LISTXATTR: async (id: number, size: number) =>
      neverEnosys(async () => {
        const names = await fs.listxattr(pathOf(node(id)));
        return xattrReply(Buffer.concat(names.flatMap((name) => [name, Buffer.alloc(1)])), size);
      }),

    REMOVEXATTR: async (id: number, name: Buffer) =>
      neverEnosys(async () => {
        await fs.removexattr(pathOf(node(id)), name);
        return OK;
      }),

    // PUNCH_HOLE (which Linux requires with KEEP_SIZE) and ZERO_RANGE make the range read as
    // zeros; COLLAPSE_RANGE, INSERT_RANGE and any other mode are not supported.
    FALLOCATE: async (_id: number, mode: number, offset: number, length: number, fh: number) =>
      neverEnosys(async () => {
        if (mode & ~(FALLOC.KEEP_SIZE | FALLOC.PUNCH_HOLE | FALLOC.ZERO_RANGE)) return fail(ERRNO.EOPNOTSUPP!);
        const punch = (mode & FALLOC.PUNCH_HOLE) !== 0;
        if (punch && (!(mode & FALLOC.KEEP_SIZE) || mode & FALLOC.ZERO_RANGE)) return fail(ERRNO.EINVAL!);
        await fs.fallocate(fh, offset, length, { zero: punch || (mode & FALLOC.ZERO_RANGE) !== 0, keepSize: (mode & FALLOC.KEEP_SIZE) !== 0 });
        return OK;
      }),
  };

  /** For log lines: the request and the path it is about. */
  const describe = (name: string, args: readonly unknown[]): string => {
    const at = typeof args[0] === 'number' ? 0 : 1; // symlink's target comes before its parent
    const n = nodes.get(args[at] as number);
    const child = args[at + 1];
    const what = !n ? `node ${String(args[at])}` : typeof child === 'string' ? (nodes.childPath(n, child) ?? child) : nodes.describe(n);
    return `${name.toLowerCase()} ${what}`;
  };

  let pending = 0;
  let waiters: (() => void)[] = [];

  const send = (id: number, reply: Reply): void => {
    switch (reply.kind) {
      case 'err':
        native.replyErr(id, reply.errno);
        return;
      case 'entry':
        native.replyEntry(id, reply.node.id, 0, reply.stat, attrTimeout, entryTimeout);
        return;
      case 'create':
        if (!native.replyCreate(id, reply.node.id, 0, reply.stat, attrTimeout, entryTimeout, reply.fh)) {
          // The caller was interrupted before it got the file: nobody will close this handle.
          nodes.closed(reply.node, reply.fh);
          fs.release(reply.fh).catch((err: unknown) => log(`release ${nodes.describe(reply.node)}: ${(err as Error).message}`));
        }
        return;
      case 'attr':
        native.replyAttr(id, reply.stat, attrTimeout);
        return;
      case 'xattr':
        native.replyXattr(id, reply.size);
        return;
      case 'open':
        native.replyOpen(id, reply.fh);
        return;
      case 'write':
        native.replyWrite(id, reply.count);
        return;
      case 'buf':
        native.replyBuf(id, reply.bytes, reply.length);
        return;
      case 'readlink':
        native.replyReadlink(id, reply.target);
        return;
      case 'statfs':
        native.replyStatfs(id, reply.numbers);
        return;
      case 'dirents':
        native.replyDirents(id, reply.names, reply.start, reply.size);
        return;
      case 'direntsplus': {
        let fitted = 0;
        try {
          fitted = Math.max(0, native.replyDirentsPlus(id, reply.names, reply.first, reply.nodes, reply.stats, reply.size, attrTimeout, entryTimeout));
        } finally {
          for (let j = fitted; j < reply.nodes.length; j++) if (reply.nodes[j]) nodes.forget(reply.nodes[j]!, 1);
        }
        return;
      }
    }
  };

  /** Exactly one answer per request, whatever happens, and never an exception out to the addon. */
  const answer = (id: number, reply: Reply, name: string): void => {
    try {
      send(id, reply);
    } catch (err) {
      log(`${name.toLowerCase()}: answering the kernel failed: ${(err as Error).message}`);
    }
    if (--pending === 0 && waiters.length) {
      const ready = waiters;
      waiters = [];
      for (const resolve of ready) resolve();
    }
  };

  type Run = (...args: unknown[]) => Promise<Reply>;
  const byOpcode: { readonly name: OpName; readonly run: Run }[] = [];
  for (const [name, run] of Object.entries(handlers) as [OpName, Run][]) {
    const code = native.opcodes[name];
    if (typeof code !== 'number') throw new Error(`the FUSE addon has no opcode ${name}: run \`npm run build\``);
    byOpcode[code] = { name, run };
  }

  const serve = (op: number, id: number, args: unknown[]): void => {
    const handler = byOpcode[op];
    if (!handler) {
      native.replyErr(id, ERRNO.ENOSYS!);
      return;
    }
    pending++;
    let promise: Promise<Reply>;
    try {
      // The request id comes last: operations that create entries ask whose they are.
      promise = handler.run(...args, id);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (reply) => answer(id, reply, handler.name),
      (err: unknown) => answer(id, fail(errnoOf(err, describe(handler.name, args), log)), handler.name),
    );
  };

  const END = native.opcodes.END;
  const FORGET = native.opcodes.FORGET;
  const handler: Handler = (op, id, ...args) => {
    if (op === END) {
      options.onEnd();
      return;
    }
    if (op === FORGET) {
      nodes.forget(args[0] as number, args[1] as number);
      return;
    }
    serve(op, id, args);
  };

  const session: Session = native.mount(mountpoint, options.options.join(','), options.maxWrite, handler, new ArrayBuffer(WRITE_SLOTS * options.maxWrite));
  return {
    inflight: {
      get count() {
        return pending;
      },
      idle: () => (pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
    },
    close: () => {
      if (closed) return;
      closed = true;
      native.close(session);
    },
  };
}
