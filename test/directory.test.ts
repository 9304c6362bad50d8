/**
 * Cipher directories as sync clients leave them (FORMAT.md §10.3–§10.5), on real temp
 * directories: DirectoryDecoder.list and PlainFs facing moved names, junk, sync-client
 * files, broken long-name sidecars, conflict copies of every major client, duplicate
 * plaintext names, and two replicas merged into one folder.
 */
import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile, cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERRNO, errnoOf } from '../src/fs/errno.js';
import { scrubVault, type ScrubProblem } from '../src/tools/scrub.js';
import { compareCipherNames, insertBeforeExtension, usesSidecar } from '../src/vault/ciphernames.js';
import { DirectoryDecoder, type Listing } from '../src/vault/directory.js';
import { longNameHash } from '../src/vault/longnames.js';
import { ROOT_DIR_ID, validatePlainName } from '../src/vault/names.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { openVault } from '../src/vault/vault.js';
import { newVaultConfig, writeVaultFile, type VaultConfig } from '../src/vault/vaultfile.js';

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let work: string;
const opened: PlainFs[] = [];

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'sealfs-directory-'));
});
afterEach(async () => {
  for (const fs of opened.splice(0)) await fs.releaseAll();
  await rm(work, { recursive: true, force: true });
});

interface TestVault {
  dir: string;
  fs: PlainFs;
  log: string[];
  config: VaultConfig;
}

async function open(dir: string): Promise<{ fs: PlainFs; log: string[] }> {
  const log: string[] = [];
  const fs = new PlainFs(await openVault(dir, KEY, { backend: 'node' }), { log: (line) => log.push(line) });
  opened.push(fs);
  return { fs, log };
}

async function newVault(options: { maxNameLength?: number; config?: VaultConfig } = {}): Promise<TestVault> {
  const dir = await mkdtemp(join(work, 'cipher-'));
  const config = options.config ?? newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: options.maxNameLength ?? 255 });
  await writeVaultFile(dir, config, KEY);
  return { dir, config, ...(await open(dir)) };
}

async function put(fs: PlainFs, path: string, text: string): Promise<void> {
  const fh = await fs.create(path, 0o644);
  await fs.write(fh, 0, enc(text));
  await fs.release(fh);
}

async function overwrite(fs: PlainFs, path: string, text: string): Promise<void> {
  const fh = await fs.open(path, constants.O_RDWR | constants.O_TRUNC);
  await fs.write(fh, 0, enc(text));
  await fs.release(fh);
}

async function get(fs: PlainFs, path: string): Promise<string> {
  const fh = await fs.open(path, constants.O_RDONLY);
  try {
    return dec(await fs.read(fh, 0, 1 << 20));
  } finally {
    await fs.release(fh);
  }
}

const resolve = (fs: PlainFs, path: string) => fs.vault.tree.resolve(path);

/** A listing read afresh from disk (not PlainFs's cached one). */
async function listFresh(fs: PlainFs, plainDir = '/'): Promise<Listing> {
  fs.vault.tree.forget(fs.vault.cipherDir);
  const dir = await fs.vault.tree.dir(plainDir);
  return new DirectoryDecoder(fs.vault.names, fs.vault.config.maxNameLength).list(dir.cipherPath, dir.dirId, dir.atRoot);
}

const exists = (path: string) => lstat(path).then(() => true, () => false);
const names = (listing: Listing) => [...listing.entries.keys()].sort();

/** Every file, directory and symlink of the plaintext tree: path → content, "<dir>" or "-> target". */
async function walk(fs: PlainFs, dir = '/', out = new Map<string, string>()): Promise<Map<string, string>> {
  for (const name of await fs.readdir(dir)) {
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const { kind } = (await resolve(fs, path)).entry;
    if (kind === 'dir') {
      out.set(path, '<dir>');
      await walk(fs, path, out);
    } else if (kind === 'symlink') {
      out.set(path, `-> ${await fs.readlink(path)}`);
    } else {
      out.set(path, await get(fs, path));
    }
  }
  return out;
}

/**
 * What a sync client does when it brings another replica's files into this folder: new
 * names are copied, identical files are left alone, and a file that differs is put next
 * to the local one under a Dropbox-style conflict name (before `.sfl` for long names).
 */
async function merge(from: string, to: string): Promise<string[]> {
  const conflicts: string[] = [];
  for (const item of await readdir(from, { withFileTypes: true })) {
    const src = join(from, item.name);
    const dst = join(to, item.name);
    if (item.isDirectory()) {
      await mkdir(dst, { recursive: true });
      conflicts.push(...(await merge(src, dst)));
    } else if (item.isSymbolicLink()) {
      if (!(await exists(dst))) await symlink(await readlink(src), dst);
      else expect(await readlink(dst)).toBe(await readlink(src));
    } else if (!(await exists(dst))) {
      await copyFile(src, dst);
    } else if (Buffer.compare(await readFile(src), await readFile(dst)) !== 0) {
      const cut = item.name.endsWith('.sfl') ? item.name.length - 4 : item.name.length;
      const copy = `${item.name.slice(0, cut)} (conflicted copy 2026-11-22)${item.name.slice(cut)}`;
      await copyFile(src, join(to, copy));
      conflicts.push(relative(to, join(to, copy)));
    }
  }
  return conflicts;
}

const SYNC_CLIENT_FILES = [
  '.stignore',
  'desktop.ini',
  '.sync_abc123.db',
  '._sync_0123abcd.db-wal',
  '.owncloudsync.log',
  '~syncthing~x.tmp',
  '.syncthing.report.txt.tmp',
  '.DS_Store',
  'Thumbs.db',
  '.dropbox',
];

