/**
 * Special files as a vault stores them (FORMAT.md §14: an empty regular file whose name says
 * FIFO, socket or device) and renameat2's flags (RENAME_NOREPLACE, RENAME_EXCHANGE), through
 * PlainFs on real temp folders: what the cipher folder holds, what a reader shows, what
 * tampering looks like, and that names stay right when the vault is opened again.
 * test/mount-special.test.ts does the same through a real mount.
 */
import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERRNO, errnoOf } from '../src/fs/errno.js';
import { scrubVault } from '../src/tools/scrub.js';
import { exportTree, listDirectory } from '../src/tools/offline.js';
import { RENAME_NOREPLACE } from '../src/vault/cipherio.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { openVault } from '../src/vault/vault.js';
import { newVaultConfig, writeVaultFile } from '../src/vault/vaultfile.js';

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
let work: string;
const opened: PlainFs[] = [];

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'sealfs-specialfiles-'));
});
afterEach(async () => {
  for (const fs of opened.splice(0)) await fs.releaseAll();
  await rm(work, { recursive: true, force: true });
});

async function newVault(maxNameLength = 255) {
  const dir = await mkdtemp(join(work, 'cipher-'));
  await writeVaultFile(dir, newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength }), KEY);
  return { dir, fs: await reopen(dir) };
}

async function reopen(dir: string) {
  const log: string[] = [];
  const fs = new PlainFs(await openVault(dir, KEY, { backend: 'node' }), { log: (line) => log.push(line) });
  opened.push(fs);
  return Object.assign(fs, { lines: log });
}

const text = new TextEncoder();
async function writeFileIn(fs: PlainFs, path: string, content: string) {
  const fh = await fs.create(path, 0o644);
  await fs.write(fh, 0, text.encode(content));
  await fs.release(fh);
}
async function readIn(fs: PlainFs, path: string) {
  const fh = await fs.open(path, constants.O_RDONLY);
  try {
    return new TextDecoder().decode(await fs.read(fh, 0, 1 << 16));
  } finally {
    await fs.release(fh);
  }
}
const code = (err: unknown) => errnoOf(err, 'test', () => {});
const failure = (promise: Promise<unknown>) => promise.then(() => 0, code);
const cipherNames = async (dir: string) => (await readdir(dir)).filter((name) => name !== 'sealfs.vault').sort();

const CHR_1_3 = (1 << 8) | 3; // /dev/null's number, makedev(1, 3)

