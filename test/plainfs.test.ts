import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateMasterKey } from '../src/crypto/keyfile.js';
import { newVaultConfig, writeVaultFile } from '../src/vault/vaultfile.js';
import { openVault } from '../src/vault/vault.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { FormatError } from '../src/crypto/errors.js';
import { ERRNO, errnoOf } from '../src/fs/errno.js';
import { statfsFigures } from '../src/fs/kernel.js';
import { NameError } from '../src/vault/errors.js';
import { cacheTimes, DEFAULT_SETTINGS, mountSettings } from '../src/vault/settings.js';

let dir: string;
let fs: PlainFs;
const key = generateMasterKey();
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealfs-plainfs-'));
  await writeVaultFile(dir, newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255 }), key);
  fs = new PlainFs(await openVault(dir, key, { backend: 'node' }));
});
afterEach(async () => {
  await fs.releaseAll();
  await rm(dir, { recursive: true, force: true });
});

describe('PlainFs without FUSE', () => {
  it('creates, writes, reads, lists, renames and removes', async () => {
    await fs.mkdir('/docs', 0o755);
    const fh = await fs.create('/docs/a.txt', 0o644);
    await fs.write(fh, 0, enc('hello world'));
    await fs.write(fh, 10000, enc('tail'));
    expect((await fs.getattr('/docs/a.txt')).size).toBe(10004);
    await fs.release(fh);
    expect((await fs.getattr('/docs/a.txt')).size).toBe(10004);
    const rh = await fs.open('/docs/a.txt', constants.O_RDONLY);
    expect(dec(await fs.read(rh, 0, 11))).toBe('hello world');
    expect(dec(await fs.read(rh, 10000, 100))).toBe('tail');
    await fs.release(rh);
    expect(await fs.readdir('/')).toEqual(['docs']);
    await fs.rename('/docs', '/papers');
    expect(await fs.readdir('/papers')).toEqual(['a.txt']);
    await fs.symlink('../x/y', '/papers/link');
    expect(await fs.readlink('/papers/link')).toBe('../x/y');
    await fs.link('/papers/a.txt', '/b.txt');
    expect((await fs.getattr('/b.txt')).size).toBe(10004);
    await fs.mkdir('/' + 'n'.repeat(200), 0o755);
    expect((await fs.readdir('/')).sort()).toEqual(['b.txt', 'n'.repeat(200), 'papers']);
    await fs.rmdir('/' + 'n'.repeat(200));
    await fs.unlink('/papers/link');
    await fs.unlink('/papers/a.txt');
    await fs.rmdir('/papers');
    expect(await fs.readdir('/')).toEqual(['b.txt']);
    const raw = await readdir(dir);
    expect(raw.length).toBe(2);
  });

  it('rename with noReplace (RENAME_NOREPLACE) refuses an existing target with EEXIST and moves onto a free name', async () => {
    for (const [path, text] of [['/a', 'A'], ['/b', 'B']]) {
      const fh = await fs.create(path!, 0o644);
      await fs.write(fh, 0, enc(text!));
      await fs.release(fh);
    }
    await expect(fs.rename('/a', '/b', true)).rejects.toMatchObject({ code: 'EEXIST' });
    await fs.rename('/a', '/c', true);
    expect((await fs.readdir('/')).sort()).toEqual(['b', 'c']);
    const fh = await fs.open('/b', constants.O_RDONLY);
    expect(dec(await fs.read(fh, 0, 10))).toBe('B');
    await fs.release(fh);
  });

  it('a write of nothing changes nothing, also past the end (as pwrite(2))', async () => {
    const fh = await fs.create('/z.txt', 0o644);
    await fs.write(fh, 0, enc('abc'));
    expect(await fs.write(fh, 9000, new Uint8Array(0))).toBe(0);
    expect((await fs.fgetattr(fh)).size).toBe(3);
    await fs.release(fh);
    expect((await fs.getattr('/z.txt')).size).toBe(3);
  });
});

/** The errno a kernel request gets for this PlainFs call (0 on success), as src/fs/kernel.ts answers. */
function errnoFor(work: Promise<unknown>, log: (line: string) => void = () => {}): Promise<number> {
  return work.then(
    () => 0,
    (err: unknown) => errnoOf(err, 'test', log),
  );
}

