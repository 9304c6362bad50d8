/**
 * A randomized sequence of file-system operations (seeded, reproducible) applied to a real
 * sealfs mount and to a plain folder side by side, compared after every step: the tree
 * (names and types), every file's size and content hash, symlink targets, and the result
 * of every operation (success or the same errno). Operations: create, write at random
 * offsets (also past the end, across chunk boundaries), truncate and ftruncate, rename
 * (replacing targets, and the error cases), unlink (also of open files), link, symlink,
 * mkdir, rmdir, and several handles open at once on both sides (FileHandles of this process,
 * kept open across steps, reading and writing).
 *
 * Set SEALFS_RANDOM_SEED to replay a run (another seed: another run); a failure names the
 * seed, the step, the last operations (SEALFS_RANDOM_LOG of them, default 12) and the end
 * of the server's log.
 *
 * One documented FUSE effect is allowed for, and nothing else: a hard link is a separate
 * kernel inode, whose cached attributes (and so its size) may lag by the attribute timeout
 * after a change made through another name (the mount runs with short cache times,
 * --cache-time, as this test is not about their default): such names are compared once that time
 * passed (and everything is compared again at the end). An unlinked file that is still open
 * leaves nothing behind: its folder can be removed, as on a local disk.
 * Not compared: what a handle reads when its file has other names (hard links): the kernel
 * may serve pages it cached through that handle's name after a change through another name
 * (the known limitation tested in mount-faults).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { link, lstat, mkdir, open, readFile, readlink, rename, rmdir, symlink, truncate, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, SHORT_CACHE_ARGS, SHORT_CACHE_MS, sleep, useMountHarness, walk } from './mount-helpers.js';

const h = useMountHarness('mount-random');
if (FUSE_PROBLEM) console.warn(`mount-random: skipped: ${FUSE_PROBLEM}`);

const SEED = Number(process.env.SEALFS_RANDOM_SEED ?? 0x5ea1f5);
const STEPS = 300;
const CHUNK = 64 * 1024;
/** Files stay below this size, so that comparing everything after every step stays cheap. */
const MAX_SIZE = 320 * 1024;
/** Attribute timeout of the mount (--cache-time: SHORT_CACHE_MS) plus a margin. */
const ATTR_SETTLE_MS = SHORT_CACHE_MS + 300;
const NAMES = ['a', 'b', 'c', 'd', 'report.txt', 'ünï çødé', 'x y'];

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
  mount: FileHandle;
  plain: FileHandle;
  /** Inode of the plain side: which plain names it writes through. */
  ino: number;
}

interface Snapshot {
  entries: { path: string; kind: string }[];
  files: Map<string, { ino: number; nlink: number }>;
}