describe('DirectoryDecoder.list and PlainFs on a cipher directory', () => {
  it('lists entries, reports moved-in and junk names, hides sync-client files and the root vault file', async () => {
    const { dir, fs, log } = await newVault();
    await fs.mkdir('/docs', 0o755);
    await put(fs, '/a.txt', 'alpha');
    await fs.symlink('a.txt', '/link');
    await put(fs, '/docs/b.txt', 'beta');
    await fs.mkdir('/docs/sub', 0o755);
    const a = await resolve(fs, '/a.txt');
    const docs = await resolve(fs, '/docs');

    // A name moved by hand from the root into /docs: bound to the root's id, it does not decrypt there.
    await copyFile(a.cipherPath, join(docs.cipherPath, a.entry.cipherName));
    // Junk: not base32, base32 that is no name, a directory.
    const junk = 'a'.repeat(40);
    await writeFile(join(dir, 'junk-file.txt'), 'x');
    await writeFile(join(dir, junk), 'x');
    await mkdir(join(dir, 'JUNKDIR'));
    // Sync clients' own files, in the root and below.
    for (const name of SYNC_CLIENT_FILES) {
      await writeFile(join(dir, name), '');
      await writeFile(join(docs.cipherPath, name), '');
    }
    await mkdir(join(dir, '.stfolder'));
    await mkdir(join(dir, '.stversions'));
    // sealfs.vault is a control file only in the root.
    await copyFile(join(dir, 'sealfs.vault'), join(docs.cipherPath, 'sealfs.vault'));

    const root = await listFresh(fs);
    expect(names(root)).toEqual(['UNDECRYPTABLE JUNKDIR', `UNDECRYPTABLE ${junk}`, 'UNDECRYPTABLE junk-file.txt', 'a.txt', 'docs', 'link']);
    expect(root.undecryptable.map((e) => e.cipherName).sort()).toEqual(['JUNKDIR', junk, 'junk-file.txt']);
    expect(root.entries.get('a.txt')).toMatchObject({ kind: 'file', cipherName: a.entry.cipherName });
    expect(root.entries.get('link')?.kind).toBe('symlink');
    expect(hex(root.entries.get('docs')!.dirId!)).toBe(hex(fs.vault.names.deriveDirId(ROOT_DIR_ID, 'docs')));
    expect(root.entries.get('UNDECRYPTABLE JUNKDIR')).toMatchObject({ kind: 'dir', undecryptable: true, cipherName: 'JUNKDIR' });

    const inDocs = await listFresh(fs, '/docs');
    expect(names(inDocs)).toEqual([`UNDECRYPTABLE ${a.entry.cipherName}`, 'UNDECRYPTABLE sealfs.vault', 'b.txt', 'sub']);
    expect(inDocs.undecryptable.map((e) => e.cipherName).sort()).toEqual([a.entry.cipherName, 'sealfs.vault'].sort());

    // PlainFs shows the same, and tells each directory's undecryptable names in one line, once.
    expect((await fs.readdir('/')).sort()).toEqual(names(root));
    expect((await fs.readdir('/docs')).sort()).toEqual(names(inDocs));
    await fs.readdir('/');
    const logged = log.filter((line) => / undecryptable names? in /.test(line));
    expect(logged).toEqual([
      `3 undecryptable names in "/" (cipher folder ${JSON.stringify(dir)}, listed as "UNDECRYPTABLE …"): "JUNKDIR", ${JSON.stringify(junk)}, "junk-file.txt"`,
      `2 undecryptable names in "/docs" (cipher folder ${JSON.stringify(docs.cipherPath)}, listed as "UNDECRYPTABLE …"): ${[a.entry.cipherName, 'sealfs.vault'].sort().map((n) => JSON.stringify(n)).join(', ')}`,
    ]);
    for (const name of SYNC_CLIENT_FILES) expect(log.join('\n')).not.toContain(name);

    // The real entries work; the symlink target is stored encrypted.
    expect(await get(fs, '/a.txt')).toBe('alpha');
    expect(await get(fs, '/docs/b.txt')).toBe('beta');
    expect(await fs.readlink('/link')).toBe('a.txt');
    expect(await readlink((await resolve(fs, '/link')).cipherPath)).not.toContain('a.txt');

    // Undecryptable entries cannot be opened, but can be removed.
    await expect(fs.open('/UNDECRYPTABLE junk-file.txt', constants.O_RDONLY)).rejects.toMatchObject({ code: 'EIO' });
    await fs.unlink('/UNDECRYPTABLE junk-file.txt');
    expect(await exists(join(dir, 'junk-file.txt'))).toBe(false);
    await fs.unlink(`/docs/UNDECRYPTABLE ${a.entry.cipherName}`);
    expect(await exists(join(docs.cipherPath, a.entry.cipherName))).toBe(false);
    expect(await exists(a.cipherPath)).toBe(true);
    await fs.rmdir('/UNDECRYPTABLE JUNKDIR');
    expect(await exists(join(dir, 'JUNKDIR'))).toBe(false);
    expect(names(await listFresh(fs))).toEqual([`UNDECRYPTABLE ${junk}`, 'a.txt', 'docs', 'link']);
    expect(await get(fs, '/a.txt')).toBe('alpha');
    // The sync-client files were never touched.
    for (const name of SYNC_CLIENT_FILES) expect(await exists(join(dir, name))).toBe(true);
  });

  it('rmdir agrees with the listing: hidden files go with the folder; a FIFO or a sync folder with content stays, logged', async () => {
    const { dir, fs, log } = await newVault();
    const made = async (name: string) => {
      await fs.mkdir(`/${name}`, 0o755);
      return (await resolve(fs, `/${name}`)).cipherPath;
    };
    // Empty in the plaintext view, and removable: an orphan sidecar, sync clients' files and an empty marker folder.
    const clutter = await made('clutter');
    await writeFile(join(clutter, `${'q'.repeat(26)}.sfn`), 'x');
    await writeFile(join(clutter, '.syncthing.report.txt.tmp'), 'plaintext in transit');
    await writeFile(join(clutter, '.stignore'), '');
    await mkdir(join(clutter, '.stfolder'));
    // Empty in the view, but holding what must not be deleted.
    const fifo = await made('fifo');
    expect(spawnSync('mkfifo', [join(fifo, 'pipe')]).status).toBe(0);
    const versions = await made('versions');
    await mkdir(join(versions, '.stversions', 'sub'), { recursive: true });
    await writeFile(join(versions, '.stversions', 'sub', 'old-version'), 'precious');
    await writeFile(join(versions, '.stignore'), '');
    fs.vault.tree.forget(dir);

    for (const name of ['clutter', 'versions']) expect(await fs.readdir(`/${name}`), name).toEqual([]);
    // A FIFO is listed like an undecryptable name (FORMAT.md §10.4), and told as one.
    expect(await fs.readdir('/fifo')).toEqual(['UNDECRYPTABLE pipe']);
    expect(log.splice(0)).toEqual([expect.stringMatching(/^1 undecryptable name in "\/fifo" .*: "pipe"$/)]);
    await fs.rmdir('/clutter');
    expect(await exists(clutter)).toBe(false);
    expect(log).toEqual([]);

    await expect(fs.rmdir('/fifo')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    expect(log).toHaveLength(1);
    expect(log[0]).toContain('not removing /fifo');
    expect(log[0]).toContain('"pipe"');
    expect(await exists(join(fifo, 'pipe'))).toBe(true);

    await expect(fs.rmdir('/versions')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    expect(log).toHaveLength(2);
    expect(log[1]).toContain('not removing /versions');
    expect(log[1]).toContain('".stversions"');
    expect(await readFile(join(versions, '.stversions', 'sub', 'old-version'), 'utf8')).toBe('precious');
    expect(names(await listFresh(fs))).toEqual(['fifo', 'versions']);

    // A folder with an entry in view is simply not empty: no log line.
    await put(fs, '/versions/file', 'x');
    await expect(fs.rmdir('/versions')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    expect(log).toHaveLength(2);
  });

  it('a sidecar that cannot be read just now fails the listing with EIO; a bad one is a placeholder', async () => {
    const { dir, fs } = await newVault({ maxNameLength: 64 });
    await put(fs, '/a-rather-long-name-that-needs-a-sidecar.txt', 'x');
    const { entry } = await resolve(fs, '/a-rather-long-name-that-needs-a-sidecar.txt');
    const decoder = new DirectoryDecoder(fs.vault.names, 64);
    // Reading the sidecar fails with a system error (here ENOTDIR: the folder was replaced
    // by a file between the listing and the read; EIO, EMFILE or EACCES alike).
    const replaced = join(work, 'replaced');
    await writeFile(replaced, '');
    const failure = await decoder.decode(replaced, ROOT_DIR_ID, true, entry.cipherName, 'file').catch((err: NodeJS.ErrnoException) => err);
    expect(failure).toMatchObject({ code: 'EIO', syscall: 'read' });
    expect((failure as Error).message).toContain(join(replaced, entry.sidecar!));
    expect((failure as Error).message).toContain('ENOTDIR');
    // The mount answers the request with EIO and logs it once (src/fs/errno.ts: a system call's EIO).
    const lines: string[] = [];
    expect(errnoOf(failure, 'readdir /', (line) => lines.push(line))).toBe(ERRNO.EIO);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(join(replaced, entry.sidecar!));
    // A sidecar that is read but wrong stays a placeholder.
    await writeFile(join(dir, entry.sidecar!), 'wrong\n');
    expect(await decoder.decode(dir, ROOT_DIR_ID, true, entry.cipherName, 'file')).toMatchObject({ undecryptable: true });
  });

  it('control and format characters never reach a shown name or a log line raw', async () => {
    const { dir, fs, log } = await newVault();
    const evil = 'junk\u202etxt.exe\u001b[31m\u0007';
    await writeFile(join(dir, evil), 'x');
    const shown = names(await listFresh(fs));
    expect(shown).toEqual(['UNDECRYPTABLE junk txt.exe [31m ']);
    expect(await fs.readdir('/')).toEqual(shown);
    expect(log).toEqual([`1 undecryptable name in "/" (cipher folder ${JSON.stringify(dir)}, listed as "UNDECRYPTABLE …"): "junk\\u202etxt.exe\\u001b[31m\\u0007"`]);
    expect(log[0]).not.toMatch(/[\u0000-\u001f\u202e]/);
  });

  it('long names: intact sidecars work; a missing or wrong sidecar makes the entry undecryptable', async () => {
    const { dir, fs } = await newVault({ maxNameLength: 64 });
    const longFile = 'a-long-file-name-that-needs-a-sidecar.txt';
    const longDir = 'a-long-directory-name-that-needs-a-sidecar';
    const longLink = 'a-long-symlink-name-that-needs-a-sidecar';
    await put(fs, `/${longFile}`, 'long content');
    await fs.mkdir(`/${longDir}`, 0o755);
    await put(fs, `/${longDir}/inner.txt`, 'inner');
    await fs.symlink(longFile, `/${longLink}`);
    await put(fs, '/short', 'short content');

    const sidecarOf = async (name: string) => {
      const { entry, cipherPath } = await resolve(fs, `/${name}`);
      const E = fs.vault.names.encrypt(ROOT_DIR_ID, name, entry.dirId);
      expect(E.length).toBeGreaterThan(64);
      const h = longNameHash(E);
      expect(entry.cipherName).toBe(`${h}.sfl`);
      expect(entry.sidecar).toBe(`${h}.sfn`);
      expect(cipherPath).toBe(join(dir, `${h}.sfl`));
      expect(await readFile(join(dir, `${h}.sfn`), 'utf8')).toBe(`${E}\n`);
      return { h, E };
    };
    for (const name of [longFile, longDir, longLink]) await sidecarOf(name);
    expect((await resolve(fs, '/short')).entry.sidecar).toBeUndefined();

    // Three more long files, whose sidecars then go missing or wrong.
    const missing = 'sidecar-missing-for-this-rather-long-name.txt';
    const swapped = 'sidecar-swapped-for-this-rather-long-name.txt';
    const garbage = 'sidecar-garbage-for-this-rather-long-name.txt';
    for (const name of [missing, swapped, garbage]) await put(fs, `/${name}`, name);
    const m = await sidecarOf(missing);
    const s = await sidecarOf(swapped);
    const g = await sidecarOf(garbage);
    const lf = await sidecarOf(longFile);
    await rm(join(dir, `${m.h}.sfn`));
    await writeFile(join(dir, `${s.h}.sfn`), `${lf.E}\n`); // a valid E, of another entry: does not hash to s.h
    await writeFile(join(dir, `${g.h}.sfn`), 'not a name at all\n');
    // A sidecar with no entry, and a sync client's copy of a sidecar: neither is an entry.
    await writeFile(join(dir, `${'q'.repeat(26)}.sfn`), `${lf.E}\n`);
    await copyFile(join(dir, `${lf.h}.sfn`), join(dir, `${lf.h} (1).sfn`));

    const listing = await listFresh(fs);
    const bad = [m.h, s.h, g.h].map((h) => `${h}.sfl`).sort();
    expect(names(listing)).toEqual([...bad.map((n) => `UNDECRYPTABLE ${n}`), longDir, longFile, longLink, 'short'].sort());
    expect(listing.undecryptable.map((e) => e.cipherName).sort()).toEqual(bad);
    expect(listing.entries.get(longDir)?.kind).toBe('dir');
    expect(listing.entries.get(longLink)?.kind).toBe('symlink');

    expect(await get(fs, `/${longFile}`)).toBe('long content');
    expect(await get(fs, `/${longDir}/inner.txt`)).toBe('inner');
    expect(await fs.readlink(`/${longLink}`)).toBe(longFile);
    expect(await get(fs, '/short')).toBe('short content');
    await expect(fs.open(`/UNDECRYPTABLE ${m.h}.sfl`, constants.O_RDONLY)).rejects.toMatchObject({ code: 'EIO' });

    // Removing a long entry removes its sidecar; removing an undecryptable one removes its file.
    await fs.unlink(`/${longLink}`);
    const ll = fs.vault.names.encrypt(ROOT_DIR_ID, longLink);
    expect(await exists(join(dir, `${longNameHash(ll)}.sfl`))).toBe(false);
    expect(await exists(join(dir, `${longNameHash(ll)}.sfn`))).toBe(false);
    await fs.unlink(`/UNDECRYPTABLE ${m.h}.sfl`);
    expect(await exists(join(dir, `${m.h}.sfl`))).toBe(false);
    // Restoring the right sidecar brings the entry back.
    await writeFile(join(dir, `${s.h}.sfn`), `${s.E}\n`);
    expect((await listFresh(fs)).entries.has(swapped)).toBe(true);
    expect(await get(fs, `/${swapped}`)).toBe(swapped);
  });

  describe('conflict copies', () => {
    const PATTERNS: [client: string, suffix: string, marker: string][] = [
      ['Dropbox', ' (conflicted copy 2026-11-22)', 'report (conflict 2026-11-22).txt'],
      ['Dropbox, with the user', " (Alice's conflicted copy 2026-11-22)", 'report (conflict Alice 2026-11-22).txt'],
      ['OneDrive', '-HOSTNAME', 'report (conflict HOSTNAME).txt'],
      ['Google Drive', ' (1)', 'report (conflict 1).txt'],
      ['Syncthing', '.sync-conflict-20261122-101010-ABCDEFG', 'report (conflict 2026-11-22 101010 ABCDEFG).txt'],
      ['Nextcloud', ' (conflicted copy 2026-11-22 101010)', 'report (conflict 2026-11-22 101010).txt'],
      ['Box', ' (Alice)', 'report (conflict Alice).txt'],
    ];
    const LONG = 'quarterly-report-'.repeat(9) + 'final.txt';
    const LONG_CONFLICT = 'quarterly-report-'.repeat(9) + 'final (conflict 2026-11-22).txt';

    /**
     * Builds a vault as a sync client leaves it after conflicts: each time, the local
     * version is renamed to the conflict name and the other replica's version takes the
     * original name.
     */
    async function conflicted() {
      const v = await newVault();
      const { dir, fs } = v;
      await put(fs, '/report.txt', 'version 0');
      const E = (await resolve(fs, '/report.txt')).entry.cipherName;
      for (let i = 0; i < PATTERNS.length; i++) {
        await rename(join(dir, E), join(dir, E + PATTERNS[i]![1]));
        fs.vault.tree.forget(dir);
        await put(fs, '/report.txt', `version ${i + 1}`);
      }
      // A name without extension.
      await put(fs, '/notes', 'old notes');
      const notes = (await resolve(fs, '/notes')).entry.cipherName;
      await rename(join(dir, notes), join(dir, `${notes} (1)`));
      fs.vault.tree.forget(dir);
      await put(fs, '/notes', 'new notes');
      // A directory (Dropbox copies the whole folder).
      await fs.mkdir('/Photos', 0o755);
      await put(fs, '/Photos/cat.jpg', 'meow');
      const photos = await resolve(fs, '/Photos');
      await cp(photos.cipherPath, `${photos.cipherPath} (conflicted copy 2026-11-22)`, { recursive: true });
      await overwrite(fs, '/Photos/cat.jpg', 'woof');
      // A long name: `h (conflicted copy …).sfl`, read through the original's sidecar.
      await put(fs, `/${LONG}`, 'long, theirs');
      const long = (await resolve(fs, `/${LONG}`)).entry;
      const h = long.cipherName.slice(0, -'.sfl'.length);
      expect(long.sidecar).toBe(`${h}.sfn`);
      await rename(join(dir, long.cipherName), join(dir, `${h} (conflicted copy 2026-11-22).sfl`));
      await copyFile(join(dir, `${h}.sfn`), join(dir, `${h} (conflicted copy 2026-11-22).sfn`)); // a copied sidecar stays hidden
      fs.vault.tree.forget(dir);
      await put(fs, `/${LONG}`, 'long, ours');
      return { ...v, E, h, photos };
    }

    it('each client pattern is listed next to the original with a (conflict …) marker, and opens', async () => {
      const { fs, E } = await conflicted();
      const listing = await listFresh(fs);
      expect(listing.undecryptable).toEqual([]);
      const reports = names(listing).filter((n) => n.startsWith('report'));
      expect(reports).toEqual(['report.txt', ...PATTERNS.map((p) => p[2])].sort());
      expect(await get(fs, '/report.txt')).toBe(`version ${PATTERNS.length}`);
      for (let i = 0; i < PATTERNS.length; i++) {
        const [client, suffix, shown] = PATTERNS[i]!;
        const entry = listing.entries.get(shown);
        expect(entry, client).toMatchObject({ cipherName: E + suffix, conflict: suffix, kind: 'file' });
        expect(await get(fs, `/${shown}`), client).toBe(`version ${i}`);
      }
      expect(names(listing).filter((n) => n.startsWith('notes'))).toEqual(['notes', 'notes (conflict 1)']);
      expect(await get(fs, '/notes')).toBe('new notes');
      expect(await get(fs, '/notes (conflict 1)')).toBe('old notes');

      const photosCopy = 'Photos (conflict 2026-11-22)';
      expect(listing.entries.get(photosCopy)).toMatchObject({ kind: 'dir' });
      expect(hex(listing.entries.get(photosCopy)!.dirId!)).toBe(hex(listing.entries.get('Photos')!.dirId!));
      expect(await fs.readdir(`/${photosCopy}`)).toEqual(['cat.jpg']);
      expect(await get(fs, `/${photosCopy}/cat.jpg`)).toBe('meow');
      expect(await get(fs, '/Photos/cat.jpg')).toBe('woof');

      expect(listing.entries.get(LONG_CONFLICT)).toMatchObject({ conflict: ' (conflicted copy 2026-11-22)' });
      expect(await get(fs, `/${LONG_CONFLICT}`)).toBe('long, theirs');
      expect(await get(fs, `/${LONG}`)).toBe('long, ours');
      expect(names(listing)).toHaveLength(PATTERNS.length + 1 + 2 + 2 + 2);
    });

    it('renaming a conflict copy to a real name gives a normal entry; the original keeps its sidecar', async () => {
      const { dir, fs, E, h } = await conflicted();
      await fs.rename('/report (conflict 1).txt', '/report from drive.txt');
      await fs.rename(`/${LONG_CONFLICT}`, '/long, theirs.txt');
      await fs.rename('/notes (conflict 1)', '/old notes');
      // Over the original: the conflict copy wins.
      await fs.rename('/report (conflict Alice).txt', '/report.txt');

      const listing = await listFresh(fs);
      for (const name of ['report from drive.txt', 'long, theirs.txt', 'old notes', 'report.txt']) {
        const entry = listing.entries.get(name)!;
        expect(entry.conflict, name).toBeUndefined();
        expect(entry.cipherName).toBe(fs.vault.tree.decoder.cipherNameFor(ROOT_DIR_ID, name).cipherName);
        expect(fs.vault.names.decrypt(ROOT_DIR_ID, entry.cipherName, 'file')?.name).toBe(name);
      }
      expect(await get(fs, '/report from drive.txt')).toBe('version 3');
      expect(await get(fs, '/report.txt')).toBe('version 6');
      expect(await get(fs, '/long, theirs.txt')).toBe('long, theirs');
      expect(await get(fs, '/old notes')).toBe('old notes');
      expect(listing.entries.has('report (conflict 1).txt')).toBe(false);
      expect(await exists(join(dir, `${E} (1)`))).toBe(false);
      expect(await exists(join(dir, `${E} (Alice)`))).toBe(false);
      // The original long entry still reads through its sidecar.
      expect(await exists(join(dir, `${h}.sfn`))).toBe(true);
      expect(await get(fs, `/${LONG}`)).toBe('long, ours');
      expect(listing.undecryptable).toEqual([]);
    });
  });

  describe('names near 255 bytes', () => {
    it('markers keep a name within 255 bytes, cut at whole code points', () => {
      const cases = ['x'.repeat(251) + '.txt', '🎉'.repeat(63) + '.md', 'é'.repeat(127), 'a.' + 'b'.repeat(253), 'report.txt'];
      for (const name of cases) {
        for (const marker of ['(conflict 2026-11-22)', '(duplicate 2)', `(conflict ${'z'.repeat(240)})`]) {
          const out = insertBeforeExtension(name, marker);
          expect(Buffer.byteLength(out), `${name} ${marker}`).toBeLessThanOrEqual(255);
          expect(() => validatePlainName(out)).not.toThrow();
          expect(out).not.toContain('\ufffd');
          expect(out.startsWith(name.slice(0, 1))).toBe(true);
        }
      }
      expect(insertBeforeExtension('report.txt', '(conflict 1)')).toBe('report (conflict 1).txt');
      expect(insertBeforeExtension('.bashrc', '(conflict 1)')).toBe('.bashrc (conflict 1)');
      expect(insertBeforeExtension('x'.repeat(251) + '.txt', '(conflict 1)')).toBe('x'.repeat(238) + ' (conflict 1).txt');
    });

    it('a conflict copy of a 255-byte name is listed under a valid name, opens and can be renamed', async () => {
      const { dir, fs } = await newVault();
      const name = 'é'.repeat(125) + '.txt'; // 254 bytes
      await put(fs, `/${name}`, 'theirs');
      const { cipherName } = (await resolve(fs, `/${name}`)).entry;
      await rename(join(dir, cipherName), join(dir, cipherName.replace('.sfl', ' (conflicted copy 2026-11-22).sfl')));
      fs.vault.tree.forget(dir);
      await put(fs, `/${name}`, 'ours');
      const listing = await listFresh(fs);
      const copy = names(listing).find((n) => n !== name)!;
      expect(copy).toMatch(/^é+ \(conflict 2026-11-22\)\.txt$/);
      expect(Buffer.byteLength(copy)).toBeLessThanOrEqual(255);
      expect(await get(fs, `/${copy}`)).toBe('theirs');
      await fs.rename(`/${copy}`, '/theirs.txt');
      expect(names(await listFresh(fs))).toEqual([name, 'theirs.txt'].sort());
      expect(await get(fs, '/theirs.txt')).toBe('theirs');
      expect(await get(fs, `/${name}`)).toBe('ours');
    });

    // A conflict copy `<h> (…).sfl` reads the original's `<h>.sfn`, so removing the original
    // must keep the sidecar while the copy exists.
    it('removing the original of a long name leaves its conflict copy readable', async () => {
      const { dir, fs } = await newVault({ maxNameLength: 64 });
      const name = 'a-long-name-that-needs-a-sidecar.txt';
      await put(fs, `/${name}`, 'theirs');
      const { cipherName } = (await resolve(fs, `/${name}`)).entry;
      await rename(join(dir, cipherName), join(dir, cipherName.replace('.sfl', ' (1).sfl')));
      fs.vault.tree.forget(dir);
      await put(fs, `/${name}`, 'ours');
      await fs.unlink(`/${name}`);
      const listing = await listFresh(fs);
      expect(listing.undecryptable).toEqual([]);
      expect(await get(fs, '/a-long-name-that-needs-a-sidecar (conflict 1).txt')).toBe('theirs');
    });
  });

  describe('two replicas', () => {
    it('two cipher entries that decode to one name are both listed, the second as (duplicate 2)', async () => {
      const config = newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255 });
      const A = await newVault({ config });
      const B = await newVault({ config });
      // A creates /Docs and renames it to /Papers (its id stays); B creates /Papers offline.
      await A.fs.mkdir('/Docs', 0o755);
      await put(A.fs, '/Docs/a.txt', 'from A');
      await A.fs.rename('/Docs', '/Papers');
      await B.fs.mkdir('/Papers', 0o755);
      await put(B.fs, '/Papers/b.txt', 'from B');
      expect(await merge(B.dir, A.dir)).toEqual([]);

      const { fs } = await open(A.dir);
      const listing = await listFresh(fs);
      expect(names(listing)).toEqual(['Papers', 'Papers (duplicate 2)']);
      const ids = ['Papers', 'Papers (duplicate 2)'].map((n) => hex(listing.entries.get(n)!.dirId!)).sort();
      expect(ids).toEqual([hex(fs.vault.names.deriveDirId(ROOT_DIR_ID, 'Docs')), hex(fs.vault.names.deriveDirId(ROOT_DIR_ID, 'Papers'))].sort());
      const tree = await walk(fs);
      const files = [...tree].filter(([, v]) => v !== '<dir>');
      expect(files.map(([p, v]) => `${p.slice(p.lastIndexOf('/') + 1)}=${v}`).sort()).toEqual(['a.txt=from A', 'b.txt=from B']);
      expect([...tree.keys()].filter((p) => tree.get(p) === '<dir>').sort()).toEqual(['/Papers', '/Papers (duplicate 2)']);
    });

    it('on one replica, a directory renamed away and re-created under its old name shares its id (FORMAT.md §10.1)', async () => {
      const { fs } = await newVault();
      await fs.mkdir('/A', 0o755);
      await put(fs, '/A/x.txt', 'first');
      await fs.rename('/A', '/B');
      await fs.mkdir('/A', 0o755);
      await put(fs, '/A/x.txt', 'second');
      const listing = await listFresh(fs);
      expect(names(listing)).toEqual(['A', 'B']);
      expect(hex(listing.entries.get('A')!.dirId!)).toBe(hex(listing.entries.get('B')!.dirId!));
      expect(await get(fs, '/A/x.txt')).toBe('second');
      expect(await get(fs, '/B/x.txt')).toBe('first');
    });

    it('the same mkdir on two replicas gives the same cipher names; merged, every file of both sides is listed and readable', async () => {
      const config = newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255 });
      const A = await newVault({ config });
      const B = await newVault({ config });
      expect(await readFile(join(A.dir, 'sealfs.vault'), 'utf8')).toBe(await readFile(join(B.dir, 'sealfs.vault'), 'utf8'));
      const deepLong = '長い名前のフォルダ'.repeat(6); // 162 bytes: a long name
      const dirs = ['/Shared', '/Shared/Deep', `/Shared/Deep/${deepLong}`, '/Shared/日本語', '/Shared/🎉'];
      for (const { fs } of [A, B]) for (const d of dirs) await fs.mkdir(d, 0o755);
      for (const d of dirs) {
        const [ra, rb] = [await resolve(A.fs, d), await resolve(B.fs, d)];
        expect(relative(A.dir, ra.cipherPath)).toBe(relative(B.dir, rb.cipherPath));
        expect(hex(ra.entry.dirId!)).toBe(hex(rb.entry.dirId!));
      }

      const sideA: Record<string, string> = {
        '/Shared/a.txt': 'A',
        '/Shared/Deep/same.txt': 'same name, from A',
        [`/Shared/Deep/${deepLong}/x.txt`]: 'A-x',
        '/Shared/日本語/メモ.txt': 'A memo',
        '/only-A.txt': 'only A',
      };
      const sideB: Record<string, string> = {
        '/Shared/b.txt': 'B',
        '/Shared/Deep/same.txt': 'same name, from B',
        [`/Shared/Deep/${deepLong}/y.txt`]: 'B-y',
        '/Shared/🎉/party.txt': 'B party',
        [`/Shared/${'b'.repeat(200)}.txt`]: 'B long',
      };
      for (const [path, text] of Object.entries(sideA)) await put(A.fs, path, text);
      for (const [path, text] of Object.entries(sideB)) await put(B.fs, path, text);
      await A.fs.symlink('a.txt', '/Shared/link-A');
      await B.fs.symlink('b.txt', '/Shared/link-B');
      await B.fs.mkdir('/Shared/Deep/only-B', 0o755);

      // The sync client brings B's files into A's folder; only same.txt collides.
      const conflicts = await merge(B.dir, A.dir);
      expect(conflicts).toHaveLength(1);

      const { fs, log } = await open(A.dir);
      const tree = await walk(fs);
      for (const [path, text] of Object.entries(sideA)) expect(tree.get(path), path).toBe(text);
      for (const [path, text] of Object.entries(sideB)) {
        if (path === '/Shared/Deep/same.txt') continue;
        expect(tree.get(path), path).toBe(text);
      }
      expect(tree.get('/Shared/Deep/same (conflict 2026-11-22).txt')).toBe('same name, from B');
      expect(tree.get('/Shared/link-A')).toBe('-> a.txt');
      expect(tree.get('/Shared/link-B')).toBe('-> b.txt');
      expect(tree.get('/Shared/Deep/only-B')).toBe('<dir>');
      for (const d of dirs) expect(tree.get(d)).toBe('<dir>');
      const expected = new Set([
        ...Object.keys(sideA),
        ...Object.keys(sideB),
        ...dirs,
        '/Shared/Deep/same (conflict 2026-11-22).txt',
        '/Shared/link-A',
        '/Shared/link-B',
        '/Shared/Deep/only-B',
      ]);
      expect([...tree.keys()].sort()).toEqual([...expected].sort());
      expect(log.filter((line) => line.startsWith('undecryptable'))).toEqual([]);
    });
  });
});