describe('a hostile cipher folder', () => {
  it('an entry swapped for another type after the listing is EIO for getattr, never shown as its new type', async () => {
    await fs.release(await fs.create('/f', 0o644));
    await fs.readdir('/');
    const cipherName = (await readdir(dir)).find((name) => name !== 'sealfs.vault')!;
    await rm(join(dir, cipherName));
    await mkdir(join(dir, cipherName));
    await expect(fs.getattr('/f')).rejects.toMatchObject({ code: 'EIO' });
  });

  it('a folder planted where a long name\'s sidecar was, after the listing: unlinking the entry leaves the folder and its files', async () => {
    const long = 'L'.repeat(240);
    await fs.release(await fs.create(`/${long}`, 0o644));
    await fs.readdir('/'); // the listing that PlainFs then trusts
    const sidecar = (await readdir(dir)).find((name) => name.endsWith('.sfn'))!;
    await rm(join(dir, sidecar));
    await mkdir(join(dir, sidecar));
    await writeFile(join(dir, sidecar, 'kept'), 'the provider\'s');
    await fs.unlink(`/${long}`);
    expect(await readFile(join(dir, sidecar, 'kept'), 'utf8')).toBe('the provider\'s');
  });
});

describe('PlainFs as the mount answers it: results and errno values', () => {
  it('answers data, sizes, handles and the errno of every failure, logging nothing ordinary', async () => {
    const logged: string[] = [];
    const log = (line: string) => logged.push(line);
    const root = await fs.getattr('/');
    expect((root.mode & 0o170000) >>> 0).toBe(0o040000);

    const fh = await fs.create('/a.txt', 0o644, undefined, constants.O_RDWR);
    expect(fh).toBeGreaterThan(0);
    expect(await fs.write(fh, 0, enc('hello, fuse'))).toBe(11);
    expect(dec(await fs.read(fh, 0, 100))).toBe('hello, fuse');
    expect((await fs.read(fh, 1000, 100)).length).toBe(0);
    await fs.flush(fh);
    await fs.fsync(fh);
    await fs.ftruncate(fh, 5);
    await fs.release(fh);
    const st = await fs.getattr('/a.txt');
    expect(st.size).toBe(5);
    expect(st.mode & 0o777).toBe(0o644);

    expect(await fs.readdir('/')).toEqual(['a.txt']);
    expect(await errnoFor(fs.getattr('/missing'), log)).toBe(ERRNO.ENOENT);
    expect(await errnoFor(fs.mkdir('/d', 0o755), log)).toBe(0);
    expect(await errnoFor(fs.mkdir('/d', 0o755), log)).toBe(ERRNO.EEXIST);
    expect(await errnoFor(fs.symlink('a.txt', '/d/l'), log)).toBe(0);
    expect(await fs.readlink('/d/l')).toBe('a.txt');
    expect(await errnoFor(fs.rmdir('/d'), log)).toBe(ERRNO.ENOTEMPTY);
    expect(await errnoFor(fs.unlink('/d'), log)).toBe(ERRNO.EISDIR);
    expect(await errnoFor(fs.open('/d', 0), log)).toBe(ERRNO.EISDIR);
    expect(await errnoFor(fs.rmdir('/a.txt'), log)).toBe(ERRNO.ENOTDIR);
    expect(await errnoFor(fs.readlink('/a.txt'), log)).toBe(ERRNO.EINVAL);
    expect(await errnoFor(fs.read(9999, 0, 10), log)).toBe(ERRNO.EBADF);
    expect(await errnoFor(fs.create('/' + 'x'.repeat(300), 0o644), log)).toBe(ERRNO.ENAMETOOLONG);
    expect(await errnoFor(fs.rename('/a.txt', '/d/b.txt'), log)).toBe(0);
    expect(await errnoFor(fs.truncate('/d/b.txt', 0), log)).toBe(0);
    expect(await errnoFor(fs.chmod('/d/b.txt', 0o600), log)).toBe(0);
    expect((await fs.getattr('/d/b.txt')).mode & 0o777).toBe(0o600);

    // utimens: both times; then the modification time alone (the access time omitted, as `tar x` does).
    await fs.utimens('/d/b.txt', new Date(1_000_000_000_000), new Date(1_100_000_000_000));
    let times = await fs.getattr('/d/b.txt');
    expect(times.mtime.getTime()).toBe(1_100_000_000_000);
    const atimeBefore = times.atime.getTime();
    await fs.utimens('/d/b.txt', undefined, new Date(1_200_000_000_000));
    times = await fs.getattr('/d/b.txt');
    expect(times.mtime.getTime()).toBe(1_200_000_000_000);
    expect(times.atime.getTime()).toBe(atimeBefore);

    for (const value of Object.values(statfsFigures(await fs.statfs()))) expect(value >= 0 && value < 2 ** 32).toBe(true);
    expect(logged).toEqual([]);
  });

  it('answers EROFS on a read-only file system', async () => {
    const readOnly = new PlainFs(fs.vault, { readOnly: true });
    expect(await errnoFor(readOnly.create('/new', 0o644))).toBe(ERRNO.EROFS);
    expect(await errnoFor(readOnly.mkdir('/new', 0o755))).toBe(ERRNO.EROFS);
  });

  it('maps errors to errno values in one function, logging only the unexpected', () => {
    const logged: string[] = [];
    const log = (line: string) => logged.push(line);
    const err = (code: string) => Object.assign(new Error(code), { code });
    expect(errnoOf(err('ENOENT'), 'x', log)).toBe(2);
    expect(errnoOf(err('ENOTEMPTY'), 'x', log)).toBe(ERRNO.ENOTEMPTY);
    expect(errnoOf(err('EXDEV'), 'x', log)).toBe(ERRNO.EXDEV);
    expect(errnoOf(err('ENOSPC'), 'x', log)).toBe(ERRNO.ENOSPC);
    expect(errnoOf(new NameError('too-long', 'file name is longer than 255 bytes'), 'x', log)).toBe(ERRNO.ENAMETOOLONG);
    expect(errnoOf(new NameError('invalid', 'invalid file name "."'), 'x', log)).toBe(ERRNO.EINVAL);
    // PlainFs's own EIO (an integrity failure it already logged) is not logged twice.
    expect(errnoOf(err('EIO'), 'x', log)).toBe(ERRNO.EIO);
    expect(logged).toEqual([]);
    expect(errnoOf(new FormatError('corrupt-chunk', 'chunk 3 failed authentication', 3), 'read /f', log)).toBe(ERRNO.EIO);
    expect(errnoOf(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', syscall: 'read' }), 'read /g', log)).toBe(ERRNO.EIO);
    expect(errnoOf(new TypeError('boom'), 'write /f', log)).toBe(ERRNO.EIO);
    expect(errnoOf('not even an error', 'read /f', log)).toBe(ERRNO.EIO);
    expect(logged).toHaveLength(4);
    expect(logged[0]).toMatch(/^read \/f: integrity: /);
    expect(logged[1]).toMatch(/^read \/g: EIO/);
    expect(logged[2]).toMatch(/^write \/f: unexpected error: TypeError: boom/);
  });

  it('reports large file systems in 32-bit block counts', () => {
    const base = { bsize: 4096, files: 10, ffree: 5, namemax: 255 };
    const small = statfsFigures({ ...base, blocks: 1000, bfree: 500, bavail: 400 });
    expect(small).toMatchObject({ BSIZE: 4096, FRSIZE: 4096, BLOCKS: 1000, BFREE: 500, BAVAIL: 400, NAMEMAX: 255 });
    const huge = statfsFigures({ ...base, blocks: 2 ** 40, bfree: 2 ** 39, bavail: 2 ** 38 });
    expect(huge.BLOCKS).toBeLessThan(2 ** 32);
    expect(huge.FRSIZE * huge.BLOCKS).toBe(4096 * 2 ** 40);
    expect(huge.FRSIZE * huge.BAVAIL).toBe(4096 * 2 ** 38);
  });
});

describe('settings passed to the vault, not switched globally', () => {
  it('trusts a listing for listingTtlMs: a change made beside the vault shows after it, not before', async () => {
    const other = new PlainFs(await openVault(dir, key, { backend: 'node' }));
    const quick = new PlainFs(await openVault(dir, key, { backend: 'node', settings: { ...DEFAULT_SETTINGS, ...cacheTimes(0.05) } }));
    expect(await other.readdir('/')).toEqual([]);
    expect(await quick.readdir('/')).toEqual([]);
    await fs.release(await fs.create('/new.txt', 0o644));
    // The default (1 s) still serves its listing; 50 ms later the short setting has read again.
    expect(await other.readdir('/')).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await quick.readdir('/')).toEqual(['new.txt']);
    expect(fs.vault.settings).toEqual(DEFAULT_SETTINGS);
    expect(DEFAULT_SETTINGS).toMatchObject({ attrTimeoutMs: 1000, entryTimeoutMs: 1000, listingTtlMs: 1000, revalidateMs: 1000, writeBackMs: 1000, directIo: false });
    expect(mountSettings(0.1)).toMatchObject({ attrTimeoutMs: 100, listingTtlMs: 100, writeBackMs: 100, directIo: true });
  });

  it('writes gathered data out within writeBackMs', async () => {
    const quick = new PlainFs(await openVault(dir, key, { backend: 'node', settings: { ...DEFAULT_SETTINGS, ...cacheTimes(0.05) } }));
    const fh = await quick.create('/w.txt', 0o644);
    await quick.write(fh, 0, enc('x'.repeat(100)));
    const reader = new PlainFs(await openVault(dir, key, { backend: 'node', settings: { ...DEFAULT_SETTINGS, ...cacheTimes(0) } }));
    expect((await reader.getattr('/w.txt')).size).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await reader.getattr('/w.txt')).size).toBe(100);
    await quick.release(fh);
  });
});