describe.skipIf(FUSE_PROBLEM !== undefined)('randomized operations: a sealfs mount behaves like a plain folder', () => {
  it(`${STEPS} random steps, compared after every one (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const v = await h.vault();
    await h.mountOk(v, { args: [...SHORT_CACHE_ARGS] });
    const roots = { mount: join(v.mnt, 'work'), plain: join(v.dir, 'plain') };
    await mkdir(roots.mount);
    await mkdir(roots.plain);
    const rnd = prng(SEED);
    const log: string[] = [];
    const handles: HandlePair[] = [];
    let handleIds = 0;
    let counter = 0;
    /** Plain inode → time until which other names of it may show stale attributes. */
    const settling = new Map<number, number>();
    /** Plain inodes that had more than one name at some point (only those can lag). */
    const linked = new Set<number>();
    const started = Date.now();

    const fail = (step: number, what: string): never => {
      throw new Error(`seed ${SEED}, step ${step}: ${what}\nlast operations:\n${log.slice(-Number(process.env.SEALFS_RANDOM_LOG ?? 12)).join('\n')}`);
    };

    async function snapshot(): Promise<Snapshot> {
      const entries = (await walk(roots.plain)).map((e) => ({ path: e.path, kind: e.kind }));
      const files = new Map<string, { ino: number; nlink: number }>();
      for (const e of entries) {
        if (e.kind !== 'file') continue;
        const st = await lstat(join(roots.plain, e.path));
        files.set(e.path, { ino: st.ino, nlink: st.nlink });
      }
      return { entries, files };
    }

    /** A change of content, size or links of an inode: its other names may lag for a while. */
    function changed(ino: number | undefined): void {
      if (ino !== undefined && linked.has(ino)) settling.set(ino, Date.now() + ATTR_SETTLE_MS);
    }
    const isSettling = (ino: number, now: number) => (settling.get(ino) ?? 0) > now;
    const inoOf = async (path: string) => (await lstat(join(roots.plain, path)).catch(() => undefined))?.ino;

    async function compare(step: number, full = false): Promise<void> {
      const plainTree = await walk(roots.plain);
      const mountTree = await walk(roots.mount);
      const show = (t: { path: string; kind: string }[]) => t.map((e) => `${e.kind[0]} ${e.path}`).join('\n');
      if (show(plainTree) !== show(mountTree)) fail(step, `trees differ\nplain:\n${show(plainTree)}\nmount:\n${show(mountTree)}`);
      const now = Date.now();
      for (const e of plainTree) {
        const p = join(roots.plain, e.path);
        const m = join(roots.mount, e.path);
        if (e.kind === 'symlink') {
          const [pt, mt] = await Promise.all([readlink(p), readlink(m)]);
          if (pt !== mt) fail(step, `symlink ${e.path}: ${JSON.stringify(mt)} instead of ${JSON.stringify(pt)}`);
          continue;
        }
        if (e.kind !== 'file') continue;
        const pst = await lstat(p);
        if (!full && isSettling(pst.ino, now)) continue;
        const [pdata, mdata, mst] = await Promise.all([readFile(p), readFile(m), lstat(m)]);
        if (mst.size !== pst.size) fail(step, `size of ${e.path}: ${mst.size} instead of ${pst.size}`);
        if (mdata.length !== pdata.length || !mdata.equals(pdata)) {
          let at = 0;
          while (at < Math.min(mdata.length, pdata.length) && mdata[at] === pdata[at]) at++;
          fail(step, `content of ${e.path} (${pdata.length} bytes) differs from byte ${at} (mount read ${mdata.length} bytes)`);
        }
        if (mst.nlink !== pst.nlink && full) fail(step, `nlink of ${e.path}: ${mst.nlink} instead of ${pst.nlink}`);
      }
      // Open handles read the same on both sides.
      for (const hp of handles) {
        const [ps, ms] = await Promise.all([hp.plain.stat(), hp.mount.stat()]);
        if (ps.size !== ms.size && (full || !linked.has(hp.ino))) fail(step, `handle ${hp.id} (${hp.openedAs}): size ${ms.size} instead of ${ps.size}`);
      }
    }

    const dirsOf = (s: Snapshot) => ['', ...s.entries.filter((e) => e.kind === 'dir').map((e) => e.path)];
    const filesOf = (s: Snapshot) => s.entries.filter((e) => e.kind === 'file').map((e) => e.path);
    const childPath = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);
    const depth = (path: string) => (path ? path.split('/').length : 0);

    /** Runs one operation on both sides; both must agree on the outcome. */
    async function both(step: number, what: string, work: (root: string, side: 'mount' | 'plain') => Promise<unknown>): Promise<Outcome> {
      log.push(`${step}: ${what}`);
      const isRename = what.startsWith('rename');
      const plain = await outcome(() => work(roots.plain, 'plain'), isRename);
      const mount = await outcome(() => work(roots.mount, 'mount'), isRename);
      const text = (o: Outcome) => (o.ok ? `ok${o.value !== undefined ? ` ${o.value}` : ''}` : o.code);
      if (text(plain) !== text(mount)) fail(step, `${what}: mount gave ${text(mount)}, the plain folder ${text(plain)}`);
      log[log.length - 1] += ` → ${text(plain)}`;
      return plain;
    }

    const offsetFor = (size: number) => {
      const kind = rnd.int(0, 5);
      const boundary = rnd.int(0, Math.floor(MAX_SIZE / CHUNK)) * CHUNK;
      const at = kind === 0 ? 0 : kind === 1 ? size : kind === 2 ? Math.max(0, boundary + rnd.int(-20, 20)) : kind === 3 ? size + rnd.int(1, 100_000) : rnd.int(0, Math.max(0, size));
      return Math.min(at, MAX_SIZE - 1);
    };
    const lengthFor = (at: number) => {
      const kind = rnd.int(0, 4);
      const n = kind === 0 ? rnd.int(0, 10) : kind === 1 ? rnd.int(1, 5000) : kind === 2 ? CHUNK + rnd.int(-30, 30) : rnd.int(1, 150_000);
      return Math.max(0, Math.min(n, MAX_SIZE - at));
    };

    try {
      for (let step = 1; step <= STEPS; step++) {
        const s = await snapshot();
        const files = filesOf(s);
        const dirs = dirsOf(s);
        const op = rnd.next();
        if (op < 0.1 || files.length === 0) {
          // create a file with content
          const dir = rnd.pick(dirs);
          const path = childPath(dir, rnd.pick(NAMES));
          const data = bytes(SEED, counter++, rnd.int(0, 200_000));
          const before = await inoOf(path);
          await both(step, `create ${path} (${data.length} bytes)`, (root) => writeFile(join(root, path), data, { flag: 'wx' }));
          changed(before);
        } else if (op < 0.38) {
          // write through a handle, or through a path (open, write, close)
          const viaHandle = handles.length > 0 && rnd.chance(0.5);
          if (viaHandle) {
            const hp = rnd.pick(handles);
            const size = (await hp.plain.stat()).size;
            const at = offsetFor(size);
            const data = bytes(SEED, counter++, lengthFor(at));
            await both(step, `handle ${hp.id} (${hp.openedAs}) write ${data.length} at ${at}`, (_root, side) => hp[side].write(data, 0, data.length, at));
            changed(hp.ino);
          } else {
            const path = rnd.pick(files);
            const size = (await lstat(join(roots.plain, path))).size;
            const at = offsetFor(size);
            const data = bytes(SEED, counter++, lengthFor(at));
            await both(step, `write ${path} ${data.length} at ${at}`, async (root) => {
              const fh = await open(join(root, path), 'r+');
              try {
                await fh.write(data, 0, data.length, at);
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
            await both(step, `handle ${hp.id} (${hp.openedAs}) ftruncate ${size}`, (_root, side) => hp[side].truncate(size));
            changed(hp.ino);
          } else {
            const path = rnd.pick(files);
            await both(step, `truncate ${path} ${size}`, (root) => truncate(join(root, path), size));
            changed(await inoOf(path));
          }
        } else if (op < 0.56) {
          // rename a file or a folder, somewhere, maybe over something
          const candidates = s.entries.map((e) => e.path);
          const from = rnd.pick(candidates);
          const to = childPath(rnd.pick(dirs), rnd.pick(NAMES));
          const replaced = await inoOf(to);
          await both(step, `rename ${from} → ${to}`, (root) => rename(join(root, from), join(root, to)));
          changed(replaced);
        } else if (op < 0.63) {
          const path = rnd.pick(files);
          const ino = await inoOf(path);
          await both(step, `unlink ${path}`, (root) => unlink(join(root, path)));
          changed(ino);
        } else if (op < 0.69) {
          const from = rnd.pick(files);
          const to = childPath(rnd.pick(dirs), rnd.pick(NAMES));
          const ino = await inoOf(from);
          const done = await both(step, `link ${from} → ${to}`, (root) => link(join(root, from), join(root, to)));
          if (done.ok && ino !== undefined) linked.add(ino);
          changed(ino);
        } else if (op < 0.72) {
          const path = childPath(rnd.pick(dirs), rnd.pick(NAMES));
          const target = rnd.pick(['a', '../b', 'report.txt', '/etc/hostname', 'no/such', 'ünï çødé/x']);
          await both(step, `symlink ${path} → ${target}`, (root) => symlink(target, join(root, path)));
        } else if (op < 0.79) {
          const dir = rnd.pick(dirs);
          if (depth(dir) >= 3) continue;
          const path = childPath(dir, rnd.pick(NAMES));
          await both(step, `mkdir ${path}`, (root) => mkdir(join(root, path)));
        } else if (op < 0.83) {
          const dir = rnd.pick(dirs.filter((d) => d !== ''));
          if (dir === undefined) continue;
          await both(step, `rmdir ${dir}`, (root) => rmdir(join(root, dir)));
        } else if (op < 0.9) {
          // open another handle pair (at most 4 at once), or close one
          if (handles.length < 4 && (handles.length === 0 || rnd.chance(0.6))) {
            const path = rnd.pick(files);
            const pair: Partial<HandlePair> = { id: ++handleIds, openedAs: path };
            await both(step, `open handle ${pair.id} on ${path}`, async (root, side) => {
              pair[side] = await open(join(root, path), 'r+');
            });
            pair.ino = (await pair.plain!.stat()).ino;
            handles.push(pair as HandlePair);
          } else {
            const hp = handles.splice(rnd.int(0, handles.length - 1), 1)[0]!;
            await both(step, `close handle ${hp.id} (${hp.openedAs})`, (_root, side) => hp[side].close());
          }
        } else {
          // read through a handle
          if (handles.length === 0) continue;
          const hp = rnd.pick(handles);
          // A handle of a file with other names may read cached pages that a change through
          // another name did not invalidate (a known limitation, see mount-faults): not compared.
          if (linked.has(hp.ino)) continue;
          const size = (await hp.plain.stat()).size;
          const at = rnd.int(0, size + 10);
          const length = rnd.int(0, 200_000);
          await both(step, `handle ${hp.id} (${hp.openedAs}) read ${length} at ${at}`, async (_root, side) => {
            const buf = Buffer.alloc(length);
            const { bytesRead } = await hp[side].read(buf, 0, length, at);
            return `${bytesRead} bytes, sha256 ${createHash('sha256').update(buf.subarray(0, bytesRead)).digest('hex').slice(0, 16)}`;
          });
        }
        await compare(step);
      }
    } catch (err) {
      // The server's side of the story.
      const lines = (await h.logLines(v)).slice(-15).join('\n');
      throw new Error(`${(err as Error).message}\nserver log (last lines):\n${lines}`);
    }
    for (const hp of handles.splice(0)) await both(STEPS + 1, `close handle ${hp.id}`, (_root, side) => hp[side].close());
    await sleep(ATTR_SETTLE_MS);
    await compare(STEPS + 1, true);
    const kinds = new Map<string, number>();
    for (const line of log) {
      const kind = line.split(' ')[1]!;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    console.log(`mount-random: seed ${SEED}, ${log.length} operations in ${((Date.now() - started) / 1000).toFixed(1)} s: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    // Sanity: the run really did a bit of everything.
    for (const kind of ['create', 'write', 'truncate', 'rename', 'unlink', 'link', 'mkdir', 'handle', 'open']) expect(kinds.get(kind) ?? 0, kind).toBeGreaterThan(0);
    await h.unmountOk(v);
  });
});
