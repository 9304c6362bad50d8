/**
 * The kernel side of a mount: requests of libfuse3's low-level API (native/fuse), which name
 * files by node id, turned into the path-based FuseOps calls of src/fs/fuseops.ts.
 *
 * The node table is what libfuse's high-level API keeps in C: one node per name the kernel
 * has looked up, holding its parent and name (so renaming a directory moves everything below
 * it at once) and the kernel's lookup count (a node lives until the kernel forgets it). A
 * node whose name was unlinked or renamed over stays usable through its open file handles.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../packageroot.js';
import type { Owner, PlainStat } from '../vault/plainfs.js';
import { E, type FuseCallback, type FuseOps } from './fuseops.js';

/** Opcodes, as native/fuse/sealfs_fuse.c numbers them. */
const OP = {
  END: 0,
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  MKDIR: 6,
  UNLINK: 7,
  RMDIR: 8,
  SYMLINK: 9,
  RENAME: 10,
  LINK: 11,
  OPEN: 12,
  READ: 13,
  WRITE: 14,
  FLUSH: 15,
  RELEASE: 16,
  FSYNC: 17,
  OPENDIR: 18,
  READDIR: 19,
  RELEASEDIR: 20,
  STATFS: 21,
  CREATE: 22,
} as const;

/** setattr's to_set bits (fuse_lowlevel.h). */
const SET = { MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8 } as const;
const RENAME_NOREPLACE = 1;

/** How long the kernel may trust attributes and names before asking again (seconds). */
const ATTR_TIMEOUT_S = 1;
const ENTRY_TIMEOUT_S = 1;
const ROOT_ID = 1;
/** Writes in flight that get a slot of the write arena; more get buffers of their own. */
const WRITE_SLOTS = 16;
/** Reads up to this size get a reused buffer (the kernel asks for 128 KiB at a time). */
const POOLED_READ_BYTES = 128 * 1024;

type Session = object;
type Handler = (op: number, id: number, ...args: unknown[]) => void;

/** native/fuse/sealfs_fuse.c. Reply functions return false when the request is no longer outstanding. */
interface Binding {
  /** `arena`: whole maxWrite-sized slots that hold write data until releaseWrite. */
  mount(mountpoint: string, options: string, maxWrite: number, handler: Handler, arena: ArrayBuffer): Session;
  close(session: Session): void;
  releaseWrite(session: Session, slot: number): void;
  replyErr(id: number, errno: number): boolean;
  replyEntry(id: number, node: number, generation: number, stat: Float64Array, attrTimeout: number, entryTimeout: number): boolean;
  replyCreate(id: number, node: number, generation: number, stat: Float64Array, attrTimeout: number, entryTimeout: number, fh: number): boolean;
  replyAttr(id: number, stat: Float64Array, timeout: number): boolean;
  replyOpen(id: number, fh: number): boolean;
  replyWrite(id: number, count: number): boolean;
  replyBuf(id: number, bytes: Uint8Array, length: number): boolean;
  replyReadlink(id: number, target: string): boolean;
  replyStatfs(id: number, numbers: Float64Array): boolean;
  replyDirents(id: number, names: readonly string[], start: number, size: number): number;
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
  binding = createRequire(import.meta.url)(path) as Binding;
  return binding;
}

// ---------------------------------------------------------------------------- nodes

interface Node {
  readonly id: number;
  /** undefined for the root and for a node whose name is gone (unlinked or replaced). */
  parent: Node | undefined;
  name: string;
  lookups: number;
  /** Where a node whose name is gone last was: for log lines of its open handles. */
  lastPath?: string;
  /** Open file handles: a node whose name is gone is still reached through them. */
  handles?: Set<number>;
}

class NodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byName = new Map<string, Node>();
  private nextId = ROOT_ID + 1;
  readonly root: Node = { id: ROOT_ID, parent: undefined, name: '', lookups: 1 };

  constructor() {
    this.byId.set(ROOT_ID, this.root);
  }

  private static key(parent: Node, name: string): string {
    return `${parent.id}/${name}`;
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  /** The node's plaintext path, or undefined when its name (or an ancestor's) is gone. */
  path(node: Node): string | undefined {
    if (node === this.root) return '/';
    const parts: string[] = [];
    for (let n: Node | undefined = node; n !== this.root; n = n.parent) {
      if (!n) return undefined;
      parts.push(n.name);
    }
    return '/' + parts.reverse().join('/');
  }

  childPath(parent: Node, name: string): string | undefined {
    const base = this.path(parent);
    return base === undefined ? undefined : base === '/' ? `/${name}` : `${base}/${name}`;
  }

  /** The node for parent/name, created if needed, with one more kernel lookup. */
  remember(parent: Node, name: string): Node {
    const key = NodeTable.key(parent, name);
    let node = this.byName.get(key);
    if (!node) {
      node = { id: this.nextId++, parent, name, lookups: 0 };
      this.byName.set(key, node);
      this.byId.set(node.id, node);
    }
    node.lookups++;
    return node;
  }

  forget(id: number, lookups: number): void {
    const node = this.byId.get(id);
    if (!node || node === this.root) return;
    node.lookups -= lookups;
    if (node.lookups > 0) return;
    this.byId.delete(id);
    if (node.parent && this.byName.get(NodeTable.key(node.parent, node.name)) === node) {
      this.byName.delete(NodeTable.key(node.parent, node.name));
    }
  }

  /** parent/name no longer exists: its node (if any) keeps serving open handles only. */
  detach(parent: Node, name: string): void {
    const key = NodeTable.key(parent, name);
    const node = this.byName.get(key);
    if (!node) return;
    node.lastPath = this.path(node);
    this.byName.delete(key);
    node.parent = undefined;
  }

  move(parent: Node, name: string, newParent: Node, newName: string): void {
    this.detach(newParent, newName);
    const key = NodeTable.key(parent, name);
    const node = this.byName.get(key);
    if (!node) return;
    this.byName.delete(key);
    node.parent = newParent;
    node.name = newName;
    this.byName.set(NodeTable.key(newParent, newName), node);
  }
}

// ---------------------------------------------------------------------------- replies

type Reply =
  | { readonly kind: 'err'; readonly errno: number }
  | { readonly kind: 'entry'; readonly node: Node; readonly stat: Float64Array }
  | { readonly kind: 'create'; readonly node: Node; readonly stat: Float64Array; readonly fh: number }
  | { readonly kind: 'attr'; readonly stat: Float64Array }
  | { readonly kind: 'open'; readonly fh: number }
  | { readonly kind: 'write'; readonly count: number }
  | { readonly kind: 'buf'; readonly bytes: Buffer; readonly length: number }
  | { readonly kind: 'readlink'; readonly target: string }
  | { readonly kind: 'statfs'; readonly numbers: Float64Array }
  | { readonly kind: 'dirents'; readonly names: readonly string[]; readonly start: number; readonly size: number };

const OK: Reply = { kind: 'err', errno: 0 };
const fail = (code: number): Reply => ({ kind: 'err', errno: -code });

/** A FuseOps call as a promise of its status and results. */
type Call = (cb: FuseCallback) => void;
function call(fn: Call): Promise<[number, ...unknown[]]> {
  return new Promise((resolvePromise) => fn((code, ...results) => resolvePromise([code, ...results])));
}

function setTime(out: Float64Array, at: number, time: Date): void {
  const ms = time.getTime();
  const seconds = Math.floor(ms / 1000);
  out[at] = seconds;
  out[at + 1] = Math.round((ms - seconds * 1000) * 1e6);
}

/** The stat layout of sealfs_fuse.c, from what FuseOps' getattr answers. */
function statArray(st: PlainStat): Float64Array {
  const out = new Float64Array(15);
  out[0] = st.ino;
  out[1] = st.mode;
  out[2] = st.nlink;
  out[3] = st.uid;
  out[4] = st.gid;
  out[5] = 0; // rdev: sealfs holds no device files
  out[6] = st.size;
  out[7] = st.blksize;
  out[8] = st.blocks;
  setTime(out, 9, st.atime);
  setTime(out, 11, st.mtime);
  setTime(out, 13, st.ctime);
  return out;
}

export interface KernelOptions {
  /** Options for libfuse, e.g. ['fsname=x', 'allow_other']. */
  readonly options: readonly string[];
  readonly maxWrite: number;
  /** One line per unexpected error. */
  readonly log: (line: string) => void;
  /** The kernel ended the connection: unmounted, or aborted. */
  readonly onEnd: () => void;
}

export interface KernelSession {
  /** Stops serving and frees the session (detaching the mount if it is still there). */
  close(): void;
}