describe('file times with writes gathered for the write-back', () => {
  it('a write shows its time at once; a time set while data waits survives the write-back; the cipher file gets the plaintext time', async () => {
    const settings = { ...DEFAULT_SETTINGS, ...cacheTimes(0.05) };
    const quick = new PlainFs(await openVault(dir, key, { backend: 'node', settings }));
    const fh = await quick.create('/t.txt', 0o644);
    await quick.write(fh, 0, enc('first'));
    await quick.flush(fh);
    const cipherPath = (await quick.vault.tree.resolve('/t.txt')).cipherPath;
    const cipherMtime = async () => (await lstat(cipherPath, { bigint: true })).mtimeNs;
    const old = 1_000_000_000_123456789n;
    await quick.utimens('/t.txt', old, old);
    expect((await quick.getattr('/t.txt')).mtimeNs).toBe(old);

    // A gathered write: its time shows at once (getattr and through the handle), the cipher
    // file still has the old one; after the write-back the cipher file has the write's time.
    const before = BigInt(Date.now() - 1) * 1_000_000n;
    await quick.write(fh, 5, enc(' second'));
    const written = (await quick.getattr('/t.txt')).mtimeNs;
    expect(written).toBeGreaterThanOrEqual(before);
    expect((await quick.fgetattr(fh)).mtimeNs).toBe(written);
    expect((await quick.getattr('/t.txt')).ctimeNs).toBeGreaterThanOrEqual(written);
    // Until the write-back the cipher file keeps the old time, unless reserving room for the
    // growing write (fallocate, FALLOC_FL_KEEP_SIZE, just before the write) moved it, as ext4 does.
    const waiting = await cipherMtime();
    expect(waiting === old || waiting >= before).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200)); // past writeBackMs
    expect(await cipherMtime()).toBe(written);
    expect((await quick.getattr('/t.txt')).mtimeNs).toBe(written);

    // A time set (by path, then by handle) while a write waits: kept by its write-back.
    await quick.write(fh, 0, enc('F'));
    await quick.utimens('/t.txt', undefined, 1_100_000_000_000000001n);
    expect((await quick.getattr('/t.txt')).mtimeNs).toBe(1_100_000_000_000000001n);
    await quick.flush(fh);
    expect(await cipherMtime()).toBe(1_100_000_000_000000001n);
    await quick.write(fh, 1, enc('I'));
    await quick.futimens(fh, 1_200_000_000_000000002n, 1_300_000_000_000000003n);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await cipherMtime()).toBe(1_300_000_000_000000003n);
    expect((await lstat(cipherPath, { bigint: true })).atimeNs).toBe(1_200_000_000_000000002n);
    // A write after the time was set moves it again.
    await quick.write(fh, 2, enc('R'));
    expect((await quick.getattr('/t.txt')).mtimeNs).toBeGreaterThanOrEqual(before);
    await quick.release(fh);
    expect(await cipherMtime()).toBeGreaterThanOrEqual(before);
    const rh = await quick.open('/t.txt', constants.O_RDONLY);
    expect(dec(await quick.read(rh, 0, 100))).toBe('FIRst second');
    await quick.release(rh);
  });
});

