/**
 * The file-system semantics of a real sealfs mount (issue 3 §3), one by one, the way ordinary
 * programs use them: async fs calls from this process, and separate processes (sh, dd, cp,
 * truncate, touch, df, python3). The mount is served by `sealfs mount` (a background server
 * process, built CLI); one mount is shared by the tests of the file, each test working in
 * its own folder; the read-only test mounts a vault of its own. Where the ciphertext side
 * matters (sizes, modes, times, fsync), it is checked in the cipher folder too.
 *
 * Kernel caching: attributes and entries are cached for the mount's cache time (attr_timeout,
 * entry_timeout; 1 s by default, SHORT_CACHE_MS here, as no test of this file is about the
 * default: mount-faults and sync-live check the documented bound). The names of a hard-linked
 * file are one kernel inode, so a change through one shows through the other at once
 * (test/mount-posix.test.ts checks that with the default times); the checks here still poll.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  appendFile,
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rmdir,
  stat,
  statfs,
  symlink,
  truncate,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { sealedSize as sealedSizeOf } from '../src/crypto/geometry.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, isMounted, mountRows, sha256, SHORT_CACHE_ARGS, SHORT_CACHE_MS, freshFolders, useMountHarness, waitFor, walk, type TestVault } from './mount-helpers.js';

const h = useMountHarness('mount-semantics');
if (FUSE_PROBLEM) console.warn(`mount-semantics: skipped: ${FUSE_PROBLEM}`);

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
/** Ciphertext size of a plaintext of `size` bytes with 64 KiB chunks (docs/FORMAT.md §4). */
const sealedSize = (size: number) => sealedSizeOf(size, CHUNK);
/** A marker written as file content; the last test looks for it in the cipher folder. */
const MARKER = `SEMANTICS-PLAINTEXT-${randomBytes(6).toString('hex')}`;
/** Plaintext names used below that must never show up in the cipher folder. */
const PLAIN_NAMES = ['résumé 2026.txt', 'Ünïcödé ✓.txt', 'size-65537.bin', 'report-final.txt', 'nested-dir'];

let v: TestVault;
let M: string;
const fresh = freshFolders(() => M);

/** `model` after writing `data` at `position` (a hole reads as zeros). */
function patch(model: Buffer, position: number, data: Buffer): Buffer {
  const out = Buffer.alloc(Math.max(model.length, position + data.length));
  model.copy(out);
  data.copy(out, position);
  return out;
}

/** Python's repr() of a tuple of strings (ASCII, no quotes inside). */
const repr = (items: string[]) => `(${items.map((t) => `'${t}'`).join(', ')})`;

const errorCode = async (promise: Promise<unknown>): Promise<string | undefined> =>
  promise.then(
    () => undefined,
    (err: NodeJS.ErrnoException) => err.code,
  );

/** The whole file through a fresh open (the kernel drops its cached pages at open). */
const contents = (path: string) => readFile(path);