describe('special files', () => {
  it('mknod stores each kind as an empty regular file with an undecryptable name, shown with its type, mode and device number, also after reopening', async () => {
    const { dir, fs } = await newVault();
    await fs.mknod('/pipe', constants.S_IFIFO | 0o640, 0);
    await fs.mknod('/sock', constants.S_IFSOCK | 0o755, 0);
    await fs.mknod('/null', constants.S_IFCHR | 0o644, CHR_1_3);
    await fs.mknod('/disk', constants.S_IFBLK | 0o600, (8 << 8) | 1);
    await fs.mknod('/plain', constants.S_IFREG | 0o644, 0);
    const sizes: number[] = [];
    for (const cipherName of await cipherNames(dir)) {
      const st = await lstat(join(dir, cipherName));
      sizes.push(st.size);
      expect(st.isFile(), cipherName).toBe(true);
      // The names are nowhere in the cipher names.
      expect(cipherName).toMatch(/^[a-z2-7]+$/);
      for (const plain of ['pipe', 'sock', 'null', 'disk', 'plain']) expect(cipherName).not.toContain(plain);
    }
    // Four empty files (the special ones) and the regular file's sealed empty contents.
    expect(sizes.filter((size) => size === 0)).toHaveLength(4);
    for (const fsNow of [fs, await reopen(dir)]) {
      expect((await fsNow.readdir('/')).sort()).toEqual(['disk', 'null', 'pipe', 'plain', 'sock']);
      const pipe = await fsNow.getattr('/pipe');
      expect(pipe.mode).toBe(constants.S_IFIFO | 0o640);
      expect([pipe.size, pipe.rdev]).toEqual([0, 0]);
      expect((await fsNow.getattr('/sock')).mode).toBe(constants.S_IFSOCK | 0o755);
      const dev = await fsNow.getattr('/null');
      expect([dev.mode, dev.rdev]).toEqual([constants.S_IFCHR | 0o644, CHR_1_3]);
      expect((await fsNow.getattr('/disk')).rdev).toBe((8 << 8) | 1);
      expect((await fsNow.getattr('/plain')).mode).toBe(constants.S_IFREG | 0o644);
      expect(await readIn(fsNow, '/plain')).toBe('');
      // Only the kernel opens a special file: offline, opening one is ENXIO.
      expect(await failure(fsNow.open('/pipe', constants.O_RDONLY))).toBe(ERRNO.ENXIO);
    }
    expect(await failure(fs.mknod('/pipe', constants.S_IFIFO | 0o644, 0))).toBe(ERRNO.EEXIST);
    expect((await scrubVault({ cipherDir: dir, masterKey: KEY })).problems).toEqual([]);
  });

  it('chmod, hard links, rename (also into another folder and to a long name) and unlink keep what a special file is', async () => {
    const { dir, fs } = await newVault(64);
    await fs.mkdir('/d', 0o755);
    await fs.mknod('/pipe', constants.S_IFIFO | 0o644, 0);
    await fs.chmod('/pipe', 0o600);
    await fs.link('/pipe', '/d/same pipe');
    const long = 'a FIFO with a name long enough to be stored as a long name.fifo';
    await fs.rename('/pipe', `/d/${long}`);
    await fs.mknod('/d/tty', constants.S_IFCHR | 0o620, (4 << 8) | 1);
    for (const fsNow of [fs, await reopen(dir)]) {
      expect((await fsNow.readdir('/')).sort()).toEqual(['d']);
      expect((await fsNow.readdir('/d')).sort()).toEqual([long, 'same pipe', 'tty']);
      for (const name of [long, 'same pipe']) {
        const st = await fsNow.getattr(`/d/${name}`);
        expect([st.mode, st.nlink]).toEqual([constants.S_IFIFO | 0o600, 2]);
      }
      expect((await fsNow.getattr('/d/tty')).rdev).toBe((4 << 8) | 1);
    }
    const cipherD = join(dir, (await cipherNames(dir))[0]!);
    expect((await readdir(cipherD)).filter((name) => name.endsWith('.sfn'))).toHaveLength(1);
    await fs.unlink(`/d/${long}`);
    await fs.unlink('/d/same pipe');
    expect(await fs.readdir('/d')).toEqual(['tty']);
    expect(await readdir(cipherD)).toHaveLength(1); // the sidecar went with its entry
    expect((await scrubVault({ cipherDir: dir, masterKey: KEY })).problems).toEqual([]);
  });

  it('a cipher file under a special name that is not empty is tampering: shown as an empty file without access, EIO on open, reported by scrub', async () => {
    const { dir, fs } = await newVault();
    await fs.mknod('/pipe', constants.S_IFIFO | 0o644, 0);
    const [cipherName] = await cipherNames(dir);
    await writeFile(join(dir, cipherName!), 'written behind sealfs\'s back');
    const again = await reopen(dir);
    expect(await again.readdir('/')).toEqual(['pipe']);
    const st = await again.getattr('/pipe');
    expect([st.mode, st.size]).toEqual([constants.S_IFREG, 0]);
    expect(await failure(again.open('/pipe', constants.O_RDONLY))).toBe(ERRNO.EIO);
    expect(again.lines.some((line) => line.includes('integrity: /pipe') && line.includes('must be empty'))).toBe(true);
    const problems = (await scrubVault({ cipherDir: dir, masterKey: KEY })).problems;
    expect(problems.map((p) => [p.kind, p.rel])).toEqual([['special-not-empty', cipherName]]);
  });

  it('a real FIFO planted under a special file\'s name stays hostile junk: listed as the swapped entry, never opened, reported by scrub', async () => {
    const { dir, fs } = await newVault();
    await fs.mknod('/pipe', constants.S_IFIFO | 0o644, 0);
    const [cipherName] = await cipherNames(dir);
    await rm(join(dir, cipherName!));
    expect(spawnSync('mkfifo', [join(dir, cipherName!)]).status).toBe(0);
    const again = await reopen(dir);
    expect(await again.readdir('/')).toEqual(['pipe']);
    const st = await again.getattr('/pipe');
    expect([st.mode, st.size]).toEqual([constants.S_IFREG, 0]);
    expect(await failure(again.open('/pipe', constants.O_RDONLY))).toBe(ERRNO.EIO);
    expect(again.lines.join('\n')).toMatch(/a FIFO in place of a FIFO \(stored as an empty file\)/);
    const problems = (await scrubVault({ cipherDir: dir, masterKey: KEY })).problems;
    expect(problems.map((p) => [p.kind, p.rel])).toEqual([['unexpected-type', cipherName]]);
  });

  it('offline ls shows each special file with its type', async () => {
    const { fs } = await newVault();
    await fs.mknod('/pipe', constants.S_IFIFO | 0o644, 0);
    await fs.mknod('/null', constants.S_IFCHR | 0o666, CHR_1_3);
    const listed = await listDirectory(fs, '/');
    expect(listed.map((e) => [e.name, e.type, e.size, e.rdev])).toEqual([
      ['null', 'char', 0, CHR_1_3],
      ['pipe', 'fifo', 0, undefined],
    ]);
  });
});

