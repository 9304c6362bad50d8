/**
 * File times on a real mount (issue 12, items 1 and 6): a time set while written data still
 * waits in the server (the write-back gathering, up to writeBackMs) survives that write-back
 * and a remount, to the nanosecond; a write moves the modification time at once; and the
 * cipher file's modification time is the plaintext one (what sync clients compare).
 *
 * Every program runs in a process of its own (cp, tar, touch, python3): the server is another
 * process (`sealfs mount`), and this one only looks with asynchronous calls. The mounts use
 * the default cache time (1 s), so the kernel's attribute cache and the write-back both pass
 * before a time is checked again (SETTLE_MS).
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, sleep, useMountHarness, type TestVault } from './mount-helpers.js';

const h = useMountHarness('mount-times');
if (FUSE_PROBLEM) console.warn(`mount-times: skipped: ${FUSE_PROBLEM}`);

/** Past the write-back (1 s after the first gathered write) and the kernel's attribute cache (1 s). */
const SETTLE_MS = 2500;

/** Nanoseconds since the epoch, as `touch -d` writes them: TIMES[i] for the i-th source file. */
const TIMES = ['2001-02-03 04:05:06.123456789', '1999-12-31 23:59:59.999999999', '2010-06-07 08:09:10.000000001', '2020-01-02 03:04:05.987654321'];
const NS = [981173106_123456789n, 946684799_999999999n, 1275898150_000000001n, 1577934245_987654321n];
/** Access times: other values, so that a swap of the two shows. */
const ATIMES = ['2002-02-03 04:05:06.222222222', '2003-12-31 23:59:59.333333333', '2011-06-07 08:09:10.444444444', '2021-01-02 03:04:05.555555555'];
const ANS = [1012709106_222222222n, 1072915199_333333333n, 1307434150_444444444n, 1609556645_555555555n];

/** Sizes of the source files: inside one gathered write, over a chunk, and past the 2 MiB gathering. */
const SIZES = [100, 70_000, 3 * 1024 * 1024 + 5, 0];

const mtimeNs = async (path: string) => (await stat(path, { bigint: true })).mtimeNs;
const atimeNs = async (path: string) => (await stat(path, { bigint: true })).atimeNs;
const cipherMtimeNs = async (path: string) => (await lstat(path, { bigint: true })).mtimeNs;