describe('a file rewritten in place by a sync client while it is open', () => {
  it('a write that arrives while a read checks the rewritten file goes to the new version: never lost, never written over it later', async () => {
    const settings = { ...DEFAULT_SETTINGS, ...cacheTimes(0.05) };
    const quick = new PlainFs(await openVault(dir, key, { backend: 'node', settings }));
    const fh = await quick.create('/f.txt', 0o644);
    await quick.write(fh, 0, enc('a'.repeat(100)));
    await quick.flush(fh);
    const fh2 = await quick.open('/f.txt', constants.O_RDWR);
    // Another machine's longer version, written over the same cipher file in place.
    const other = new PlainFs(await openVault(dir, key, { backend: 'node' }));
    const gh = await other.create('/g.txt', 0o644);
    await other.write(gh, 0, enc('b'.repeat(300)));
    await other.release(gh);
    const cipherOf = async (plain: string) => (await other.vault.tree.resolve(plain)).cipherPath;
    await writeFile(await cipherOf('/f.txt'), await readFile(await cipherOf('/g.txt')));
    await new Promise((resolve) => setTimeout(resolve, 80)); // past revalidateMs

    const [head] = await Promise.all([quick.read(fh, 0, 10), quick.write(fh2, 0, enc('WRITE'))]);
    expect(dec(head)).toMatch(/^(b{10}|WRITEb{5})$/);
    await quick.release(fh2);
    await quick.release(fh);
    await new Promise((resolve) => setTimeout(resolve, 200)); // any write-back still due

    const reader = new PlainFs(await openVault(dir, key, { backend: 'node' }));
    const rh = await reader.open('/f.txt', constants.O_RDONLY);
    expect(dec(await reader.read(rh, 0, 1000))).toBe('WRITE' + 'b'.repeat(295));
    await reader.release(rh);
  });
});