describe('special files offline', () => {
  it('export makes a FIFO again with mkfifo and names each socket and device it does not make, in one line each', async () => {
    const { fs } = await newVault();
    await fs.mkdir('/d', 0o755);
    await fs.mknod('/d/pipe', constants.S_IFIFO | 0o640, 0);
    await fs.mknod('/d/sock', constants.S_IFSOCK | 0o755, 0);
    await fs.mknod('/d/null', constants.S_IFCHR | 0o644, CHR_1_3);
    await writeFileIn(fs, '/d/file', 'contents');
    const skipped: string[] = [];
    const failed: string[] = [];
    const dest = join(work, 'export');
    const summary = await exportTree(fs, '/d', dest, (f) => failed.push(f.message), (line) => skipped.push(line));
    expect(failed).toEqual([]);
    expect(summary).toMatchObject({ files: 1, dirs: 1, fifos: 1, skipped: 2, failed: 0 });
    const pipe = await lstat(join(dest, 'pipe'));
    expect([pipe.isFIFO(), pipe.mode & 0o777]).toEqual([true, 0o640]);
    expect((await readdir(dest)).sort()).toEqual(['file', 'pipe']);
    expect(skipped.sort()).toEqual([
      '/d/null: a character device, not exported (sealfs does not make device files)',
      '/d/sock: a socket, not exported (a socket is made by the program that listens on it)',
    ]);
  });
});