/**
 * Mounts `mountpoint` and serves its requests with `ops` on this thread's event loop until
 * the kernel ends the connection or close() is called.
 */
export function serveKernel(mountpoint: string, ops: FuseOps, options: KernelOptions): KernelSession {
  const native = loadFuseBinding();
  const nodes = new NodeTable();
  const dirs = new Map<number, readonly string[]>();
  const readBuffers: Buffer[] = [];
  let nextDir = 1;
  let closed = false;

  /** An error that serve() answers as ENOENT without a log line. */
  const gone = (what: string) => Object.assign(new Error(what), { errno: E.ENOENT });
  const node = (id: number): Node => {
    const n = nodes.get(id);
    if (!n) throw gone(`unknown node ${id}`);
    return n;
  };
  /** The path of a node that still has its name; ENOENT otherwise. */
  const pathOf = (n: Node): string => {
    const p = nodes.path(n);
    if (p === undefined) throw gone('no longer exists');
    return p;
  };
  /** For handle operations: a node without a name is still served through its handle. */
  const handlePath = (n: Node): string => nodes.path(n) ?? n.lastPath ?? '(deleted)';
  const childPath = (parent: Node, name: string): string => {
    const p = nodes.childPath(parent, name);
    if (p === undefined) throw gone('parent no longer exists');
    return p;
  };

  const serverUid = process.getuid?.();
  const serverGid = process.getgid?.();
  /** Who a new entry belongs to: the calling program, when that is not this server's user. */
  const ownerOf = (request: number): Owner | undefined => {
    const caller = native.caller(request);
    if (!caller || (caller[0] === serverUid && caller[1] === serverGid)) return undefined;
    return { uid: caller[0], gid: caller[1] };
  };

  const opened = (n: Node, fh: number): void => {
    (n.handles ??= new Set()).add(fh);
  };
  const anyHandle = (n: Node): number | undefined => n.handles?.values().next().value;

  const stat = async (path: string, fh?: number): Promise<[number, Float64Array?]> => {
    const [code, st] = await call((cb) => (fh !== undefined && fh >= 0 ? ops.fgetattr(path, fh, cb) : ops.getattr(path, cb)));
    return code < 0 ? [code] : [0, statArray(st as PlainStat)];
  };

  /**
   * A node's attributes, through `fh` when the request names a handle. fstat() reaches the
   * kernel without one: a file whose name is gone is then reached through any handle of it.
   */
  const attrs = async (n: Node, fh: number): Promise<Reply> => {
    const via = fh >= 0 ? fh : nodes.path(n) === undefined ? anyHandle(n) : undefined;
    const [code, st] = await stat(via !== undefined ? handlePath(n) : pathOf(n), via);
    return code < 0 || !st ? fail(code) : { kind: 'attr', stat: st };
  };

  /** Attributes of a new or found entry, answered as an entry (one more kernel lookup). */
  const entry = async (parent: Node, name: string, path: string): Promise<Reply> => {
    const [code, st] = await stat(path);
    if (code < 0 || !st) return fail(code);
    return { kind: 'entry', node: nodes.remember(parent, name), stat: st };
  };

  const status = async (fn: Call): Promise<Reply> => {
    const [code] = await call(fn);
    return code < 0 ? fail(code) : OK;
  };

  const handlers: Record<number, (...args: never[]) => Promise<Reply>> = {
    [OP.LOOKUP]: async (parentId: number, name: string) => {
      const parent = node(parentId);
      return entry(parent, name, childPath(parent, name));
    },

    [OP.GETATTR]: async (id: number, fh: number) => attrs(node(id), fh),

    [OP.SETATTR]: async (id: number, toSet: number, mode: number, uid: number, gid: number, size: number, atime: number, mtime: number, fh: number) => {
      const n = node(id);
      const hasHandle = fh >= 0;
      const steps: Call[] = [];
      if (toSet & SET.MODE) steps.push((cb) => ops.chmod(pathOf(n), mode, cb));
      if (toSet & (SET.UID | SET.GID)) steps.push((cb) => ops.chown(pathOf(n), uid, gid, cb));
      if (toSet & SET.SIZE) steps.push((cb) => (hasHandle ? ops.ftruncate(handlePath(n), fh, size, cb) : ops.truncate(pathOf(n), size, cb)));
      if (toSet & (SET.ATIME | SET.MTIME | SET.ATIME_NOW | SET.MTIME_NOW)) steps.push((cb) => ops.utimens(pathOf(n), atime, mtime, cb));
      for (const step of steps) {
        const [code] = await call(step);
        if (code < 0) return fail(code);
      }
      return attrs(n, fh);
    },

    [OP.READLINK]: async (id: number) => {
      const [code, target] = await call((cb) => ops.readlink(pathOf(node(id)), cb));
      return code < 0 ? fail(code) : { kind: 'readlink', target: target as string };
    },

    [OP.MKDIR]: async (parentId: number, name: string, mode: number, request: number) => {
      const parent = node(parentId);
      const path = childPath(parent, name);
      const [code] = await call((cb) => ops.mkdir(path, mode, cb, ownerOf(request)));
      return code < 0 ? fail(code) : entry(parent, name, path);
    },

    [OP.UNLINK]: async (parentId: number, name: string) => {
      const parent = node(parentId);
      const reply = await status((cb) => ops.unlink(childPath(parent, name), cb));
      if (reply === OK) nodes.detach(parent, name);
      return reply;
    },

    [OP.RMDIR]: async (parentId: number, name: string) => {
      const parent = node(parentId);
      const reply = await status((cb) => ops.rmdir(childPath(parent, name), cb));
      if (reply === OK) nodes.detach(parent, name);
      return reply;
    },

    [OP.SYMLINK]: async (target: string, parentId: number, name: string, request: number) => {
      const parent = node(parentId);
      const path = childPath(parent, name);
      const [code] = await call((cb) => ops.symlink(target, path, cb, ownerOf(request)));
      return code < 0 ? fail(code) : entry(parent, name, path);
    },

    [OP.RENAME]: async (parentId: number, name: string, newParentId: number, newName: string, flags: number) => {
      const parent = node(parentId);
      const newParent = node(newParentId);
      const from = childPath(parent, name);
      const to = childPath(newParent, newName);
      if (flags & ~RENAME_NOREPLACE) return fail(E.EINVAL); // RENAME_EXCHANGE, RENAME_WHITEOUT
      if (flags & RENAME_NOREPLACE) {
        const [code] = await call((cb) => ops.getattr(to, cb));
        if (code === 0) return fail(E.EEXIST);
      }
      const reply = await status((cb) => ops.rename(from, to, cb));
      if (reply === OK) nodes.move(parent, name, newParent, newName);
      return reply;
    },

    [OP.LINK]: async (id: number, newParentId: number, newName: string) => {
      const newParent = node(newParentId);
      const path = childPath(newParent, newName);
      const [code] = await call((cb) => ops.link(pathOf(node(id)), path, cb));
      return code < 0 ? fail(code) : entry(newParent, newName, path);
    },

    [OP.OPEN]: async (id: number, flags: number) => {
      const n = node(id);
      const [code, fh] = await call((cb) => ops.open(pathOf(n), flags, cb));
      if (code < 0) return fail(code);
      opened(n, fh as number);
      return { kind: 'open', fh: fh as number };
    },

    [OP.CREATE]: async (parentId: number, name: string, mode: number, _flags: number, request: number) => {
      const parent = node(parentId);
      const path = childPath(parent, name);
      const [code, fh] = await call((cb) => ops.create(path, mode, cb, ownerOf(request)));
      if (code < 0) return fail(code);
      const [statCode, st] = await stat(path, fh as number);
      if (statCode < 0 || !st) {
        await call((cb) => ops.release(path, fh as number, cb));
        return fail(statCode);
      }
      const created = nodes.remember(parent, name);
      opened(created, fh as number);
      return { kind: 'create', node: created, stat: st, fh: fh as number };
    },

    [OP.READ]: async (id: number, size: number, offset: number, fh: number) => {
      const bytes = size <= POOLED_READ_BYTES ? (readBuffers.pop() ?? Buffer.allocUnsafe(POOLED_READ_BYTES)) : Buffer.allocUnsafe(size);
      const [code] = await call((cb) => ops.read(handlePath(node(id)), fh, bytes, size, offset, cb));
      return code < 0 ? fail(code) : { kind: 'buf', bytes, length: code };
    },

    [OP.WRITE]: async (id: number, data: Uint8Array, offset: number, fh: number, slot: number) => {
      try {
        const [code] = await call((cb) => ops.write(handlePath(node(id)), fh, data, data.length, offset, cb));
        return code < 0 ? fail(code) : { kind: 'write', count: code };
      } finally {
        // PlainFs keeps no reference to written data once the write has resolved.
        if (slot >= 0 && !closed) native.releaseWrite(session, slot);
      }
    },

    [OP.FLUSH]: async (id: number, fh: number) => status((cb) => ops.flush(handlePath(node(id)), fh, cb)),

    [OP.RELEASE]: async (id: number, fh: number) => {
      const n = nodes.get(id);
      n?.handles?.delete(fh);
      return status((cb) => ops.release(n ? handlePath(n) : '(forgotten)', fh, cb));
    },

    [OP.FSYNC]: async (id: number, datasync: number, fh: number) => status((cb) => ops.fsync(handlePath(node(id)), datasync, fh, cb)),

    [OP.OPENDIR]: async (id: number) => {
      const [code, names] = await call((cb) => ops.readdir(pathOf(node(id)), cb));
      if (code < 0) return fail(code);
      const dh = nextDir++;
      dirs.set(dh, names as string[]);
      return { kind: 'open', fh: dh };
    },

    [OP.READDIR]: async (_id: number, size: number, offset: number, dh: number) => {
      const names = dirs.get(dh);
      return names ? { kind: 'dirents', names, start: offset, size } : fail(E.EBADF);
    },

    [OP.RELEASEDIR]: async (_id: number, dh: number) => {
      dirs.delete(dh);
      return OK;
    },

    [OP.STATFS]: async () => {
      const [code, st] = await call((cb) => ops.statfs('/', cb));
      if (code < 0) return fail(code);
      const s = st as { bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; namemax: number };
      return { kind: 'statfs', numbers: Float64Array.of(s.bsize, s.frsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.namemax) };
    },
  };

  const send = (id: number, reply: Reply): void => {
    switch (reply.kind) {
      case 'err':
        native.replyErr(id, reply.errno);
        return;
      case 'entry':
        native.replyEntry(id, reply.node.id, 0, reply.stat, ATTR_TIMEOUT_S, ENTRY_TIMEOUT_S);
        return;
      case 'create':
        if (!native.replyCreate(id, reply.node.id, 0, reply.stat, ATTR_TIMEOUT_S, ENTRY_TIMEOUT_S, reply.fh)) {
          // The caller was interrupted before it got the file: nobody will close this handle.
          void call((cb) => ops.release(handlePath(reply.node), reply.fh, cb));
        }
        return;
      case 'attr':
        native.replyAttr(id, reply.stat, ATTR_TIMEOUT_S);
        return;
      case 'open':
        native.replyOpen(id, reply.fh);
        return;
      case 'write':
        native.replyWrite(id, reply.count);
        return;
      case 'buf':
        native.replyBuf(id, reply.bytes, reply.length);
        // The reply copied the bytes to the kernel: the buffer can serve the next read.
        if (reply.bytes.length === POOLED_READ_BYTES && readBuffers.length < WRITE_SLOTS) readBuffers.push(reply.bytes);
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
    }
  };

  const serve = (op: number, id: number, args: unknown[]): void => {
    const handler = handlers[op] as ((...a: unknown[]) => Promise<Reply>) | undefined;
    if (!handler) {
      native.replyErr(id, -E.ENOSYS);
      return;
    }
    let promise: Promise<Reply>;
    try {
      // The request id comes last: operations that create entries ask whose they are.
      promise = handler(...args, id);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (reply) => send(id, reply),
      (err: unknown) => {
        const errno = (err as { errno?: unknown }).errno;
        if (typeof errno === 'number' && errno < 0) {
          send(id, fail(errno));
          return;
        }
        options.log(`request ${op}: ${(err as Error).message}`);
        send(id, fail(E.EIO));
      },
    );
  };

  const handler: Handler = (op, id, ...args) => {
    if (op === OP.END) {
      options.onEnd();
      return;
    }
    if (op === OP.FORGET) {
      nodes.forget(args[0] as number, args[1] as number);
      return;
    }
    serve(op, id, args);
  };

  const session: Session = native.mount(mountpoint, options.options.join(','), options.maxWrite, handler, new ArrayBuffer(WRITE_SLOTS * options.maxWrite));
  return {
    close: () => {
      if (closed) return;
      closed = true;
      native.close(session);
    },
  };
}