async function run(command: string, args: string[]): Promise<string> {
  const r = await h.spawn(command, args, { env: { ...h.env(), TZ: 'UTC' } });
  expect(r.code, `${command} ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Source files (on the local disk) with the times of TIMES/ATIMES and random contents. */
async function sources(name: string): Promise<{ dir: string; files: string[]; data: Buffer[] }> {
  const dir = join(h.root, name);
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const data: Buffer[] = [];
  for (const [i, size] of SIZES.entries()) {
    const file = `f${i}.bin`;
    const bytes = randomBytes(size);
    await writeFile(join(dir, file), bytes);
    await run('touch', ['-m', '-d', `${TIMES[i]} UTC`, join(dir, file)]);
    await run('touch', ['-a', '-d', `${ATIMES[i]} UTC`, join(dir, file)]);
    expect(await mtimeNs(join(dir, file))).toBe(NS[i]);
    files.push(file);
    data.push(bytes);
  }
  await run('touch', ['-m', '-d', `${TIMES[1]} UTC`, dir]);
  return { dir, files, data };
}

/** Mounts `v` again (after `sealfs unmount`): what is read then is what the cipher folder holds. */
async function remount(v: TestVault, pid: number): Promise<number> {
  await h.unmountOk(v, pid);
  return h.mountOk(v);
}

describe.skipIf(FUSE_PROBLEM !== undefined)('file times through a real mount (built CLI, default cache time)', { timeout: 90_000 }, () => {
  it('cp -p and cp -a keep modification and access times to the nanosecond, after the write-back and after a remount; the cipher files carry the same modification times', async () => {
    const src = await sources('cp-src');
    const v = await h.vault();
    let pid = await h.mountOk(v);
    await mkdir(join(v.mnt, 'copy'));
    await run('cp', ['-p', ...src.files.map((f) => join(src.dir, f)), join(v.mnt, 'copy')]);
    // cp -p read the sources, which moved their access times (relatime): cp -a copies those.
    const sourceAtimes = await Promise.all(src.files.map((f) => atimeNs(join(src.dir, f))));
    await run('cp', ['-a', src.dir, join(v.mnt, 'tree-a')]);
    const check = async (when: string) => {
      for (const [folder, atimes] of [['copy', ANS], ['tree-a', sourceAtimes]] as const) {
        for (const [i, file] of src.files.entries()) {
          const path = join(v.mnt, folder, file);
          expect(await mtimeNs(path), `mtime of ${folder}/${file} ${when}`).toBe(NS[i]);
          expect(await atimeNs(path), `atime of ${folder}/${file} ${when}`).toBe(atimes[i]);
        }
      }
      expect(await mtimeNs(join(v.mnt, 'tree-a')), `mtime of the folder tree-a ${when}`).toBe(NS[1]);
    };
    await check('right after cp -p');
    await sleep(SETTLE_MS);
    await check('after the write-back');
    pid = await remount(v, pid);
    await check('after a remount');
    for (const [i, file] of src.files.entries()) {
      expect(await cipherMtimeNs(await h.cipherPathOf(v, `/copy/${file}`)), `cipher mtime of ${file}`).toBe(NS[i]);
      expect(await cipherMtimeNs(await h.cipherPathOf(v, `/tree-a/${file}`)), `cipher mtime of tree-a/${file}`).toBe(NS[i]);
      expect((await readFile(join(v.mnt, 'copy', file))).equals(src.data[i]!), file).toBe(true);
    }
    await h.unmountOk(v, pid);
  });

  it('tar x (GNU tar, pax headers) keeps the archived modification times of files and folders to the nanosecond, also after a remount', async () => {
    const src = await sources('tar-src/tree/sub');
    const tree = join(h.root, 'tar-src', 'tree');
    await run('touch', ['-m', '-d', `${TIMES[3]} UTC`, join(h.root, 'tar-src', 'tree', 'sub')]);
    await run('touch', ['-m', '-d', `${TIMES[0]} UTC`, tree]);
    const archive = join(h.root, 'times.tar');
    await run('tar', ['--format=posix', '-cf', archive, '-C', join(h.root, 'tar-src'), 'tree']);
    const v = await h.vault();
    let pid = await h.mountOk(v);
    await run('tar', ['-xf', archive, '-C', v.mnt]);
    const check = async (when: string) => {
      for (const [i, file] of src.files.entries()) expect(await mtimeNs(join(v.mnt, 'tree', 'sub', file)), `mtime of ${file} ${when}`).toBe(NS[i]);
      expect(await mtimeNs(join(v.mnt, 'tree', 'sub')), `mtime of tree/sub ${when}`).toBe(NS[3]);
      expect(await mtimeNs(join(v.mnt, 'tree')), `mtime of tree ${when}`).toBe(NS[0]);
    };
    await sleep(SETTLE_MS);
    await check('after the write-back');
    pid = await remount(v, pid);
    await check('after a remount');
    for (const [i, file] of src.files.entries()) expect((await readFile(join(v.mnt, 'tree', 'sub', file))).equals(src.data[i]!), file).toBe(true);
    await h.unmountOk(v, pid);
  });

  it('a program that writes, sets the times through its open descriptor (futimens) and closes keeps them, also after a remount', async () => {
    const v = await h.vault();
    let pid = await h.mountOk(v);
    const path = join(v.mnt, 'futimens.bin');
    // Written in small pieces (gathered), the times set before close, then close.
    const script = [
      'import os, sys',
      'fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)',
      'for i in range(100): os.write(fd, bytes([i]) * 1000)',
      'os.utime(fd, ns=(int(sys.argv[2]), int(sys.argv[3])))',
      'st = os.fstat(fd)',
      'print(st.st_atime_ns, st.st_mtime_ns)',
      'os.close(fd)',
    ].join('\n');
    const r = await h.python(script, [path, String(ANS[0]), String(NS[0])]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${ANS[0]} ${NS[0]}`);
    await sleep(SETTLE_MS);
    expect(await mtimeNs(path)).toBe(NS[0]);
    expect(await atimeNs(path)).toBe(ANS[0]);
    pid = await remount(v, pid);
    expect(await mtimeNs(path)).toBe(NS[0]);
    expect(await atimeNs(path)).toBe(ANS[0]);
    expect((await readFile(path)).length).toBe(100_000);
    expect(await cipherMtimeNs(await h.cipherPathOf(v, '/futimens.bin'))).toBe(NS[0]);
    await h.unmountOk(v, pid);
  });

  it('a write moves the modification time at once (before the write-back), and the write-back gives the cipher file that same time', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const path = join(v.mnt, 'written.txt');
    await writeFile(path, 'old contents');
    await utimes(path, 1_000_000_000, 1_000_000_000);
    const cipherPath = await h.cipherPathOf(v, '/written.txt');
    // Another process writes and looks at once, through its descriptor and by name, still open.
    const script = [
      'import os, sys, time',
      'fd = os.open(sys.argv[1], os.O_WRONLY)',
      'before = os.stat(sys.argv[1]).st_mtime_ns',
      'os.pwrite(fd, b"new", 0)',
      'print(before, os.fstat(fd).st_mtime_ns, os.stat(sys.argv[1]).st_mtime_ns, time.time_ns())',
      'sys.stdout.flush()',
      'time.sleep(float(sys.argv[2]))',
      'print(os.fstat(fd).st_mtime_ns)',
      'os.close(fd)',
    ].join('\n');
    const r = await h.python(script, [path, String(SETTLE_MS / 1000)]);
    expect(r.code, r.stderr).toBe(0);
    const [line1, line2] = r.stdout.trim().split('\n');
    const [before, viaFd, byName, now] = line1!.split(' ').map(BigInt);
    expect(before).toBe(1_000_000_000_000_000_000n);
    expect(viaFd).toBe(byName);
    expect(viaFd! > before!).toBe(true);
    // The time of the write: not older than 10 s, not in the future.
    expect(viaFd! > now! - 10_000_000_000n && viaFd! <= now!).toBe(true);
    // After the write-back (the file still open), the time shown is still the write's.
    expect(BigInt(line2!)).toBe(viaFd);
    expect(await mtimeNs(path)).toBe(viaFd);
    expect(await cipherMtimeNs(cipherPath)).toBe(viaFd);
    expect(await readFile(path, 'utf8')).toBe('new contents');
    await h.unmountOk(v, pid);
  });

  it('touch -d with nanoseconds, on a file, a folder and (touch -h) a symlink, shows exactly through the mount and on the cipher entries', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const file = join(v.mnt, 'f.txt');
    const dir = join(v.mnt, 'd');
    const link = join(v.mnt, 'l');
    await writeFile(file, 'x');
    await mkdir(dir);
    await run('ln', ['-s', 'f.txt', link]);
    await run('touch', ['-d', `${TIMES[0]} UTC`, file]);
    await run('touch', ['-d', `${TIMES[1]} UTC`, dir]);
    await run('touch', ['-h', '-d', `${TIMES[2]} UTC`, link]);
    // touch -m: the modification time alone, the access time left.
    await run('touch', ['-a', '-d', `${ATIMES[3]} UTC`, file]);
    const expected: [string, bigint][] = [[file, NS[0]!], [dir, NS[1]!]];
    for (const [path, ns] of expected) {
      expect(await mtimeNs(path), path).toBe(ns);
      expect(await cipherMtimeNs(await h.cipherPathOf(v, path.slice(v.mnt.length))), `cipher of ${path}`).toBe(ns);
    }
    expect((await lstat(link, { bigint: true })).mtimeNs).toBe(NS[2]);
    expect(await cipherMtimeNs(await h.cipherPathOf(v, '/l'))).toBe(NS[2]);
    expect(await atimeNs(file)).toBe(ANS[3]);
    // `stat` as a user sees it; no birth time (FUSE passes none).
    expect((await run('stat', ['-c', '%y|%w', file])).trim()).toBe(`${TIMES[0]} +0000|-`);
    await h.unmountOk(v, pid);
  });

  it('the access time: a read through the mount moves it as relatime does, the server\'s own reads (open, write-back) do not', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const file = join(v.mnt, 'a.bin');
    await writeFile(file, randomBytes(200_000));
    // Older than the modification time: the next read moves it to now.
    await run('touch', ['-a', '-d', `${ATIMES[0]} UTC`, file]);
    await sleep(SETTLE_MS);
    const start = BigInt(Date.now() - 1000) * 1_000_000n;
    expect(await atimeNs(file)).toBe(ANS[0]);
    await run('cat', [file]);
    await sleep(SETTLE_MS);
    const moved = await atimeNs(file);
    expect(moved >= start).toBe(true);
    // Newer than the modification time and less than a day old: a read leaves it.
    const recent = BigInt(Date.now() - 3600_000) * 1_000_000n + 123n;
    const r = await h.python('import os, sys; os.utime(sys.argv[1], ns=(int(sys.argv[2]), int(sys.argv[3])))', [file, String(recent), String(recent - 1_000_000_000n)]);
    expect(r.code, r.stderr).toBe(0);
    await run('cat', [file]);
    // A write that re-seals a partly written chunk reads it from the cipher file: no access.
    await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1', 'count=10', 'seek=1000', 'conv=notrunc', 'status=none']);
    await sleep(SETTLE_MS);
    expect(await atimeNs(file)).toBe(recent);
    const cipherPath = await h.cipherPathOf(v, '/a.bin');
    expect((await lstat(cipherPath, { bigint: true })).atimeNs).toBe(recent);
    // A read-only mount leaves the cipher folder as it is: a read moves no time there.
    await run('touch', ['-a', '-d', `${ATIMES[0]} UTC`, file]);
    await h.unmountOk(v, pid);
    const before = await lstat(cipherPath, { bigint: true });
    const roPid = await h.mountOk(v, { args: ['--read-only'] });
    await run('cat', [file]);
    const after = await lstat(cipherPath, { bigint: true });
    expect([after.atimeNs, after.mtimeNs, after.ctimeNs]).toEqual([before.atimeNs, before.mtimeNs, before.ctimeNs]);
    await h.unmountOk(v, roPid);
  });
});