/**
 * The mount (DirectoryDecoder) and scrub read one cipher directory through the same rules
 * (src/vault/ciphernames.ts): fed the same tricky names and sidecar bytes, they agree on
 * which entries decrypt, under which name each shows, and which names are not entries.
 */
describe('the mount and scrub read every cipher name alike', () => {
  /** Sidecar contents (or replacements) for one long file each; only 'lf' is valid (FORMAT.md §10.3). */
  const SIDECARS: [label: string, make: (path: string, E: string) => Promise<void>][] = [
    ['lf', (p, E) => writeFile(p, `${E}\n`)],
    ['no-line-end', (p, E) => writeFile(p, E)],
    ['crlf', (p, E) => writeFile(p, `${E}\r\n`)],
    ['leading-space', (p, E) => writeFile(p, ` ${E}\n`)],
    ['trailing-space', (p, E) => writeFile(p, `${E} \n`)],
    ['tab', (p, E) => writeFile(p, `${E}\t\n`)],
    ['two-line-ends', (p, E) => writeFile(p, `${E}\n\n`)],
    ['two-lines', (p, E) => writeFile(p, `${E}\n${E}\n`)],
    ['bom', (p, E) => writeFile(p, `\ufeff${E}\n`)],
    ['upper-case', (p, E) => writeFile(p, `${E.toUpperCase()}\n`)],
    ['nul', (p, E) => writeFile(p, `${E}\n\0`)],
    ['oversize', (p, E) => writeFile(p, `${E}\n${'a'.repeat(1 << 16)}`)],
    ['empty', (p) => writeFile(p, '')],
    ['missing', (p) => rm(p)],
    ['directory', async (p) => {
      await rm(p);
      await mkdir(p);
    }],
    ['symlink-to-valid', async (p, E) => {
      await writeFile(`${p}.target`, `${E}\n`);
      await rm(p);
      await symlink(`${p}.target`, p);
    }],
    ['fifo', async (p) => {
      await rm(p);
      expect(spawnSync('mkfifo', [p]).status).toBe(0);
    }],
  ];

  /** cipher name → 'ok', 'undecryptable' or the '(duplicate n)' name it shows under. */
  type View = Map<string, string>;

  /** A shown name is a duplicate's when it differs from what the entry decodes to on its own. */
  async function mountView(fs: PlainFs, listing: Listing): Promise<View> {
    const decoder = new DirectoryDecoder(fs.vault.names, fs.vault.config.maxNameLength);
    const view: View = new Map();
    for (const entry of listing.entries.values()) {
      const alone = await decoder.decode(fs.vault.cipherDir, ROOT_DIR_ID, true, entry.cipherName, entry.kind);
      view.set(entry.cipherName, entry.undecryptable ? 'undecryptable' : alone?.name !== entry.name ? entry.name : 'ok');
    }
    return view;
  }

  function scrubView(entries: readonly string[], problems: readonly ScrubProblem[]): { view: View; others: string[] } {
    const view: View = new Map(entries.map((name) => [name, 'ok']));
    const others: string[] = [];
    for (const p of problems) {
      if (p.kind === 'undecryptable-name') view.set(p.rel, 'undecryptable');
      else if (p.kind === 'missing-sidecar' || p.kind === 'bad-sidecar') {
        for (const name of entries) if (usesSidecar(name, p.rel.slice(0, -'.sfn'.length))) view.set(name, 'undecryptable');
      } else if (p.kind === 'duplicate-name' || p.kind === 'conflicting-identity') view.set(p.rel, p.plainPath!.slice(1));
      else {
        // A FIFO, socket or device: the mount lists it as undecryptable too.
        if (p.kind === 'unexpected-type' && view.has(p.rel)) view.set(p.rel, 'undecryptable');
        others.push(`${p.kind} ${p.rel}`);
      }
    }
    return { view, others: others.sort() };
  }

  it('tricky sidecars, long-name and conflict texts, duplicates and sync-client files', async () => {
    const { dir, fs } = await newVault({ maxNameLength: 64 });
    const longOf = async (name: string) => {
      const { entry } = await resolve(fs, `/${name}`);
      const E = fs.vault.names.encrypt(ROOT_DIR_ID, name, entry.dirId);
      return { h: longNameHash(E), E, cipherName: entry.cipherName };
    };
    const variants = new Map<string, { h: string; E: string }>();
    for (const [label] of SIDECARS) {
      const name = `sidecar-${label}-for-a-rather-long-name.txt`;
      await put(fs, `/${name}`, label);
      variants.set(label, await longOf(name));
    }
    await put(fs, '/short.txt', 'short');
    const short = (await resolve(fs, '/short.txt')).entry.cipherName;
    const good = variants.get('lf')!;
    for (const [label, make] of SIDECARS) await make(join(dir, `${variants.get(label)!.h}.sfn`), variants.get(label)!.E);

    // Names a sync client or a person may leave (all copies of real entries).
    const copies: [name: string, shows: string][] = [
      [`${good.h}.sfl.sfl`, 'sidecar-lf-for-a-rather-long-name (conflict sfl).txt'], // `.sfl` twice: the first is removed
      [`${good.h}.sfn.sfl`, 'sidecar-lf-for-a-rather-long-name (conflict sfn).txt'], // `.sfl` wins over `.sfn`
      [`${good.h} (conflicted copy 2026-11-22).sfl`, 'sidecar-lf-for-a-rather-long-name (conflict 2026-11-22).txt'],
      [`${short}.sync-conflict-20261122-101010-ABCDEFG`, 'short (conflict 2026-11-22 101010 ABCDEFG).txt'],
      [`${short} (Alice's conflicted copy 2026-11-22)`, 'short (conflict Alice 2026-11-22).txt'],
      [`${short} (1)`, 'short (conflict 1).txt'],
      [`${short}_(1)`, 'short (conflict 1) (duplicate 2).txt'], // the same marker: a duplicate, in cipher-name order
      [`${short}~(1)`, 'short (conflict 1) (duplicate 3).txt'],
    ];
    for (const [name] of copies) await copyFile(join(dir, name.startsWith(good.h) ? `${good.h}.sfl` : short), join(dir, name));
    // Copies of a sidecar (hidden; one without an entry is an orphan), junk, sync-client files.
    await copyFile(join(dir, `${good.h}.sfn`), join(dir, `${good.h} (conflicted copy 2026-11-22).sfn`));
    await writeFile(join(dir, `${'q'.repeat(26)} (1).sfn`), `${good.E}\n`);
    await copyFile(join(dir, short), join(dir, 'junk name.txt'));
    await copyFile(join(dir, short), join(dir, `${'r'.repeat(26)}.sfl`)); // a long entry with no sidecar
    const syncFiles = ['.sync_0123abcd.db', '._sync_0123abcd.db', '._sync_0123abcd.db-wal', '.sync_0123abcd.db-shm', '.owncloudsync.log', '.nextcloudsync.log.1', '.sync-exclude.lst', '.stfolder', '.dropbox.attr', 'Icon\r'];
    for (const name of syncFiles) await writeFile(join(dir, name), 'x');
    await mkdir(join(dir, '.sync'));

    const listing = await listFresh(fs);
    const result = await scrubVault({ cipherDir: dir, masterKey: KEY });
    const entries = [...listing.entries.values()].map((e) => e.cipherName);
    const { view, others } = scrubView(entries, result.problems);
    expect(view).toEqual(await mountView(fs, listing));
    const fifo = variants.get('fifo')!.h;
    expect(others).toEqual([`orphan-sidecar ${'q'.repeat(26)} (1).sfn`, `unexpected-type ${fifo}.sfn`]);

    // What both read: only the exact sidecar decodes; hidden names are neither shown nor reported.
    for (const [label, { h }] of variants) {
      expect(listing.entries.get(`sidecar-${label}-for-a-rather-long-name.txt`)?.cipherName, label).toBe(label === 'lf' ? `${h}.sfl` : undefined);
      expect(listing.undecryptable.some((e) => e.cipherName === `${h}.sfl`), label).toBe(label !== 'lf');
    }
    for (const [name, shows] of copies) expect(listing.entries.get(shows)?.cipherName, shows).toBe(name);
    for (const name of [...syncFiles, '.sync', `${good.h}.sfn`, `${good.h} (conflicted copy 2026-11-22).sfn`]) {
      expect(entries.includes(name), JSON.stringify(name)).toBe(false);
      expect(result.problems.filter((p) => p.rel === name), JSON.stringify(name)).toEqual([]);
    }
    expect(listing.entries.get('UNDECRYPTABLE junk name.txt')?.undecryptable).toBe(true);
    expect(listing.entries.get(`UNDECRYPTABLE ${'r'.repeat(26)}.sfl`)?.undecryptable).toBe(true);
  });

  it('20,000 junk names that all show as one placeholder are named in linear time, alike', { timeout: 120_000 }, async () => {
    // Regression: "(duplicate n)" was searched from n = 2 for every entry, each try cutting
    // the name in a slow loop: 6,000 such names held the event loop for 30 s per listing.
    const { dir, fs } = await newVault();
    await fs.symlink('target', '/link');
    const target = await readlink((await resolve(fs, '/link')).cipherPath);
    const count = 20_000;
    const junk = (i: number) => `${'X'.repeat(200)}${i}`; // the placeholder keeps 200 code points
    for (let i = 0; i < count; i++) await symlink(target, join(dir, junk(i)));

    let start = performance.now();
    const listing = await listFresh(fs);
    const listMs = performance.now() - start;
    start = performance.now();
    const result = await scrubVault({ cipherDir: dir, masterKey: KEY });
    const scrubMs = performance.now() - start;

    expect(listing.undecryptable).toHaveLength(count);
    const placeholder = `UNDECRYPTABLE ${'X'.repeat(200)}`;
    expect(listing.entries.get(placeholder)?.cipherName).toBe(junk(0));
    const last = Array.from({ length: count }, (_, i) => junk(i)).sort(compareCipherNames).at(-1);
    expect(listing.entries.get(`${placeholder} (duplicate ${count})`)?.cipherName).toBe(last);
    expect(result.problems.filter((p) => p.kind === 'undecryptable-name')).toHaveLength(count);
    // Generous bounds (the quadratic search took minutes here), not a timing benchmark.
    expect(listMs).toBeLessThan(10_000);
    expect(scrubMs).toBeLessThan(30_000);
  });

  it('a name stored in the form sealfs does not write for it is undecryptable, alike (FORMAT.md §10.3)', async () => {
    // Regression: a planted long form of a short name sorted first and took the name, so
    // writes to "s.txt" went to the planted copy; a short form of a long name also decoded.
    const { dir, fs } = await newVault({ maxNameLength: 64 });
    const longName = 'a-rather-long-name-that-needs-a-sidecar.txt';
    await put(fs, `/${longName}`, 'genuine long');
    await put(fs, '/s.txt', 'genuine short');
    const long = (await resolve(fs, `/${longName}`)).entry;
    const short = (await resolve(fs, '/s.txt')).entry.cipherName;
    const E = (await readFile(join(dir, long.sidecar!), 'latin1')).slice(0, -1);
    expect(E.length).toBeGreaterThan(64);
    await copyFile(join(dir, long.cipherName), join(dir, E)); // E stored short, though longer than L
    const h = longNameHash(short);
    await copyFile(join(dir, short), join(dir, `${h}.sfl`)); // a short E stored long
    await writeFile(join(dir, `${h}.sfn`), `${short}\n`);
    expect(`${h}.sfl` < short).toBe(true); // it sorts first: it would take the name

    const listing = await listFresh(fs);
    expect(listing.entries.get('s.txt')?.cipherName).toBe(short);
    expect(listing.entries.get(longName)?.cipherName).toBe(long.cipherName);
    expect(listing.undecryptable.map((e) => e.cipherName).sort()).toEqual([E, `${h}.sfl`].sort());
    expect(names(listing)).not.toContain('s (duplicate 2).txt');

    const result = await scrubVault({ cipherDir: dir, masterKey: KEY });
    const entries = [...listing.entries.values()].map((e) => e.cipherName);
    expect(scrubView(entries, result.problems).view).toEqual(await mountView(fs, listing));
    const wrong = result.problems.filter((p) => p.detail.includes('not stored in the one form'));
    expect(wrong.map((p) => [p.kind, p.rel]).sort()).toEqual([['undecryptable-name', E], ['undecryptable-name', `${h}.sfl`]].sort());
    expect(result.problems).toHaveLength(2);
  });

  it('an undecryptable placeholder and a real name that equals it are told apart alike', async () => {
    const { dir, fs } = await newVault();
    await put(fs, '/UNDECRYPTABLE junk', 'a real file with that name');
    await put(fs, '/UNDECRYPTABLE junk (duplicate 2)', 'and one more');
    await copyFile((await resolve(fs, '/UNDECRYPTABLE junk')).cipherPath, join(dir, 'junk'));
    const listing = await listFresh(fs);
    const result = await scrubVault({ cipherDir: dir, masterKey: KEY });
    const entries = [...listing.entries.values()].map((e) => e.cipherName);
    expect(scrubView(entries, result.problems).view).toEqual(await mountView(fs, listing));
    // Which of the three keeps the plain name depends on the cipher names' order; all three show.
    expect(listing.entries.size).toBe(3);
    expect(names(listing)[0]).toBe('UNDECRYPTABLE junk');
  });
});
