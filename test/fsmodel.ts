/**
 * The randomized operation model (not a test file itself): a seeded, reproducible sequence of
 * file-system operations applied to a subject tree and to a plain folder side by side,
 * compared as it goes: the tree (names and types), every file's size and content, symlink
 * targets, and the result of every operation (success or the same errno). Operations:
 * create, write at random offsets (also past the end, across chunk boundaries), truncate and
 * ftruncate, rename (replacing targets, and the error cases), unlink (also of open files),
 * link, symlink, mkdir, rmdir, and several handles open at once on both sides, kept open
 * across steps, reading and writing.
 *
 * Two subjects use it: a real sealfs mount (test/mount-random.test.ts, through the kernel)
 * and PlainFs in this process (test/plainfs-random.test.ts, thousands of steps, no FUSE).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, readlink, rename, rmdir, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PlainFs } from '../src/vault/plainfs.js';

// ---- the trees ------------------------------------------------------------------------

export type Kind = 'file' | 'dir' | 'symlink' | 'other';

/** An open file, read and written by position. */
export interface ModelHandle {
  write(data: Buffer, at: number): Promise<unknown>;
  truncate(size: number): Promise<void>;
  /** The bytes read (fewer than `length` at the end of the file). */
  read(length: number, at: number): Promise<Buffer>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** A file tree addressed by '/'-separated paths relative to its root. Failures are errno errors. */
export interface ModelTree {
  list(dir: string): Promise<{ name: string; kind: Kind }[]>;
  /** A new file holding `data`; EEXIST if the name exists (even as a dangling symlink). */
  create(path: string, data: Buffer): Promise<void>;
  /** Opens an existing file for reading and writing. */
  open(path: string): Promise<ModelHandle>;
  truncate(path: string, size: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  link(existing: string, path: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  readlink(path: string): Promise<string>;
  readFile(path: string): Promise<Buffer>;
  /** Of the name itself (not following a symlink). */
  stat(path: string): Promise<{ size: number; nlink: number; ino: number }>;
}

/** A folder on disk (the reference; also a mount point seen through the kernel). */
export function folderTree(root: string): ModelTree {
  const at = (path: string) => join(root, path);
  return {
    async list(dir) {
      return (await readdir(at(dir), { withFileTypes: true })).map((e) => ({
        name: e.name,
        kind: e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'symlink' : e.isFile() ? 'file' : 'other',
      }));
    },
    create: (path, data) => writeFile(at(path), data, { flag: 'wx' }),
    async open(path) {
      const fh = await open(at(path), 'r+');
      return {
        write: (data, position) => fh.write(data, 0, data.length, position),
        truncate: (size) => fh.truncate(size),
        async read(length, position) {
          const buf = Buffer.alloc(length);
          const { bytesRead } = await fh.read(buf, 0, length, position);
          return buf.subarray(0, bytesRead);
        },
        size: async () => (await fh.stat()).size,
        close: () => fh.close(),
      };
    },
    truncate: (path, size) => truncate(at(path), size),
    rename: (from, to) => rename(at(from), at(to)),
    unlink: (path) => unlink(at(path)),
    link: (existing, path) => link(at(existing), at(path)),
    symlink: (target, path) => symlink(target, at(path)),
    mkdir: async (path) => void (await mkdir(at(path))),
    rmdir: (path) => rmdir(at(path)),
    readlink: (path) => readlink(at(path)),
    readFile: (path) => readFile(at(path)),
    stat: (path) => lstat(at(path)),
  };
}

/**
 * PlainFs in this process, below its folder `root` ('/…'), called as the kernel calls it: the
 * one check the kernel's VFS makes before a rename reaches any file system (a target that is
 * an ancestor of the source: ENOTEMPTY) is made here, as the kernel would.
 */
export function plainFsTree(fs: PlainFs, root: string): ModelTree {
  const at = (path: string) => (path ? `${root}/${path}` : root);
  const kindOf = (mode: number): Kind => {
    const type = mode & constants.S_IFMT;
    return type === constants.S_IFDIR ? 'dir' : type === constants.S_IFLNK ? 'symlink' : type === constants.S_IFREG ? 'file' : 'other';
  };
  const handle = (fh: number): ModelHandle => ({
    write: (data, position) => fs.write(fh, position, data),
    truncate: (size) => fs.ftruncate(fh, size),
    read: async (length, position) => Buffer.from(await fs.read(fh, position, length)),
    size: async () => (await fs.fgetattr(fh)).size,
    close: () => fs.release(fh),
  });
  return {
    async list(dir) {
      const names = await fs.readdir(at(dir));
      return Promise.all(names.map(async (name) => ({ name, kind: kindOf((await fs.getattr(at(dir ? `${dir}/${name}` : name))).mode) })));
    },
    async create(path, data) {
      const fh = await fs.create(at(path), 0o644);
      try {
        await fs.write(fh, 0, data);
      } finally {
        await fs.release(fh);
      }
    },
    open: async (path) => handle(await fs.open(at(path), constants.O_RDWR)),
    truncate: (path, size) => fs.truncate(at(path), size),
    async rename(from, to) {
      if (from.startsWith(`${to}/`)) throw Object.assign(new Error(`rename ${from} → ${to}: the target is an ancestor of the source`), { code: 'ENOTEMPTY' });
      await fs.rename(at(from), at(to));
    },
    unlink: (path) => fs.unlink(at(path)),
    link: (existing, path) => fs.link(at(existing), at(path)),
    symlink: (target, path) => fs.symlink(target, at(path)),
    mkdir: (path) => fs.mkdir(at(path), 0o755),
    rmdir: (path) => fs.rmdir(at(path)),
    readlink: (path) => fs.readlink(at(path)),
    async readFile(path) {
      const fh = await fs.open(at(path), constants.O_RDONLY);
      try {
        const size = (await fs.fgetattr(fh)).size;
        return Buffer.from(await fs.read(fh, 0, size));
      } finally {
        await fs.release(fh);
      }
    },
    stat: (path) => fs.getattr(at(path)),
  };
}

/** Every entry of a tree (not following symlinks), sorted by path. */
export async function walkTree(tree: ModelTree): Promise<{ path: string; kind: Kind }[]> {
  const out: { path: string; kind: Kind }[] = [];
  const visit = async (dir: string) => {
    for (const entry of await tree.list(dir)) {
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      out.push({ path, kind: entry.kind });
      if (entry.kind === 'dir') await visit(path);
    }
  };
  await visit('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

// ---- randomness ------------------------------------------------------------------------

/** mulberry32: small, fast, and the same on every machine. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick<T>(items: readonly T[]): T {
      return items[Math.floor(next() * items.length)]!;
    },
    chance: (p: number) => next() < p,
  };
}

/** Deterministic pseudo-random bytes (AES-256-CTR keystream of the seed and a counter). */
function bytes(seed: number, counter: number, length: number): Buffer {
  const key = createHash('sha256').update(`sealfs-random ${seed}`).digest();
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(counter >>> 0, 12);
  return createCipheriv('aes-256-ctr', key, iv).update(Buffer.alloc(length));
}

// ---- the model -------------------------------------------------------------------------

/**
 * The sizes of files, writes and reads, scaled to the vault's chunk size so that writes
 * cross chunk boundaries and files span a few chunks (a 64 KiB chunk gives the sizes the
 * mount suite has always used).
 */
export interface ModelSizes {
  readonly chunk: number;
  /** Files stay below this size, so that comparing everything stays cheap. */
  readonly maxSize: number;
  readonly createMax: number;
  readonly pastEndMax: number;
  readonly mediumWrite: number;
  readonly largeWrite: number;
  readonly readMax: number;
}

export function sizesFor(chunk: number): ModelSizes {
  const k = chunk / (64 * 1024);
  return {
    chunk,
    maxSize: 5 * chunk,
    createMax: Math.round(200_000 * k),
    pastEndMax: Math.round(100_000 * k),
    mediumWrite: Math.max(10, Math.round(5000 * k)),
    largeWrite: Math.round(150_000 * k),
    readMax: Math.round(200_000 * k),
  };
}

export interface ModelOptions {
  readonly seed: number;
  readonly steps: number;
  readonly sizes: ModelSizes;
  readonly subject: ModelTree;
  /** The plain folder: what the subject must behave like. */
  readonly reference: ModelTree;
  /**
   * The kernel's caches in front of the subject (a FUSE mount): a hard link is a separate
   * kernel inode whose cached attributes (and so size) may lag by the attribute timeout
   * after a change made through another name, so such names are compared once this many ms
   * passed (and everything at the end); and a handle of a file with other names may read
   * pages the kernel cached through that handle's name (the known limitation tested in
   * mount-faults), so those reads are not compared. 0: no caches, everything compared always.
   */
  readonly attrSettleMs: number;
  /** File contents are compared after every this many steps (and at the end); 1: every step. */
  readonly contentsEvery: number;
  /** How many of the last operations a failure shows. */
  readonly logLines: number;
}

export interface ModelRun {
  readonly operations: number;
  readonly seconds: number;
  /** Operations by kind ('create', 'write', 'handle', …). */
  readonly kinds: Map<string, number>;
}

type Outcome = { ok: true; value?: string } | { ok: false; code: string };

async function outcome(work: () => Promise<unknown>, isRename: boolean): Promise<Outcome> {
  try {
    const value = await work();
    return { ok: true, ...(typeof value === 'string' ? { value } : {}) };
  } catch (err) {
    let code = (err as NodeJS.ErrnoException).code ?? String(err);
    // POSIX lets rename of a folder over a non-empty one fail with either.
    if (isRename && (code === 'EEXIST' || code === 'ENOTEMPTY')) code = 'ENOTEMPTY/EEXIST';
    return { ok: false, code };
  }
}

interface HandlePair {
  id: number;
  /** Where it was opened (names change later; the handles stay valid). */
  openedAs: string;
  subject: ModelHandle;
  reference: ModelHandle;
  /** Inode of the reference side: which reference names it writes through. */
  ino: number;
}

interface Snapshot {
  entries: { path: string; kind: Kind }[];
}

const NAMES = ['a', 'b', 'c', 'd', 'report.txt', 'ünï çødé', 'x y'];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs the model; throws (naming the seed, the step and the last operations) at the first difference. */
export async function runModel(o: ModelOptions): Promise<ModelRun> {
  const { seed, sizes } = o;
  const { chunk: CHUNK, maxSize: MAX_SIZE } = sizes;
  const trees = { subject: o.subject, reference: o.reference };
  const rnd = prng(seed);
  const log: string[] = [];
  const handles: HandlePair[] = [];
  let handleIds = 0;
  let counter = 0;
  /** Reference inode → time until which other names of it may show stale attributes. */
  const settling = new Map<number, number>();
  /** Reference inodes that had more than one name at some point (only those can lag). */
  const linked = new Set<number>();
  const cached = o.attrSettleMs > 0;
  const started = Date.now();

  const fail = (step: number, what: string): never => {
    throw new Error(`seed ${seed}, step ${step}: ${what}\nlast operations:\n${log.slice(-o.logLines).join('\n')}`);
  };

  const snapshot = async (): Promise<Snapshot> => ({ entries: await walkTree(o.reference) });

  /** A change of content, size or links of an inode: its other names may lag for a while. */
  function changed(ino: number | undefined): void {
    if (cached && ino !== undefined && linked.has(ino)) settling.set(ino, Date.now() + o.attrSettleMs);
  }
  const isSettling = (ino: number, now: number) => (settling.get(ino) ?? 0) > now;
  const inoOf = async (path: string) => (await o.reference.stat(path).catch(() => undefined))?.ino;

  async function compare(step: number, full = false): Promise<void> {
    const referenceTree = await walkTree(o.reference);
    const subjectTree = await walkTree(o.subject);
    const show = (t: { path: string; kind: string }[]) => t.map((e) => `${e.kind[0]} ${e.path}`).join('\n');
    if (show(referenceTree) !== show(subjectTree)) fail(step, `trees differ\nplain:\n${show(referenceTree)}\nsubject:\n${show(subjectTree)}`);
    const now = Date.now();
    const contents = full || step % o.contentsEvery === 0;
    for (const e of referenceTree) {
      if (e.kind === 'symlink') {
        const [pt, mt] = await Promise.all([o.reference.readlink(e.path), o.subject.readlink(e.path)]);
        if (pt !== mt) fail(step, `symlink ${e.path}: ${JSON.stringify(mt)} instead of ${JSON.stringify(pt)}`);
        continue;
      }
      if (e.kind !== 'file') continue;
      const pst = await o.reference.stat(e.path);
      if (!full && isSettling(pst.ino, now)) continue;
      const mst = await o.subject.stat(e.path);
      if (mst.size !== pst.size) fail(step, `size of ${e.path}: ${mst.size} instead of ${pst.size}`);
      if (contents) {
        const [pdata, mdata] = await Promise.all([o.reference.readFile(e.path), o.subject.readFile(e.path)]);
        if (mdata.length !== pdata.length || !mdata.equals(pdata)) {
          let at = 0;
          while (at < Math.min(mdata.length, pdata.length) && mdata[at] === pdata[at]) at++;
          fail(step, `content of ${e.path} (${pdata.length} bytes) differs from byte ${at} (subject read ${mdata.length} bytes)`);
        }
      }
      if (mst.nlink !== pst.nlink && (full || !cached)) fail(step, `nlink of ${e.path}: ${mst.nlink} instead of ${pst.nlink}`);
    }
    // Open handles read the same on both sides.
    for (const hp of handles) {
      const [ps, ms] = await Promise.all([hp.reference.size(), hp.subject.size()]);
      if (ps !== ms && (full || !cached || !linked.has(hp.ino))) fail(step, `handle ${hp.id} (${hp.openedAs}): size ${ms} instead of ${ps}`);
    }
  }

  const dirsOf = (s: Snapshot) => ['', ...s.entries.filter((e) => e.kind === 'dir').map((e) => e.path)];
  const filesOf = (s: Snapshot) => s.entries.filter((e) => e.kind === 'file').map((e) => e.path);
  const childPath = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);
  const depth = (path: string) => (path ? path.split('/').length : 0);

  /** Runs one operation on both sides; both must agree on the outcome. */
  async function both(step: number, what: string, work: (tree: ModelTree, side: 'subject' | 'reference') => Promise<unknown>): Promise<Outcome> {
    log.push(`${step}: ${what}`);
    const isRename = what.startsWith('rename');
    const reference = await outcome(() => work(trees.reference, 'reference'), isRename);
    const subject = await outcome(() => work(trees.subject, 'subject'), isRename);
    const text = (r: Outcome) => (r.ok ? `ok${r.value !== undefined ? ` ${r.value}` : ''}` : r.code);
    if (text(reference) !== text(subject)) fail(step, `${what}: the subject gave ${text(subject)}, the plain folder ${text(reference)}`);
    log[log.length - 1] += ` → ${text(reference)}`;
    return reference;
  }

  const offsetFor = (size: number) => {
    const kind = rnd.int(0, 5);
    const boundary = rnd.int(0, Math.floor(MAX_SIZE / CHUNK)) * CHUNK;
    const at = kind === 0 ? 0 : kind === 1 ? size : kind === 2 ? Math.max(0, boundary + rnd.int(-20, 20)) : kind === 3 ? size + rnd.int(1, sizes.pastEndMax) : rnd.int(0, Math.max(0, size));
    return Math.min(at, MAX_SIZE - 1);
  };
  const lengthFor = (at: number) => {
    const kind = rnd.int(0, 4);
    const n = kind === 0 ? rnd.int(0, 10) : kind === 1 ? rnd.int(1, sizes.mediumWrite) : kind === 2 ? CHUNK + rnd.int(-30, 30) : rnd.int(1, sizes.largeWrite);
    return Math.max(0, Math.min(n, MAX_SIZE - at));
  };

  for (let step = 1; step <= o.steps; step++) {
    const s = await snapshot();
    const files = filesOf(s);
    const dirs = dirsOf(s);
    const op = rnd.next();
    if (op < 0.1 || files.length === 0) {
      // create a file with content
      const dir = rnd.pick(dirs);
      const path = childPath(dir, rnd.pick(NAMES));
      const data = bytes(seed, counter++, rnd.int(0, sizes.createMax));
      const before = await inoOf(path);
      await both(step, `create ${path} (${data.length} bytes)`, (tree) => tree.create(path, data));
      changed(before);
    } else if (op < 0.38) {
      // write through a handle, or through a path (open, write, close)
      const viaHandle = handles.length > 0 && rnd.chance(0.5);
      if (viaHandle) {
        const hp = rnd.pick(handles);
        const size = await hp.reference.size();
        const at = offsetFor(size);
        const data = bytes(seed, counter++, lengthFor(at));
        await both(step, `handle ${hp.id} (${hp.openedAs}) write ${data.length} at ${at}`, (_tree, side) => hp[side].write(data, at));
        changed(hp.ino);
      } else {
        const path = rnd.pick(files);
        const size = (await o.reference.stat(path)).size;
        const at = offsetFor(size);
        const data = bytes(seed, counter++, lengthFor(at));
        await both(step, `write ${path} ${data.length} at ${at}`, async (tree) => {
          const fh = await tree.open(path);
          try {
            await fh.write(data, at);
          } finally {
            await fh.close();
          }
        });
        changed(await inoOf(path));
      }
    } else if (op < 0.46) {
      // truncate by path, or ftruncate through a handle
      const size = rnd.chance(0.2) ? 0 : rnd.int(0, MAX_SIZE - 1);
      if (handles.length > 0 && rnd.chance(0.5)) {
        const hp = rnd.pick(handles);
        await both(step, `handle ${hp.id} (${hp.openedAs}) ftruncate ${size}`, (_tree, side) => hp[side].truncate(size));
        changed(hp.ino);
      } else {
        const path = rnd.pick(files);
        await both(step, `truncate ${path} ${size}`, (tree) => tree.truncate(path, size));
        changed(await inoOf(path));
      }
    } else if (op < 0.56) {
      // rename a file or a folder, somewhere, maybe over something
      const candidates = s.entries.map((e) => e.path);
      const from = rnd.pick(candidates);
      const to = childPath(rnd.pick(dirs), rnd.pick(NAMES));
      const replaced = await inoOf(to);
      await both(step, `rename ${from} → ${to}`, (tree) => tree.rename(from, to));
      changed(replaced);
    } else if (op < 0.63) {
      const path = rnd.pick(files);
      const ino = await inoOf(path);
      await both(step, `unlink ${path}`, (tree) => tree.unlink(path));
      changed(ino);
    } else if (op < 0.69) {
      const from = rnd.pick(files);
      const to = childPath(rnd.pick(dirs), rnd.pick(NAMES));
      const ino = await inoOf(from);
      const done = await both(step, `link ${from} → ${to}`, (tree) => tree.link(from, to));
      if (done.ok && ino !== undefined) linked.add(ino);
      changed(ino);
    } else if (op < 0.72) {
      const path = childPath(rnd.pick(dirs), rnd.pick(NAMES));
      const target = rnd.pick(['a', '../b', 'report.txt', '/etc/hostname', 'no/such', 'ünï çødé/x']);
      await both(step, `symlink ${path} → ${target}`, (tree) => tree.symlink(target, path));
    } else if (op < 0.79) {
      const dir = rnd.pick(dirs);
      if (depth(dir) >= 3) continue;
      const path = childPath(dir, rnd.pick(NAMES));
      await both(step, `mkdir ${path}`, (tree) => tree.mkdir(path));
    } else if (op < 0.83) {
      const dir = rnd.pick(dirs.filter((d) => d !== ''));
      if (dir === undefined) continue;
      await both(step, `rmdir ${dir}`, (tree) => tree.rmdir(dir));
    } else if (op < 0.9) {
      // open another handle pair (at most 4 at once), or close one
      if (handles.length < 4 && (handles.length === 0 || rnd.chance(0.6))) {
        const path = rnd.pick(files);
        const pair: Partial<HandlePair> = { id: ++handleIds, openedAs: path };
        await both(step, `open handle ${pair.id} on ${path}`, async (tree, side) => {
          pair[side] = await tree.open(path);
        });
        if (!pair.reference || !pair.subject) continue;
        pair.ino = (await o.reference.stat(path)).ino;
        handles.push(pair as HandlePair);
      } else {
        const hp = handles.splice(rnd.int(0, handles.length - 1), 1)[0]!;
        await both(step, `close handle ${hp.id} (${hp.openedAs})`, (_tree, side) => hp[side].close());
      }
    } else {
      // read through a handle
      if (handles.length === 0) continue;
      const hp = rnd.pick(handles);
      if (cached && linked.has(hp.ino)) continue;
      const size = await hp.reference.size();
      const at = rnd.int(0, size + 10);
      const length = rnd.int(0, sizes.readMax);
      await both(step, `handle ${hp.id} (${hp.openedAs}) read ${length} at ${at}`, async (_tree, side) => {
        const got = await hp[side].read(length, at);
        return `${got.length} bytes, sha256 ${createHash('sha256').update(got).digest('hex').slice(0, 16)}`;
      });
    }
    await compare(step);
  }
  for (const hp of handles.splice(0)) await both(o.steps + 1, `close handle ${hp.id}`, (_tree, side) => hp[side].close());
  if (cached) await sleep(o.attrSettleMs);
  await compare(o.steps + 1, true);
  const kinds = new Map<string, number>();
  for (const line of log) {
    const kind = line.split(' ')[1]!;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return { operations: log.length, seconds: (Date.now() - started) / 1000, kinds };
}

/** The operation kinds every run must have done (a run that did not is no evidence). */
export const EVERY_KIND = ['create', 'write', 'truncate', 'rename', 'unlink', 'link', 'mkdir', 'handle', 'open'];