describe.skipIf(FUSE_PROBLEM !== undefined)('sealfs mount semantics (real FUSE mount, built CLI)', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    v = await h.vault();
    await h.mountOk(v, { scope: 'file', args: [...SHORT_CACHE_ARGS] });
    M = v.mnt;
  }, 60_000);

  it('lookup, getattr and readdir show plaintext names, types and sizes; the cipher files have the sealed sizes', async () => {
    const d = await fresh('getattr');
    const sizes = [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 200_001];
    const data = new Map<string, Buffer>();
    for (const size of sizes) {
      const bytes = randomBytes(size);
      data.set(`size-${size}.bin`, bytes);
      await writeFile(join(d, `size-${size}.bin`), bytes);
    }
    await mkdir(join(d, 'nested-dir'));
    await symlink('size-1.bin', join(d, 'the-link'));

    const listed = await readdir(d, { withFileTypes: true });
    const kinds = Object.fromEntries(listed.map((e) => [e.name, e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'symlink' : e.isFile() ? 'file' : '?']));
    expect(kinds).toEqual({ ...Object.fromEntries([...data.keys()].map((n) => [n, 'file'])), 'nested-dir': 'dir', 'the-link': 'symlink' });
    for (const [name, bytes] of data) {
      const st = await stat(join(d, name));
      expect(st.isFile()).toBe(true);
      expect(st.size, name).toBe(bytes.length);
      expect((await contents(join(d, name))).equals(bytes), name).toBe(true);
      const cipherFile = await h.cipherPathOf(v, join(d, name).slice(M.length));
      expect((await stat(cipherFile)).size, `cipher size of ${name}`).toBe(sealedSize(bytes.length));
    }
    expect((await lstat(join(d, 'the-link'))).size).toBe('size-1.bin'.length);
    expect((await stat(join(d, 'nested-dir'))).isDirectory()).toBe(true);
    expect((await stat(M)).isDirectory()).toBe(true);

    // Sizes as a program sees them: ls -l.
    const ls = await h.spawn('ls', ['-ln', d]);
    expect(ls.code, ls.stderr).toBe(0);
    for (const [name, bytes] of data) expect(ls.stdout).toMatch(new RegExp(`\\s${bytes.length}\\s+\\S+\\s+\\S+\\s+\\S+\\s+${name.replace(/\./g, '\\.')}\\n`));

    expect(await errorCode(stat(join(d, 'missing')))).toBe('ENOENT');
    expect(await errorCode(stat(join(d, 'size-1.bin', 'below-a-file')))).toBe('ENOTDIR');
    expect(await errorCode(readdir(join(d, 'size-1.bin')))).toBe('ENOTDIR');
  });

  it('create, open, read and write at any offset, through one handle and from other processes', async () => {
    const d = await fresh('rw');
    const path = join(d, 'report-final.txt');
    let model: Buffer = randomBytes(300_000);
    model.write(MARKER, 280_000, 'latin1'); // no write below touches it
    const fh = await open(path, 'w+');
    try {
      expect((await fh.write(model, 0, model.length, 0)).bytesWritten).toBe(model.length);
      const writes: [number, number][] = [
        [0, 1],
        [1, 4095],
        [CHUNK - 10, 20], // across a chunk boundary
        [CHUNK, 1],
        [2 * CHUNK - 1, 2],
        [70_000, 200_000], // many chunks, unaligned at both ends
        [299_990, 30], // across the end: grows the file
        [350_000, 1234], // past the end: leaves a hole
        [123_457, 0],
      ];
      for (const [position, length] of writes) {
        const data = randomBytes(length);
        expect((await fh.write(data, 0, length, position)).bytesWritten).toBe(length);
        model = patch(model, position, data);
        expect((await fh.stat()).size).toBe(model.length);
        for (const [from, len] of [[0, model.length], [position, length + 10], [Math.max(0, position - 5000), 70_000], [model.length - 3, 100]] as const) {
          const buf = Buffer.alloc(len);
          const { bytesRead } = await fh.read(buf, 0, len, from);
          expect(bytesRead).toBe(Math.max(0, Math.min(len, model.length - from)));
          expect(buf.subarray(0, bytesRead).equals(model.subarray(from, from + bytesRead)), `read ${from}+${len} after write ${position}+${length}`).toBe(true);
        }
      }
      const past = Buffer.alloc(10);
      expect((await fh.read(past, 0, 10, model.length + 100)).bytesRead).toBe(0);

      // Another process writes while this handle is open; this handle sees it.
      const other = randomBytes(5000);
      const py = await h.python(
        'import os,sys\nfd=os.open(sys.argv[1], os.O_RDWR)\nos.pwrite(fd, bytes.fromhex(sys.argv[2]), int(sys.argv[3]))\nos.close(fd)',
        [path, other.toString('hex'), '65000'],
      );
      expect(py.code, py.stderr).toBe(0);
      model = patch(model, 65_000, other);
      const buf = Buffer.alloc(model.length);
      expect((await fh.read(buf, 0, model.length, 0)).bytesRead).toBe(model.length);
      expect(buf.equals(model)).toBe(true);
    } finally {
      await fh.close();
    }
    expect((await contents(path)).equals(model)).toBe(true);

    // Other programs read the same bytes: cmp against a plain copy, dd of a middle range.
    const plainCopy = join(h.root, 'rw-model.bin');
    await writeFile(plainCopy, model);
    const cmp = await h.spawn('cmp', [plainCopy, path]);
    expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
    const dd = await h.spawn('dd', [`if=${path}`, 'bs=1000', 'skip=65', 'count=70', 'status=none']);
    expect(dd.code, dd.stderr).toBe(0);
    expect(dd.out.equals(model.subarray(65_000, 135_000))).toBe(true);
    const py = await h.python(
      'import os,sys,hashlib\nfd=os.open(sys.argv[1], os.O_RDONLY)\nprint(hashlib.sha256(os.pread(fd, 10**7, 0)).hexdigest(), os.pread(fd, 7, int(sys.argv[2])).hex())',
      [path, '299995'],
    );
    expect(py.code, py.stderr).toBe(0);
    expect(py.stdout.trim()).toBe(`${sha256(model)} ${model.subarray(299_995, 300_002).toString('hex')}`);
  });

  it('O_APPEND: two processes appending at once lose and tear nothing; >> creates and appends', async () => {
    const d = await fresh('append');
    const path = join(d, 'log.txt');
    await writeFile(path, 'HEAD\n');
    const appender = [
      'import os,sys',
      'tag=sys.argv[2]; n=int(sys.argv[3])',
      'fd=os.open(sys.argv[1], os.O_WRONLY|os.O_APPEND)',
      'for i in range(n):',
      '    rec=(tag+"%05d" % i).ljust(99, tag)+"\\n"',
      '    assert os.write(fd, rec.encode()) == 100',
      'os.close(fd)',
    ].join('\n');
    const n = 400;
    const [a, b] = await Promise.all([h.python(appender, [path, 'A', String(n)]), h.python(appender, [path, 'B', String(n)])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const text = (await contents(path)).toString('latin1');
    expect(text.length).toBe(5 + 2 * n * 100);
    expect(text.startsWith('HEAD\n')).toBe(true);
    const next = { A: 0, B: 0 } as Record<string, number>;
    for (let at = 5; at < text.length; at += 100) {
      const rec = text.slice(at, at + 100);
      const m = /^([AB])(\d{5})([AB]{93})\n$/.exec(rec);
      expect(m, `torn record at ${at}: ${JSON.stringify(rec)}`).not.toBeNull();
      const [, tag, index, fill] = m!;
      expect(fill).toBe(tag!.repeat(93));
      expect(Number(index)).toBe(next[tag!]);
      next[tag!]!++;
    }
    expect(next).toEqual({ A: n, B: n });

    // The shell's >> on a new file, then appending through fs.appendFile.
    const sh2 = await h.spawn('sh', ['-c', 'for i in 1 2 3; do echo "line $i" >> "$0"; done', join(d, 'new.txt')]);
    expect(sh2.code, sh2.stderr).toBe(0);
    await appendFile(join(d, 'new.txt'), 'tail\n');
    expect(await readFile(join(d, 'new.txt'), 'utf8')).toBe('line 1\nline 2\nline 3\ntail\n');
  });

  it('sparse files: writing past the end leaves a hole of zeros; sizes are right', async () => {
    const d = await fresh('sparse');
    const path = join(d, 'sparse.bin');
    const far = 5 * MiB + 123;
    const py = await h.python(
      'import os,sys\nfd=os.open(sys.argv[1], os.O_CREAT|os.O_RDWR, 0o644)\nos.lseek(fd, int(sys.argv[2]), os.SEEK_SET)\nos.write(fd, b"tail")\nos.close(fd)',
      [path, String(far)],
    );
    expect(py.code, py.stderr).toBe(0);
    expect((await stat(path)).size).toBe(far + 4);
    const expected = Buffer.concat([Buffer.alloc(far), Buffer.from('tail')]);
    expect((await contents(path)).equals(expected)).toBe(true);
    const dd = await h.spawn('dd', [`if=${path}`, 'bs=64k', 'skip=40', 'count=2', 'status=none']);
    expect(dd.code, dd.stderr).toBe(0);
    expect(dd.out.equals(Buffer.alloc(2 * CHUNK))).toBe(true);
    expect((await stat(await h.cipherPathOf(v, path.slice(M.length)))).size).toBe(sealedSize(far + 4));

    // A file whose last chunk is partial, written far past its end: old bytes stay, the gap is zeros.
    const partial = join(d, 'partial.bin');
    const head = randomBytes(70_000);
    await writeFile(partial, head);
    const fh = await open(partial, 'r+');
    await fh.write(Buffer.from('Z'), 0, 1, 200_000);
    await fh.close();
    expect((await contents(partial)).equals(Buffer.concat([head, Buffer.alloc(200_000 - 70_000), Buffer.from('Z')]))).toBe(true);

    // Extending with truncate -s is a hole too.
    const grown = join(d, 'grown.bin');
    await writeFile(grown, 'abc');
    const t = await h.spawn('truncate', ['-s', String(3 * MiB + 7), grown]);
    expect(t.code, t.stderr).toBe(0);
    expect((await stat(grown)).size).toBe(3 * MiB + 7);
    expect((await contents(grown)).equals(Buffer.concat([Buffer.from('abc'), Buffer.alloc(3 * MiB + 4)]))).toBe(true);
  });

  it('truncate and ftruncate, shrinking and growing (truncate -s, os.ftruncate, O_TRUNC): cut bytes never come back', async () => {
    const d = await fresh('truncate');
    const path = join(d, 't.bin');
    const original = randomBytes(200_000);
    await writeFile(path, original);
    const trunc = async (size: number) => {
      const r = await h.spawn('truncate', ['-s', String(size), path]);
      expect(r.code, r.stderr).toBe(0);
      expect((await stat(path)).size).toBe(size);
      expect((await stat(await h.cipherPathOf(v, path.slice(M.length)))).size).toBe(sealedSize(size));
    };
    await trunc(100_000);
    expect((await contents(path)).equals(original.subarray(0, 100_000))).toBe(true);
    await trunc(250_000);
    expect((await contents(path)).equals(Buffer.concat([original.subarray(0, 100_000), Buffer.alloc(150_000)]))).toBe(true);
    await trunc(CHUNK);
    await trunc(0);
    expect((await contents(path)).length).toBe(0);
    await trunc(CHUNK + 1);
    expect((await contents(path)).equals(Buffer.alloc(CHUNK + 1))).toBe(true);

    // ftruncate through an open descriptor in another process, reading through the same descriptor.
    const f2 = join(d, 'f.bin');
    const data = randomBytes(200_000);
    await writeFile(f2, data);
    const py = await h.python(
      [
        'import os,sys,hashlib',
        'fd=os.open(sys.argv[1], os.O_RDWR)',
        'os.ftruncate(fd, 70000); assert os.fstat(fd).st_size == 70000',
        'assert os.pread(fd, 10, 70000) == b""',
        'os.ftruncate(fd, 150000); assert os.fstat(fd).st_size == 150000',
        'assert os.pread(fd, 80000, 70000) == bytes(80000)',
        'os.pwrite(fd, b"xyz", 140000)',
        'print(hashlib.sha256(os.pread(fd, 10**6, 0)).hexdigest())',
        'os.close(fd)',
      ].join('\n'),
      [f2],
    );
    expect(py.code, py.stderr).toBe(0);
    const expected = patch(Buffer.concat([data.subarray(0, 70_000), Buffer.alloc(80_000)]), 140_000, Buffer.from('xyz'));
    expect(py.stdout.trim()).toBe(sha256(expected));
    expect((await contents(f2)).equals(expected)).toBe(true);

    // FileHandle.truncate from this process, and truncate(2) by path.
    const fh = await open(f2, 'r+');
    await fh.truncate(10);
    expect((await fh.stat()).size).toBe(10);
    await fh.close();
    await truncate(f2, 20);
    expect((await contents(f2)).equals(Buffer.concat([data.subarray(0, 10), Buffer.alloc(10)]))).toBe(true);

    // O_TRUNC: the shell's > on an existing file.
    const sh = await h.spawn('sh', ['-c', 'printf new > "$0"', f2]);
    expect(sh.code, sh.stderr).toBe(0);
    expect(await readFile(f2, 'utf8')).toBe('new');
    expect((await stat(await h.cipherPathOf(v, f2.slice(M.length)))).size).toBe(sealedSize(3));
  });

  it('unlink, also of an open file: gone by name, still readable and writable through the open descriptor, nothing left after close', async () => {
    const d = await fresh('unlink');
    const cipherDir = await h.cipherPathOf(v, d.slice(M.length));
    await writeFile(join(d, 'plain.txt'), 'bye');
    await unlink(join(d, 'plain.txt'));
    expect(await errorCode(stat(join(d, 'plain.txt')))).toBe('ENOENT');
    expect(await readdir(d)).toEqual([]);
    expect(await readdir(cipherDir)).toEqual([]);
    expect(await errorCode(unlink(join(d, 'plain.txt')))).toBe('ENOENT');

    const path = join(d, 'open.bin');
    const data = randomBytes(150_000);
    await writeFile(path, data);
    const fh = await open(path, 'r+');
    try {
      const rm = await h.spawn('rm', [path]);
      expect(rm.code, rm.stderr).toBe(0);
      expect(await errorCode(stat(path))).toBe('ENOENT');
      // Gone from the folder at once (no hidden name), yet still read and written through the handle.
      expect(await readdir(d)).toEqual([]);
      const buf = Buffer.alloc(data.length);
      expect((await fh.read(buf, 0, buf.length, 0)).bytesRead).toBe(data.length);
      expect(buf.equals(data)).toBe(true);
      await fh.write(Buffer.from('more'), 0, 4, data.length);
      const again = Buffer.alloc(data.length + 4);
      expect((await fh.read(again, 0, again.length, 0)).bytesRead).toBe(data.length + 4);
      expect(again.equals(Buffer.concat([data, Buffer.from('more')]))).toBe(true);
      expect((await fh.stat()).size).toBe(data.length + 4);
    } finally {
      await fh.close();
    }
    await waitFor('the hidden file to go once closed', async () => (await readdir(d)).length === 0 && (await readdir(cipherDir)).length === 0, 2000);
  });

  it('mkdir and rmdir: nested folders, EEXIST, ENOTEMPTY, ENOTDIR, rm -r', async () => {
    const d = await fresh('dirs');
    const mk = await h.spawn('mkdir', ['-p', join(d, 'a', 'b', 'c')]);
    expect(mk.code, mk.stderr).toBe(0);
    expect((await stat(join(d, 'a', 'b', 'c'))).isDirectory()).toBe(true);
    await mkdir(join(d, 'mode'), { mode: 0o750 });
    expect((await stat(join(d, 'mode'))).mode & 0o777).toBe(0o750);
    expect(await errorCode(mkdir(join(d, 'a')))).toBe('EEXIST');
    await writeFile(join(d, 'a', 'b', 'file'), 'x');
    expect(await errorCode(rmdir(join(d, 'a', 'b')))).toBe('ENOTEMPTY');
    expect(await errorCode(rmdir(join(d, 'a', 'b', 'file')))).toBe('ENOTDIR');
    expect(await errorCode(rmdir(join(d, 'missing')))).toBe('ENOENT');
    expect(await errorCode(mkdir(join(d, 'missing', 'x')))).toBe('ENOENT');
    await rmdir(join(d, 'a', 'b', 'c'));
    expect(await readdir(join(d, 'a', 'b'))).toEqual(['file']);
    const rm = await h.spawn('rm', ['-r', join(d, 'a')]);
    expect(rm.code, rm.stderr).toBe(0);
    await rmdir(join(d, 'mode'));
    expect(await readdir(d)).toEqual([]);
    expect(await readdir(await h.cipherPathOf(v, d.slice(M.length)))).toEqual([]);
  });

  it('rename files and folders within and across folders, replacing targets, with the POSIX errors', async () => {
    const d = await fresh('rename');
    const p = (...parts: string[]) => join(d, ...parts);
    await mkdir(p('d1'));
    await mkdir(p('d2'));
    await writeFile(p('d1', 'a.txt'), 'A');

    // A file within a folder, then across folders (rename(2) and mv).
    await rename(p('d1', 'a.txt'), p('d1', 'b.txt'));
    expect(await readdir(p('d1'))).toEqual(['b.txt']);
    const mv = await h.spawn('mv', [p('d1', 'b.txt'), p('d2', 'c.txt')]);
    expect(mv.code, mv.stderr).toBe(0);
    expect(await readdir(p('d1'))).toEqual([]);
    expect(await readFile(p('d2', 'c.txt'), 'utf8')).toBe('A');

    // Unicode names.
    await writeFile(p('résumé 2026.txt'), 'cv');
    await rename(p('résumé 2026.txt'), p('Ünïcödé ✓.txt'));
    expect(await readFile(p('Ünïcödé ✓.txt'), 'utf8')).toBe('cv');

    // A folder with contents, within and across folders; everything below it follows.
    await mkdir(p('d2', 'sub', 'deeper'), { recursive: true });
    const deep = randomBytes(100_000);
    await writeFile(p('d2', 'sub', 'deeper', 'deep.bin'), deep);
    await rename(p('d2'), p('d3'));
    expect((await readFile(p('d3', 'sub', 'deeper', 'deep.bin'))).equals(deep)).toBe(true);
    await rename(p('d3'), p('d1', 'd3-moved'));
    expect((await readFile(p('d1', 'd3-moved', 'sub', 'deeper', 'deep.bin'))).equals(deep)).toBe(true);
    expect(await readFile(p('d1', 'd3-moved', 'c.txt'), 'utf8')).toBe('A');
    expect((await readdir(d)).sort()).toEqual(['d1', 'Ünïcödé ✓.txt'].sort());
    await writeFile(p('d1', 'd3-moved', 'sub', 'new.txt'), 'created after the moves');
    expect(await readFile(p('d1', 'd3-moved', 'sub', 'new.txt'), 'utf8')).toBe('created after the moves');

    // A file over a file: the target is replaced, its old content is gone, one cipher file less.
    await writeFile(p('x'), 'X content');
    await writeFile(p('y'), 'Y content');
    const cipherD = await h.cipherPathOf(v, d.slice(M.length));
    const before = (await readdir(cipherD)).length;
    await rename(p('x'), p('y'));
    expect(await readFile(p('y'), 'utf8')).toBe('X content');
    expect(await errorCode(stat(p('x')))).toBe('ENOENT');
    expect((await readdir(cipherD)).length).toBe(before - 1);

    // A file over a file that is open: the open descriptor still reads the old content.
    await writeFile(p('old'), 'old content');
    await writeFile(p('new'), 'new content');
    const held = await open(p('old'), 'r');
    try {
      await rename(p('new'), p('old'));
      expect(await readFile(p('old'), 'utf8')).toBe('new content');
      const buf = Buffer.alloc(20);
      const { bytesRead } = await held.read(buf, 0, 20, 0);
      expect(buf.subarray(0, bytesRead).toString()).toBe('old content');
    } finally {
      await held.close();
    }

    // A folder over an empty folder; over a non-empty one it fails.
    await mkdir(p('e1'));
    await writeFile(p('e1', 'f'), 'in e1');
    await mkdir(p('e2'));
    await rename(p('e1'), p('e2'));
    expect(await readFile(p('e2', 'f'), 'utf8')).toBe('in e1');
    expect(await errorCode(stat(p('e1')))).toBe('ENOENT');
    await mkdir(p('e3'));
    await writeFile(p('e3', 'g'), 'in e3');
    expect(['ENOTEMPTY', 'EEXIST']).toContain(await errorCode(rename(p('e3'), p('e2'))));
    expect(await readFile(p('e2', 'f'), 'utf8')).toBe('in e1');
    expect(await readFile(p('e3', 'g'), 'utf8')).toBe('in e3');

    // A file over a folder, a folder over a file, a folder into itself.
    expect(await errorCode(rename(p('y'), p('e3')))).toBe('EISDIR');
    expect(await errorCode(rename(p('e3'), p('y')))).toBe('ENOTDIR');
    expect(await errorCode(rename(p('e3'), p('e3', 'inside')))).toBe('EINVAL');
    expect(await errorCode(rename(p('missing'), p('z')))).toBe('ENOENT');
    expect(await readFile(p('y'), 'utf8')).toBe('X content');

    // Onto itself: nothing happens.
    await rename(p('y'), p('y'));
    expect(await readFile(p('y'), 'utf8')).toBe('X content');

    // An open file renamed away keeps being written through its descriptor.
    const fh = await open(p('moving.txt'), 'w+');
    try {
      await fh.write('first ');
      await rename(p('moving.txt'), p('d1', 'moved.txt'));
      await fh.write('second');
    } finally {
      await fh.close();
    }
    expect(await readFile(p('d1', 'moved.txt'), 'utf8')).toBe('first second');
    expect(await errorCode(stat(p('moving.txt')))).toBe('ENOENT');
  });

  it('symlink and readlink: relative, absolute and dangling targets, kept byte for byte', async () => {
    const d = await fresh('symlink');
    await mkdir(join(d, 'sub'));
    await writeFile(join(d, 'sub', 'target.txt'), 'target content');
    const targets: Record<string, string> = {
      rel: 'sub/target.txt',
      up: '../symlink-other/file',
      abs: join(d, 'sub', 'target.txt'),
      system: '/etc/hostname',
      dangling: 'no/such/file',
      unicode: 'ünï/çødé ✓',
      long: 'x/'.repeat(500) + 'end',
    };
    for (const [name, target] of Object.entries(targets)) await symlink(target, join(d, name));
    const ln = await h.spawn('ln', ['-s', 'sub', join(d, 'dirlink')]);
    expect(ln.code, ln.stderr).toBe(0);
    for (const [name, target] of Object.entries(targets)) {
      expect(await readlink(join(d, name))).toBe(target);
      const st = await lstat(join(d, name));
      expect(st.isSymbolicLink()).toBe(true);
      expect(st.size).toBe(Buffer.byteLength(target));
    }
    expect(await readFile(join(d, 'rel'), 'utf8')).toBe('target content');
    expect(await readFile(join(d, 'abs'), 'utf8')).toBe('target content');
    expect(await readFile(join(d, 'dirlink', 'target.txt'), 'utf8')).toBe('target content');
    expect(await errorCode(stat(join(d, 'dangling')))).toBe('ENOENT');
    expect(await errorCode(readlink(join(d, 'sub', 'target.txt')))).toBe('EINVAL');
    expect(await errorCode(symlink('x', join(d, 'rel')))).toBe('EEXIST');
    const ls = await h.spawn('ls', ['-l', d]);
    expect(ls.stdout).toContain('rel -> sub/target.txt');

    // Moved and removed: the target string stays; removing a link leaves its target.
    await rename(join(d, 'rel'), join(d, 'sub', 'rel-moved'));
    expect(await readlink(join(d, 'sub', 'rel-moved'))).toBe('sub/target.txt');
    await unlink(join(d, 'sub', 'rel-moved'));
    expect(await readFile(join(d, 'sub', 'target.txt'), 'utf8')).toBe('target content');

    // The cipher folder holds symlinks too, but never the plaintext target.
    const cipherLink = await h.cipherPathOf(v, join(d, 'abs').slice(M.length));
    expect((await lstat(cipherLink)).isSymbolicLink()).toBe(true);
    expect(await readlink(cipherLink)).not.toContain('target');
  });

  it('hard links share content and count links (through another name once the attribute timeout passed)', async () => {
    const d = await fresh('link');
    await mkdir(join(d, 'other'));
    await writeFile(join(d, 'a'), 'shared');
    await link(join(d, 'a'), join(d, 'other', 'b'));
    expect((await stat(join(d, 'other', 'b'))).nlink).toBe(2);
    await waitFor('nlink 2 through the first name', async () => (await stat(join(d, 'a'))).nlink === 2, 2000);
    const [ca, cb] = await Promise.all([h.cipherPathOf(v, join(d, 'a').slice(M.length)), h.cipherPathOf(v, join(d, 'other', 'b').slice(M.length))]);
    expect(ca).not.toBe(cb);
    const [sa, sb] = await Promise.all([stat(ca), stat(cb)]);
    expect(sa.ino).toBe(sb.ino);
    expect(sa.nlink).toBe(2);

    await appendFile(join(d, 'other', 'b'), ' and appended through b');
    await waitFor('the change through b to show through a', async () => (await readFile(join(d, 'a'), 'utf8')) === 'shared and appended through b', 2000);
    const fh = await open(join(d, 'a'), 'r+');
    await fh.write('SH', 0, 'utf8');
    await fh.close();
    await waitFor('the change through a to show through b', async () => (await readFile(join(d, 'other', 'b'), 'utf8')) === 'SHared and appended through b', 2000);

    expect(await errorCode(link(join(d, 'a'), join(d, 'other', 'b')))).toBe('EEXIST');
    expect(await errorCode(link(join(d, 'other'), join(d, 'dirlink')))).toBe('EPERM');
    await unlink(join(d, 'a'));
    expect(await readFile(join(d, 'other', 'b'), 'utf8')).toBe('SHared and appended through b');
    await waitFor('nlink 1 after unlinking the other name', async () => (await stat(join(d, 'other', 'b'))).nlink === 1, 2000);
  });

  /**
   * POSIX rename(2) between two names of one file (hard links) "shall return successfully
   * and perform no other action"; both names stay. The kernel cannot see that they are one
   * file (each name is its own FUSE inode), so PlainFs.rename checks: when the existing target
   * is a file whose cipher file has the source's inode, it does nothing (a former bug: the
   * source name disappeared).
   */
  it('rename between two hard links of one file leaves both names (POSIX)', async () => {
    const d = await fresh('rename-links');
    await mkdir(join(d, 'r1'));
    await mkdir(join(d, 'r2'));
    await writeFile(join(d, 'r1', 'a'), 'same file');
    await link(join(d, 'r1', 'a'), join(d, 'r2', 'b'));
    await rename(join(d, 'r1', 'a'), join(d, 'r2', 'b'));
    expect(await readdir(join(d, 'r1'))).toEqual(['a']);
    expect(await readdir(join(d, 'r2'))).toEqual(['b']);
  });

  /**
   * A former bug (data corruption), kept as a regression test: an open file remembered one
   * cipher path; when that name of a hard-linked file was unlinked while the file stayed open
   * under another name, and a new file then took the name, revalidation took it for a sync
   * client's replacement and switched the open file to the unrelated new file. An open file
   * now only follows rewrites of its own inode.
   */
  it('an open hard-linked file stays itself when the name it was first opened under is unlinked and reused', async () => {
    const d = await fresh('link-reuse');
    const r = await h.python(
      [
        'import os,sys,time',
        'os.chdir(sys.argv[1])',
        'open("a","wb").write(b"ORIGINAL CONTENT")',
        'os.link("a","b")',
        'fa=os.open("a", os.O_RDWR); fb=os.open("b", os.O_RDWR); os.close(fa)',
        'os.unlink("a")',
        'open("a","wb").write(b"an unrelated new file")',
        'time.sleep(float(sys.argv[2]))',
        'seen=os.pread(fb, 100, 0)',
        'try:',
        '    os.pwrite(fb, b"XX", 0); os.close(fb); closed="ok"',
        'except OSError as e:',
        '    closed=os.strerror(e.errno)',
        'def read(name):',
        '    try:',
        '        return open(name,"rb").read().decode()',
        '    except OSError as e:',
        '        return os.strerror(e.errno)',
        'print(repr((seen.decode(), closed, read("a"), read("b"))))',
      ].join('\n'),
      // Past the open file's revalidation time (the cache time), with a margin.
      [d, String((SHORT_CACHE_MS + 300) / 1000)],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(repr(['ORIGINAL CONTENT', 'ok', 'an unrelated new file', 'XXIGINAL CONTENT']));
  });

  it('chmod, chown and utimens (touch -d, touch -m -d, touch -a -d, utimes) show through the mount and on the cipher files', async () => {
    const d = await fresh('attrs');
    const file = join(d, 'f.txt');
    await writeFile(file, 'attributes');
    const cipherFile = await h.cipherPathOf(v, file.slice(M.length));
    const cipherDir = await h.cipherPathOf(v, d.slice(M.length));

    for (const mode of [0o600, 0o755, 0o640, 0o1755]) {
      await chmod(file, mode);
      expect((await stat(file)).mode & 0o7777).toBe(mode);
      expect((await stat(cipherFile)).mode & 0o7777).toBe(mode);
    }
    const cm = await h.spawn('chmod', ['u-x,g+w', file]);
    expect(cm.code, cm.stderr).toBe(0);
    expect((await stat(file)).mode & 0o777).toBe(0o675);
    await chmod(d, 0o700);
    expect((await stat(d)).mode & 0o777).toBe(0o700);
    expect((await stat(cipherDir)).mode & 0o777).toBe(0o700);
    await chmod(d, 0o755);

    if (process.getuid?.() === 0) {
      await chown(file, 1234, 5678);
      expect(await stat(file)).toMatchObject({ uid: 1234, gid: 5678 });
      expect(await stat(cipherFile)).toMatchObject({ uid: 1234, gid: 5678 });
      const co = await h.spawn('chown', ['4321:8765', file]);
      expect(co.code, co.stderr).toBe(0);
      expect(await stat(file)).toMatchObject({ uid: 4321, gid: 8765 });
      await chown(file, 0, 0);
    }

    const iso = (date: Date) => date.toISOString();
    const touch = async (...args: string[]) => {
      const r = await h.spawn('touch', [...args, file]);
      expect(r.code, r.stderr).toBe(0);
    };
    await touch('-d', '2001-02-03 04:05:06 UTC');
    for (const st of [await stat(file), await stat(cipherFile)]) {
      expect(iso(st.mtime)).toBe('2001-02-03T04:05:06.000Z');
      expect(iso(st.atime)).toBe('2001-02-03T04:05:06.000Z');
    }
    // The modification time alone (atime UTIME_OMIT, as tar x does). The access time is not
    // checked here: see the known-bug test below.
    await touch('-m', '-d', '2002-03-04 05:06:07 UTC');
    for (const st of [await stat(file), await stat(cipherFile)]) expect(iso(st.mtime)).toBe('2002-03-04T05:06:07.000Z');
    await touch('-a', '-d', '2003-04-05 06:07:08 UTC');
    for (const st of [await stat(file), await stat(cipherFile)]) {
      expect(iso(st.mtime)).toBe('2002-03-04T05:06:07.000Z');
      expect(iso(st.atime)).toBe('2003-04-05T06:07:08.000Z');
    }
    await utimes(file, 1_000_000_000, 1_100_000_000.5);
    for (const st of [await stat(file), await stat(cipherFile)]) {
      expect(st.mtimeMs).toBe(1_100_000_000_500);
      expect(st.atimeMs).toBe(1_000_000_000_000);
    }
    // touch without a date: now.
    const before = Date.now() - 2000;
    await touch();
    expect((await stat(cipherFile)).mtimeMs).toBeGreaterThan(before);
    expect((await stat(file)).mtimeMs).toBeGreaterThan(before);
    // Writing content moves the cipher file's modification time too (what a sync client watches).
    await utimes(file, 1_000_000_000, 1_000_000_000);
    await appendFile(file, ' changed');
    expect((await stat(cipherFile)).mtimeMs).toBeGreaterThan(before);
    // Folders.
    const td = await h.spawn('touch', ['-d', '2004-05-06 07:08:09 UTC', d]);
    expect(td.code, td.stderr).toBe(0);
    expect(iso((await stat(d)).mtime)).toBe('2004-05-06T07:08:09.000Z');
    expect(iso((await stat(cipherDir)).mtime)).toBe('2004-05-06T07:08:09.000Z');
  });

  /**
   * Every open, even O_WRONLY without a read, makes the server read the cipher file's header;
   * cipher files are opened with O_NOATIME (src/vault/openfiles.ts), so that read does not
   * move the access time, which is the plaintext access time: `touch -m -d` (open O_WRONLY,
   * then utimensat with atime UTIME_OMIT) leaves it, as a local file system does.
   */
  it('opening a file without reading it (touch -m) leaves its access time alone', async () => {
    const d = await fresh('atime');
    const file = join(d, 'f.txt');
    await writeFile(file, 'x');
    const cipherFile = await h.cipherPathOf(v, file.slice(M.length));
    await utimes(file, 1_000_000_000, 1_000_000_000);
    const r = await h.spawn('touch', ['-m', '-d', '2002-03-04 05:06:07 UTC', file]);
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(cipherFile)).mtime.toISOString()).toBe('2002-03-04T05:06:07.000Z');
    expect((await stat(file)).atimeMs).toBe(1_000_000_000_000);
    expect((await stat(cipherFile)).atimeMs).toBe(1_000_000_000_000);
  });

  it('statfs: df and stat -f work and report the backing file system', async () => {
    const df = await h.spawn('df', ['-P', '-k', M]);
    expect(df.code, df.stderr).toBe(0);
    const row = df.stdout.trim().split('\n').at(-1)!.split(/\s+/);
    expect(row.at(-1)).toBe(M);
    const totalKiB = Number(row[1]);
    expect(totalKiB).toBeGreaterThan(0);
    const [mnt, backing] = await Promise.all([statfs(M), statfs(v.cipher)]);
    expect(mnt.bsize).toBeGreaterThan(0);
    const bytes = (s: { blocks: number; bsize: number }) => s.blocks * s.bsize;
    expect(Math.abs(bytes(mnt) - bytes(backing)) / bytes(backing)).toBeLessThan(0.01);
    expect(Math.abs(totalKiB * 1024 - bytes(backing)) / bytes(backing)).toBeLessThan(0.01);
    const sf = await h.spawn('stat', ['-f', '-c', '%l %b %a', M]);
    expect(sf.code, sf.stderr).toBe(0);
    const [namemax, blocks, avail] = sf.stdout.trim().split(' ').map(Number);
    expect(namemax).toBe(255);
    expect(blocks).toBeGreaterThan(0);
    expect(avail).toBeGreaterThan(0);
  });

  it('fsync: once it returns, `sealfs cat` (another process, offline) decrypts the new content, the file still open', async () => {
    const d = await fresh('fsync');
    const path = join(d, 'synced.bin');
    let model: Buffer = randomBytes(3 * MiB + 5);
    const cat = async () => {
      const r = await h.sealfsKeyed(v, 'cat', [path.slice(M.length)]);
      expect(r.code, r.stderr).toBe(0);
      return r.out;
    };
    const fh = await open(path, 'w');
    try {
      await fh.write(model, 0, model.length, 0);
      await fh.sync();
      expect(sha256(await cat())).toBe(sha256(model));
      const patchData = randomBytes(100_000);
      await fh.write(patchData, 0, patchData.length, 1_000_000);
      model = patch(model, 1_000_000, patchData);
      await fh.datasync();
      expect(sha256(await cat())).toBe(sha256(model));
      await fh.write(Buffer.from('end'), 0, 3, model.length);
      model = patch(model, model.length, Buffer.from('end'));
      await fh.sync();
      expect(sha256(await cat())).toBe(sha256(model));
    } finally {
      await fh.close();
    }
    // os.fsync from another process, which runs `sealfs cat` itself before it closes the file.
    const py = await h.python(
      [
        'import os,sys,subprocess,hashlib',
        'fd=os.open(sys.argv[1], os.O_WRONLY)',
        'os.pwrite(fd, b"PYTHON", 5)',
        'os.fsync(fd)',
        'out=subprocess.run(sys.argv[2:], capture_output=True, check=True).stdout',
        'print(hashlib.sha256(out).hexdigest())',
        'os.close(fd)',
      ].join('\n'),
      [path, process.execPath, h.cli, 'cat', v.cipher, path.slice(M.length), '--keystore', v.keystore, '--passphrase-file', v.pass],
    );
    expect(py.code, py.stderr).toBe(0);
    model = patch(model, 5, Buffer.from('PYTHON'));
    expect(py.stdout.trim()).toBe(sha256(model));
  });

  it('several handles and processes on one file: no torn or lost writes (4 processes, disjoint 1 MiB regions, unaligned; 4 processes striping one area)', async () => {
    const d = await fresh('concurrent');
    const path = join(d, 'shared.bin');
    await writeFile(path, '');
    const region = MiB;
    const base = (i: number) => 777 + i * (region + 4097);
    const sources = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const data = randomBytes(region);
        const src = join(h.root, `concurrent-src-${i}`);
        await writeFile(src, data);
        return { data, src };
      }),
    );
    // Each process writes its region in random-sized pieces, in random order.
    const writer = [
      'import os,sys,random',
      'path,src,base,seed=sys.argv[1],sys.argv[2],int(sys.argv[3]),int(sys.argv[4])',
      'data=open(src,"rb").read(); rnd=random.Random(seed)',
      'pieces=[]; at=0',
      'while at < len(data):',
      '    n=min(len(data)-at, rnd.randint(1, 100000)); pieces.append((at,n)); at+=n',
      'rnd.shuffle(pieces)',
      'fd=os.open(path, os.O_RDWR)',
      'for at,n in pieces:',
      '    assert os.pwrite(fd, data[at:at+n], base+at) == n',
      'os.close(fd)',
    ].join('\n');
    // A reader running at the same time must never get an error.
    const reader = 'import os,sys,time\nend=time.time()+float(sys.argv[2])\nn=0\nwhile time.time()<end:\n    fd=os.open(sys.argv[1], os.O_RDONLY); os.read(fd, 8<<20); os.close(fd); n+=1\nprint(n)';
    const runs = await Promise.all([
      ...sources.map((s, i) => h.python(writer, [path, s.src, String(base(i)), String(i + 1)])),
      h.python(reader, [path, '1.5']),
    ]);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    let expected: Buffer = Buffer.alloc(0);
    sources.forEach((s, i) => (expected = patch(expected, base(i), s.data)));
    const got = await contents(path);
    expect(got.length).toBe(expected.length);
    sources.forEach((s, i) => expect(got.subarray(base(i), base(i) + region).equals(s.data), `region ${i}`).toBe(true));
    expect(got.equals(expected)).toBe(true);

    // Four processes striping the same chunks (every chunk has bytes of all four), plus two
    // handles of this process doing the same in a second area.
    const striped = join(d, 'striped.bin');
    const area = 512 * KiB;
    const stripe = 1000;
    await writeFile(striped, Buffer.alloc(area + 300_000));
    const striper = [
      'import os,sys',
      'path,k,area,stripe=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4])',
      'fd=os.open(path, os.O_RDWR)',
      'for at in range(k*stripe, area, 4*stripe):',
      '    n=min(stripe, area-at); assert os.pwrite(fd, bytes([65+k])*n, at) == n',
      'os.close(fd)',
    ].join('\n');
    const handles = await Promise.all([open(striped, 'r+'), open(striped, 'r+')]);
    const own = async () => {
      for (let at = area, k = 0; at < area + 300_000; at += 777, k++) {
        const n = Math.min(777, area + 300_000 - at);
        await handles[k % 2]!.write(Buffer.alloc(n, k % 2 ? 'y' : 'x'), 0, n, at);
      }
    };
    try {
      const [stripers] = await Promise.all([Promise.all([0, 1, 2, 3].map((k) => h.python(striper, [striped, String(k), String(area), String(stripe)]))), own()]);
      for (const r of stripers) expect(r.code, r.stderr).toBe(0);
    } finally {
      await Promise.all(handles.map((fh) => fh.close()));
    }
    const s = await contents(striped);
    expect(s.length).toBe(area + 300_000);
    for (let at = 0; at < area; at += stripe) {
      const k = (at / stripe) % 4;
      const n = Math.min(stripe, area - at);
      expect(s.subarray(at, at + n).equals(Buffer.alloc(n, 65 + k)), `stripe at ${at}`).toBe(true);
    }
    for (let at = area, k = 0; at < area + 300_000; at += 777, k++) {
      const n = Math.min(777, area + 300_000 - at);
      expect(s.subarray(at, at + n).equals(Buffer.alloc(n, k % 2 ? 'y' : 'x')), `own write at ${at}`).toBe(true);
    }
  });

  it('mmap: writes through a shared mapping reach the file (msync, and plain close); mapped reads see what others wrote', async () => {
    const d = await fresh('mmap');
    const path = join(d, 'mapped.bin');
    const initial = randomBytes(300_000);
    await writeFile(path, initial);
    const mapper = [
      'import os,sys,mmap,hashlib',
      'path,mode=sys.argv[1],sys.argv[2]',
      'fd=os.open(path, os.O_RDWR)',
      'if mode=="grow": os.ftruncate(fd, 400000)',
      'size=os.fstat(fd).st_size',
      'm=mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ|mmap.PROT_WRITE)',
      'print(hashlib.sha256(m[:]).hexdigest())',
      'm[100:105]=b"hello"',
      'm[65530:65542]=b"ACROSS-CHUNK"',
      'm[size-5:size]=b"THEND"',
      'if mode=="msync": m.flush()',
      'm.close(); os.close(fd)',
    ].join('\n');
    const edit = (buf: Buffer, size: number) => {
      const out = Buffer.alloc(size);
      buf.copy(out);
      out.write('hello', 100, 'latin1');
      out.write('ACROSS-CHUNK', 65_530, 'latin1');
      out.write('THEND', size - 5, 'latin1');
      return out;
    };
    // msync, then read by another process.
    let r = await h.python(mapper, [path, 'msync']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(sha256(initial));
    let model = edit(initial, initial.length);
    const sum = await h.spawn('sha256sum', [path]);
    expect(sum.stdout.split(' ')[0]).toBe(sha256(model));
    // No msync: munmap and close write the dirty pages back.
    r = await h.python(mapper, [path, 'close']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(sha256(model));
    expect((await contents(path)).equals(model)).toBe(true);
    // Grown with ftruncate, then written through the mapping beyond the old end.
    r = await h.python(mapper, [path, 'grow']);
    expect(r.code, r.stderr).toBe(0);
    model = edit(model, 400_000);
    expect((await contents(path)).equals(model)).toBe(true);
    expect((await stat(await h.cipherPathOf(v, path.slice(M.length)))).size).toBe(sealedSize(400_000));
    // What this process writes, a mapping in another process reads.
    const next = randomBytes(200_000);
    await writeFile(path, next);
    r = await h.python('import os,sys,mmap,hashlib\nfd=os.open(sys.argv[1], os.O_RDONLY)\nm=mmap.mmap(fd, 0, prot=mmap.PROT_READ)\nprint(hashlib.sha256(m[:]).hexdigest())', [path]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(sha256(next));
  });

  it('a big write (100 MiB with dd) reads back with the same sha256, in the sealed size', async () => {
    const d = await fresh('big');
    const src = join(h.root, 'big-source.bin');
    const size = 100 * MiB;
    const gen = await h.spawn('head', ['-c', String(size), '/dev/urandom'], { timeoutMs: 30_000 });
    expect(gen.code).toBe(0);
    await writeFile(src, gen.out);
    const want = sha256(gen.out);
    const path = join(d, 'big.bin');
    const dd = await h.spawn('dd', [`if=${src}`, `of=${path}`, 'bs=1M', 'conv=fsync', 'status=none'], { timeoutMs: 60_000 });
    expect(dd.code, dd.stderr).toBe(0);
    expect((await stat(path)).size).toBe(size);
    const sum = await h.spawn('sha256sum', [path], { timeoutMs: 60_000 });
    expect(sum.code, sum.stderr).toBe(0);
    expect(sum.stdout.split(' ')[0]).toBe(want);
    expect((await stat(await h.cipherPathOf(v, path.slice(M.length)))).size).toBe(sealedSize(size));
    // And back out with cp.
    const copy = join(h.root, 'big-copy.bin');
    const cp = await h.spawn('cp', [path, copy], { timeoutMs: 60_000 });
    expect(cp.code, cp.stderr).toBe(0);
    expect(sha256(await readFile(copy))).toBe(want);
    await unlink(path);
  });

  it('the cipher folder holds no plaintext: no plaintext name, no marker content', async () => {
    const names = (await walk(v.cipher)).map((e) => e.name);
    for (const name of PLAIN_NAMES) expect(names.some((n) => n.includes(name) || n.includes(name.normalize('NFD')))).toBe(false);
    const grep = await h.spawn('grep', ['-r', '-l', '-a', '-F', MARKER, v.cipher]);
    expect(grep.code).toBe(1); // 1: nothing found
    // ...while the mount shows it.
    const shown = await h.spawn('grep', ['-r', '-l', '-a', '-F', MARKER, M]);
    expect(shown.stdout).toContain('report-final.txt');
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('sealfs mount --read-only (real FUSE mount)', { timeout: 60_000 }, () => {
  it('serves reads and answers every change with EROFS, leaving the cipher folder untouched', async () => {
    const ro = await h.vault();
    let pid = await h.mountOk(ro);
    await mkdir(join(ro.mnt, 'dir'));
    await writeFile(join(ro.mnt, 'dir', 'file.txt'), 'read me');
    await symlink('dir/file.txt', join(ro.mnt, 'link'));
    await h.unmountOk(ro, pid);

    const snapshot = async () => {
      const out: string[] = [];
      for (const e of await walk(ro.cipher)) {
        const st = await lstat(join(ro.cipher, e.path));
        out.push(`${e.path} ${st.size} ${st.mode} ${st.mtimeMs} ${st.nlink}`);
      }
      return out;
    };
    const before = await snapshot();
    pid = await h.mountOk(ro, { args: ['--read-only'] });
    const row = (await mountRows()).find((r) => r.mountpoint === ro.mnt)!;
    expect(row.fstype).toBe('fuse.sealfs');
    expect(await readFile(join(ro.mnt, 'dir', 'file.txt'), 'utf8')).toBe('read me');
    expect(await readFile(join(ro.mnt, 'link'), 'utf8')).toBe('read me');
    expect(await readdir(ro.mnt)).toEqual(expect.arrayContaining(['dir', 'link']));

    const f = join(ro.mnt, 'dir', 'file.txt');
    const attempts: [string, () => Promise<unknown>][] = [
      ['open for writing', () => open(f, 'r+').then((fh) => fh.close())],
      ['create', () => writeFile(join(ro.mnt, 'new.txt'), 'x')],
      ['append', () => appendFile(f, 'x')],
      ['truncate', () => truncate(f, 1)],
      ['mkdir', () => mkdir(join(ro.mnt, 'newdir'))],
      ['rmdir', () => rmdir(join(ro.mnt, 'dir'))],
      ['unlink', () => unlink(f)],
      ['rename', () => rename(f, join(ro.mnt, 'moved.txt'))],
      ['symlink', () => symlink('x', join(ro.mnt, 'newlink'))],
      ['link', () => link(f, join(ro.mnt, 'hard'))],
      ['chmod', () => chmod(f, 0o600)],
      ['utimes', () => utimes(f, 1, 1)],
    ];
    for (const [what, attempt] of attempts) expect(await errorCode(attempt()), what).toBe('EROFS');
    const sh = await h.spawn('sh', ['-c', 'echo x > "$0"', join(ro.mnt, 'shell.txt')]);
    expect(sh.code).not.toBe(0);
    expect(sh.stderr).toMatch(/Read-only file system/);
    const dd = await h.spawn('dd', ['if=/dev/zero', `of=${f}`, 'bs=1k', 'count=1', 'conv=notrunc', 'status=none']);
    expect(dd.code).not.toBe(0);
    expect(dd.stderr).toMatch(/Read-only file system/);
    // O_RDONLY opens still work, and so do reads through an opened descriptor.
    const fh = await open(f, constants.O_RDONLY);
    expect((await fh.readFile()).toString()).toBe('read me');
    await fh.close();

    await h.unmountOk(ro, pid);
    expect(await isMounted(ro.mnt)).toBe(false);
    expect(await snapshot()).toEqual(before);
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined || process.getuid?.() !== 0)('sealfs mount --allow-other (real FUSE mount, as root)', { timeout: 60_000 }, () => {
  it("gives new entries to the user who made them, and the kernel checks everyone's permissions", async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v, { args: ['--allow-other', '--others-mode', '777'] });
    const shared = join(v.mnt, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o1777);
    await writeFile(join(shared, 'roots.txt'), 'root only');
    await chmod(join(shared, 'roots.txt'), 0o644);
    // As nobody (65534): the test's folders are private, so the child opens the folder first.
    const r = await h.python(
      [
        'import os,sys,json',
        'd=os.open(sys.argv[1], os.O_RDONLY)',
        'os.setgroups([]); os.setgid(65534); os.setuid(65534)',
        'fd=os.open("mine.txt", os.O_CREAT|os.O_WRONLY, 0o600, dir_fd=d); os.write(fd, b"nobody wrote this"); os.close(fd)',
        'os.mkdir("mydir", dir_fd=d); os.symlink("mine.txt", "mylink", dir_fd=d)',
        'try:',
        '    os.open("roots.txt", os.O_WRONLY, dir_fd=d); denied=False',
        'except PermissionError: denied=True',
        'print(json.dumps({n: [os.lstat(n, dir_fd=d).st_uid, os.lstat(n, dir_fd=d).st_gid] for n in ["mine.txt","mydir","mylink"]} | {"denied": denied}))',
      ].join('\n'),
      [shared],
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ 'mine.txt': [65534, 65534], mydir: [65534, 65534], mylink: [65534, 65534], denied: true });
    // The ciphertext entries carry the same owners, so the sync client sees real ones too.
    const owned: string[] = [];
    for (const e of await walk(v.cipher)) if ((await lstat(join(v.cipher, e.path))).uid === 65534) owned.push(e.kind);
    expect(owned.sort()).toEqual(['dir', 'file', 'symlink']);
    expect((await stat(join(shared, 'roots.txt'))).uid).toBe(0);
    expect(await readFile(join(shared, 'mine.txt'), 'utf8')).toBe('nobody wrote this');
    await h.unmountOk(v, pid);
  });
});