describe('rename flags', () => {
  it('RENAME_NOREPLACE reaches the cipher folder: an entry that appeared there since the listing is not replaced', async () => {
    const { dir, fs } = await newVault();
    await writeFileIn(fs, '/a', 'A');
    await writeFileIn(fs, '/b', 'B');
    await fs.readdir('/');
    // "c" appears in the cipher folder behind the kept listing (a sync client's download).
    const [aName] = await cipherNames(dir);
    const cName = fs.vault.tree.decoder.cipherNameFor(fs.vault.tree.root.dirId, 'c').cipherName;
    await writeFile(join(dir, cName), await readFile(join(dir, aName!)));
    expect(await failure(fs.rename('/a', '/c', true))).toBe(ERRNO.EEXIST);
    expect((await (await reopen(dir)).readdir('/')).sort()).toEqual(['a', 'b', 'c']);
  });

  it('RENAME_EXCHANGE of two files swaps them atomically under the same cipher names, across folders and with long names', async () => {
    const { dir, fs } = await newVault(64);
    const long = 'l'.repeat(60) + '.txt';
    await fs.mkdir('/d', 0o755);
    await writeFileIn(fs, '/x', 'X');
    await writeFileIn(fs, `/d/${long}`, 'LONG');
    const names = await cipherNames(dir);
    await fs.exchange('/x', `/d/${long}`);
    expect(await cipherNames(dir)).toEqual(names);
    for (const fsNow of [fs, await reopen(dir)]) {
      expect(await readIn(fsNow, '/x')).toBe('LONG');
      expect(await readIn(fsNow, `/d/${long}`)).toBe('X');
    }
    expect((await scrubVault({ cipherDir: dir, masterKey: KEY })).problems).toEqual([]);
  });

  it('RENAME_EXCHANGE of a file and a folder re-encrypts both names for their new places (sidecars too); the folder keeps its contents', async () => {
    const { dir, fs } = await newVault(64);
    const long = 'f'.repeat(70);
    await fs.mkdir('/a', 0o755);
    await fs.mkdir('/a/sub', 0o755);
    await writeFileIn(fs, '/a/sub/inner', 'inner');
    await fs.mkdir('/b', 0o755);
    await writeFileIn(fs, `/b/${long}`, 'file');
    const open = await fs.open(`/b/${long}`, constants.O_RDWR);
    await fs.exchange('/a/sub', `/b/${long}`);
    // An open file keeps working at its new place.
    await fs.write(open, 4, text.encode('!'));
    await fs.release(open);
    for (const fsNow of [fs, await reopen(dir)]) {
      expect(await fsNow.readdir('/a')).toEqual(['sub']);
      expect(await fsNow.readdir('/b')).toEqual([long]);
      expect((await fsNow.getattr('/a/sub')).mode & constants.S_IFMT).toBe(constants.S_IFREG);
      expect(await readIn(fsNow, '/a/sub')).toBe('file!');
      expect(await fsNow.readdir(`/b/${long}`)).toEqual(['inner']);
      expect(await readIn(fsNow, `/b/${long}/inner`)).toBe('inner');
    }
    expect((await scrubVault({ cipherDir: dir, masterKey: KEY })).problems).toEqual([]);
  });

  it('RENAME_EXCHANGE of two folders, of a file and a FIFO, and in one folder', async () => {
    const { dir, fs } = await newVault();
    await fs.mkdir('/p', 0o755);
    await fs.mkdir('/q', 0o755);
    await writeFileIn(fs, '/p/in-p', 'p');
    await writeFileIn(fs, '/q/in-q', 'q');
    await fs.exchange('/p', '/q');
    await writeFileIn(fs, '/f', 'f');
    await fs.mknod('/pipe', constants.S_IFIFO | 0o600, 0);
    await fs.exchange('/f', '/pipe');
    for (const fsNow of [fs, await reopen(dir)]) {
      expect(await fsNow.readdir('/p')).toEqual(['in-q']);
      expect(await fsNow.readdir('/q')).toEqual(['in-p']);
      expect((await fsNow.getattr('/f')).mode).toBe(constants.S_IFIFO | 0o600);
      expect(await readIn(fsNow, '/pipe')).toBe('f');
    }
    expect(await failure(fs.exchange('/p', '/nothing'))).toBe(ERRNO.ENOENT);
    expect((await scrubVault({ cipherDir: dir, masterKey: KEY })).problems).toEqual([]);
  });

  it('a crash between the two moves of an exchange that renames (file and folder) leaves both entries, under names that decrypt, and nothing lost', async () => {
    const { dir, fs } = await newVault(64);
    const long = 'y'.repeat(70);
    await fs.mkdir('/A', 0o755);
    await fs.mkdir('/B', 0o755);
    await writeFileIn(fs, '/A/x', 'X');
    await fs.mkdir(`/B/${long}`, 0o755);
    await writeFileIn(fs, `/B/${long}/inner`, 'inner');
    // The server dies right after the first move: every later call on the cipher folder fails.
    const io = fs.vault.io;
    let renames = 0;
    const crashed = Object.assign(Object.create(Object.getPrototypeOf(io) as object) as typeof io, io, {
      rename: async (a: string, b: string, flags?: number) => {
        if (++renames > 1) throw new Error('the server died');
        expect(flags).toBe(RENAME_NOREPLACE);
        return io.rename(a, b, flags);
      },
    });
    Object.assign(fs, { io: crashed });
    await expect(fs.exchange('/A/x', `/B/${long}`)).rejects.toThrow(/died/);
    const after = await reopen(dir);
    expect(await after.readdir('/A')).toEqual([]);
    expect((await after.readdir('/B')).sort()).toEqual([long, `${long} (duplicate 2)`].sort());
    // The file already has its new name in B; the folder is still where it was.
    const shown = await Promise.all((await after.readdir('/B')).map(async (name) => [name, (await after.getattr(`/B/${name}`)).mode & constants.S_IFMT] as const));
    expect(shown.map(([, type]) => type).sort()).toEqual([constants.S_IFDIR, constants.S_IFREG].sort());
    const file = shown.find(([, type]) => type === constants.S_IFREG)![0];
    const folder = shown.find(([, type]) => type === constants.S_IFDIR)![0];
    expect(await readIn(after, `/B/${file}`)).toBe('X');
    expect(await readIn(after, `/B/${folder}/inner`)).toBe('inner');
    const problems = (await scrubVault({ cipherDir: dir, masterKey: KEY })).problems.map((p) => p.kind).sort();
    // Only the duplicate name (a long name of x in A would also leave its sidecar, orphan-sidecar).
    expect(problems).toEqual(['duplicate-name']);
  });
});
