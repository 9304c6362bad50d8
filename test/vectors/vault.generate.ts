/**
 * Writes the frozen vaults test/vectors/vault-v1/ and test/vectors/vault-v1-damaged/ —
 * ONCE. It refuses to run if either folder exists, and writes each expected.json with `wx`: these
 * folders pin what sealfs's own code writes (FORMAT.md §3-§6 and Part II, the key store of
 * §12 and the recovery key of §13), and a change there must be a new format version with new
 * vaults next to these, never a silent regeneration. What each folder holds and how to run
 * this: test/vectors/README.md, "Frozen vaults".
 *
 * Everything is made by today's sealfs code: initVault (vault file, key store with the
 * cheapest scrypt setting), PlainFs (the code behind the mount: names, long names, sidecars,
 * directory ids, symlinks, hard links, contents), encodeRecoveryKey, and the built CLI
 * (`dist/src/cli/main.js scrub --json`) for the expected scrub reports. Only the conflict
 * copies are made by hand, as a sync client makes them: another replica's version of a
 * cipher file, stored under the cipher name with the client's marker added.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, copyFile, mkdir, mkdtemp, open, readdir, readFile, readlink, rename, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { constants } from 'node:fs';
import { expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit.js';
import { DEFAULT_MAX_NAME_LENGTH, initVault } from '../../src/vault/init.js';
import { readKeyStoreFile } from '../../src/vault/keystore.js';
import { LONG_DATA_SUFFIX, LONG_NAME_SUFFIX } from '../../src/vault/longnames.js';
import { PlainFs } from '../../src/vault/plainfs.js';
import { encodeRecoveryKey, parseRecoveryKey } from '../../src/vault/recovery.js';
import { openVault } from '../../src/vault/vault.js';
import { CLI } from '../build.js';
import { readPlain, writePlain } from '../helpers-rclone.js';
import {
  copyCipherTree,
  copyKeystore,
  copyVault,
  DIR_MODE,
  EXPECTED,
  fileModeFor,
  normaliseScrub,
  VAULT_V1,
  VAULT_V1_DAMAGED,
  type HardLink,
  type PlainEntry,
  type ScrubReport,
  type VaultV1,
  type VaultV1Damaged,
} from './frozenvault.js';

const PASSPHRASE = 'correct horse battery staple, frozen in 2026';
const CHUNK = 4096;
/** Byte i of a generated file: (i · 7 + seed) mod 256. */
const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff);
const text = (t: string) => new TextEncoder().encode(t);

/** Long enough that E exceeds maxNameLength 200: a file name above 109 bytes, a directory name above 101. */
const LONG_FILE = 'Minutes of the annual general meeting of the neighbourhood gardening association, with every amendment and vote.txt';
const LONG_DIR = 'Photographs and scanned letters from the summer holidays at the lake house, sorted by year and by family';
const LONG_NOTE = 'A second file whose name is much too long to be stored as it is, so that it takes the long-name scheme as well.md';
const LONG_ROOT = 'Travel itinerary with all bookings, tickets, confirmation numbers and the addresses of every hotel of the trip.pdf';

interface FileSpec {
  readonly path: string;
  readonly data: Uint8Array;
  readonly executable?: boolean;
}

const DIRS = ['/Documents', '/Documents/Taxes', '/Documents/Taxes/2026', `/${LONG_DIR}`, '/日本語'];
const FILES: FileSpec[] = [
  { path: '/README.txt', data: text('This vault is a frozen test vector of sealfs format version 1.\n') },
  { path: '/empty.txt', data: new Uint8Array(0) },
  { path: '/big.bin', data: bytes(2 * CHUNK + 1808, 1) }, // 3 chunks, the last partial
  { path: '/run.sh', data: text('#!/bin/sh\necho "hello from the vault"\n'), executable: true },
  { path: `/${LONG_ROOT}`, data: text('Day 1: train to Kyoto.\n') },
  { path: '/Documents/shared.txt', data: text('One file, two names (a hard link).\n') },
  { path: '/Documents/photo.jpg', data: bytes(CHUNK + 1904, 2) }, // 2 chunks
  { path: `/Documents/${LONG_FILE}`, data: text('Motion carried, 12 to 3.\n') },
  { path: '/Documents/Taxes/scan.png', data: bytes(CHUNK + 404, 3) }, // 2 chunks
  { path: '/Documents/Taxes/2026/return.pdf', data: bytes(CHUNK + 904, 4) }, // 2 chunks
  { path: '/Documents/Taxes/2026/receipts.zip', data: bytes(CHUNK + 300, 5) }, // 2 chunks
  { path: `/${LONG_DIR}/inside.txt`, data: text('A file inside a long-named folder.\n') },
  { path: `/${LONG_DIR}/${LONG_NOTE}`, data: text('# Long names\n') },
  { path: '/日本語/こんにちは.txt', data: text('こんにちは、世界\n') },
  { path: '/日本語/メモ.txt', data: text('牛乳を買う\n') },
];
const SYMLINKS = [
  { path: '/link-to-notes', target: 'notes.txt' },
  { path: `/${LONG_DIR}/up`, target: '../README.txt' },
];
/** [existing name, second name]: the second is a hard link, in another directory. */
const HARD_LINKS: [string, string][] = [['/Documents/shared.txt', '/日本語/shared (link).txt']];

/** notes.txt as this replica has it, and the other replica's version a sync client keeps as a conflict copy. */
const NOTES = { path: '/notes.txt', mine: text('Shopping: bread, milk, tea.\n'), theirs: text('Shopping: bread, milk, coffee, apples.\n') };
const NOTES_COPY = { suffix: ' (conflicted copy 2026-11-22)', shown: '/notes (conflict 2026-11-22).txt' }; // Dropbox
/** A long-named file's conflict copy as Syncthing names it (before the extension `.sfl`). */
const LONG_THEIRS = text('Motion carried, 11 to 4.\n');
const LONG_COPY = { marker: '.sync-conflict-20261122-101010-ABCDEFG', shown: `/Documents/${LONG_FILE.replace(/\.txt$/, ' (conflict 2026-11-22 101010 ABCDEFG).txt')}` };

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
/** Sorted by path (UTF-16 code units), so the JSON files are stable. */
const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** The plaintext tree the frozen vault must show. */
function expectedTree(): PlainEntry[] {
  const entries: PlainEntry[] = DIRS.map((path) => ({ path, type: 'dir', mode: DIR_MODE.toString(8), size: 0 }));
  const linksOf = (path: string) => {
    const group = HARD_LINKS.find((g) => g.includes(path));
    return group ? { links: group.filter((p) => p !== path) } : {};
  };
  const file = (path: string, data: Uint8Array, executable = false): PlainEntry => ({
    path,
    type: 'file',
    mode: fileModeFor(executable).toString(8),
    size: data.length,
    sha256: sha256(data),
    ...linksOf(path),
  });
  for (const f of FILES) entries.push(file(f.path, f.data, f.executable));
  for (const [existing, second] of HARD_LINKS) entries.push(file(second, FILES.find((f) => f.path === existing)!.data));
  entries.push(file(NOTES.path, NOTES.mine), file(NOTES_COPY.shown, NOTES.theirs), file(LONG_COPY.shown, LONG_THEIRS));
  for (const s of SYMLINKS) entries.push({ path: s.path, type: 'symlink', mode: '777', size: Buffer.byteLength(s.target), target: s.target });
  return entries.sort(byPath);
}

async function rewrite(fs: PlainFs, path: string, data: Uint8Array): Promise<void> {
  const fh = await fs.open(path, constants.O_WRONLY | constants.O_TRUNC);
  try {
    await fs.write(fh, 0, data);
  } finally {
    await fs.release(fh);
  }
}

/** Builds the vault through PlainFs; returns its master key, the key file and the hard links (relative cipher paths). */
async function buildVault(work: string) {
  const cipherDir = join(work, 'cipher');
  const keystoreDir = join(work, 'keystore');
  // The smallest calibration target: the first try, the floor N = 2^14, always takes longer than 1 µs.
  const init = await initVault({ cipherDir, keystoreDir, passphrase: PASSPHRASE, cipher: 'aes-256-gcm', chunkSize: CHUNK, maxNameLength: DEFAULT_MAX_NAME_LENGTH, kdfTargetMs: 0.001 });
  const { file: keyFile } = await readKeyStoreFile(keystoreDir, init.config.vaultId);
  expect([keyFile.kdf.N, keyFile.kdf.r, keyFile.kdf.p]).toEqual([16384, 8, 1]);

  const vault = await openVault(cipherDir, init.masterKey);
  const fs = new PlainFs(vault);
  const cipherOf = async (plainPath: string) => relative(cipherDir, (await vault.tree.resolve(plainPath)).cipherPath);
  for (const dir of DIRS) await fs.mkdir(dir, 0o755);
  for (const f of FILES) {
    await writePlain(fs, f.path, f.data);
    if (f.executable) await fs.chmod(f.path, 0o755);
  }
  for (const s of SYMLINKS) await fs.symlink(s.target, s.path);
  for (const [existing, second] of HARD_LINKS) await fs.link(existing, second);

  // Conflict copies: the other replica's version of a cipher file, under the name its sync client gives it.
  await writePlain(fs, NOTES.path, NOTES.theirs);
  const notesCipher = await cipherOf(NOTES.path);
  await copyFile(join(cipherDir, notesCipher), join(cipherDir, notesCipher + NOTES_COPY.suffix));
  await rewrite(fs, NOTES.path, NOTES.mine);
  const longCipher = await cipherOf(`/Documents/${LONG_FILE}`);
  expect(longCipher.endsWith(LONG_DATA_SUFFIX)).toBe(true);
  const longData = (await readPlain(fs, `/Documents/${LONG_FILE}`)).slice();
  await rewrite(fs, `/Documents/${LONG_FILE}`, LONG_THEIRS);
  await copyFile(join(cipherDir, longCipher), join(cipherDir, longCipher.replace(LONG_DATA_SUFFIX, LONG_COPY.marker + LONG_DATA_SUFFIX)));
  await rewrite(fs, `/Documents/${LONG_FILE}`, longData);

  for (const dir of [LONG_DIR, `${LONG_DIR}/${LONG_NOTE}`, LONG_ROOT]) expect(await cipherOf('/' + dir)).toMatch(/\.sfl$/);
  const hardLinks: HardLink[] = [];
  for (const [existing, second] of HARD_LINKS) hardLinks.push({ cipherPath: await cipherOf(second), sameAs: await cipherOf(existing) });
  await fs.releaseAll();
  return { cipherDir, keystoreDir, masterKey: init.masterKey, vaultId: init.config.vaultId, hardLinks, cipherOf };
}

/** Every entry of a plaintext tree read back through PlainFs, in the manifest's form. */
async function readTree(fs: PlainFs, dir = '/'): Promise<Omit<PlainEntry, 'links'>[]> {
  const out: Omit<PlainEntry, 'links'>[] = [];
  for (const name of await fs.readdir(dir)) {
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const st = await fs.getattr(path);
    const mode = (st.mode & 0o7777).toString(8);
    if ((st.mode & constants.S_IFMT) === constants.S_IFDIR) {
      out.push({ path, type: 'dir', mode, size: 0 }, ...(await readTree(fs, path)));
    } else if ((st.mode & constants.S_IFMT) === constants.S_IFLNK) {
      out.push({ path, type: 'symlink', mode, size: st.size, target: await fs.readlink(path) });
    } else {
      out.push({ path, type: 'file', mode, size: st.size, sha256: sha256(await readPlain(fs, path)) });
    }
  }
  return out;
}

/** `sealfs scrub --json` of the built CLI on a working copy of a frozen vault. */
function scrubJson(cipherDir: string, keystoreDir: string, passFile: string, expectedCode: number): ScrubReport {
  const run = spawnSync(process.execPath, [CLI, 'scrub', cipherDir, '--json', '--keystore', keystoreDir, '--passphrase-file', passFile], {
    encoding: 'utf8',
    env: { ...process.env, XDG_STATE_HOME: join(keystoreDir, '..', 'state') },
  });
  expect(run.status, run.stderr).toBe(expectedCode);
  return normaliseScrub(run.stdout, cipherDir);
}

async function writeNew(path: string, content: string): Promise<void> {
  await writeFile(path, content, { flag: 'wx' });
}

/** The sidecar of a long-named entry (relative cipher path ending in `.sfl`). */
const sidecarOf = (rel: string) => rel.slice(0, -LONG_DATA_SUFFIX.length) + LONG_NAME_SUFFIX;

/** Directories below `root` with nothing in them: git would not keep them. */
async function emptyDirs(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(join(root, rel), { withFileTypes: true });
  const nested = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => emptyDirs(root, rel ? `${rel}/${e.name}` : e.name)));
  return [...(entries.length === 0 ? [rel] : []), ...nested.flat()];
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** Flips one bit of the byte at `offset`. */
async function flip(path: string, offset: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await handle.read(b, 0, 1, offset);
    b[0]! ^= 0x01;
    await handle.write(b, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

/** Swaps the bytes [offset, offset + length) of two files. */
async function swap(a: string, b: string, offset: number, length: number): Promise<void> {
  const [x, y] = [await readFile(a), await readFile(b)];
  const xs = Buffer.from(x.subarray(offset, offset + length));
  y.copy(x, offset, offset, offset + length);
  xs.copy(y, offset);
  await writeFile(a, x);
  await writeFile(b, y);
}

it.skipIf(process.env.SEALFS_WRITE_VECTORS !== '1')('writes the frozen vaults (refuses to overwrite)', { timeout: 120_000 }, async () => {
  const existing = [VAULT_V1, VAULT_V1_DAMAGED].filter((dir) => existsSync(dir));
  expect(existing, 'frozen vaults are never regenerated: a format change is a new version, in new folders').toEqual([]);
  expect(existsSync(CLI), `${CLI} (npm run build:ts)`).toBe(true);
  const work = await mkdtemp(join(tmpdir(), 'sealfs-vault-v1-'));
  try {
    const built = await buildVault(work);
    const recoveryKey = encodeRecoveryKey(built.masterKey);
    expect(Buffer.from(parseRecoveryKey(recoveryKey)).equals(Buffer.from(built.masterKey))).toBe(true);

    // vault-v1: the cipher folder without the hard links' second names, the key store.
    await mkdir(VAULT_V1);
    const skip = new Set(built.hardLinks.map((l) => l.cipherPath));
    await copyCipherTree(built.cipherDir, join(VAULT_V1, 'cipher'), skip);
    await copyCipherTree(built.keystoreDir, join(VAULT_V1, 'keystore'));

    // Read back from a working copy made as the tests make it, with PlainFs and the CLI.
    const check = join(work, 'check');
    await copyVault(VAULT_V1, join(check, 'cipher'), built.hardLinks);
    await copyKeystore(VAULT_V1, join(check, 'keystore'));
    const passFile = join(work, 'pass');
    await writeFile(passFile, `${PASSPHRASE}\n`);
    const tree = expectedTree();
    const fs = new PlainFs(await openVault(join(check, 'cipher'), built.masterKey), { readOnly: true });
    expect((await readTree(fs)).sort(byPath)).toEqual(tree.map(({ links: _links, ...rest }) => rest));
    const cleanScrub = scrubJson(join(check, 'cipher'), join(check, 'keystore'), passFile, EXIT.OK);
    expect(cleanScrub.problems).toEqual([]);
    const expected: VaultV1 = {
      passphrase: PASSPHRASE,
      recoveryKey,
      masterKey: Buffer.from(built.masterKey).toString('hex'),
      vaultId: built.vaultId,
      cipher: 'aes-256-gcm',
      chunkSize: CHUNK,
      maxNameLength: DEFAULT_MAX_NAME_LENGTH,
      hardLinks: built.hardLinks,
      tree,
      scrub: cleanScrub,
    };
    await writeNew(join(VAULT_V1, EXPECTED), json(expected));

    // vault-v1-damaged: a copy of vault-v1 with known damage.
    const d = join(VAULT_V1_DAMAGED, 'cipher');
    await copyCipherTree(join(VAULT_V1, 'cipher'), d);
    const at = (plainPath: string) => built.cipherOf(plainPath);
    const damage: { cipherPath: string; what: string }[] = [];
    const note = (cipherPath: string, what: string) => damage.push({ cipherPath, what });
    const STORED = CHUNK + 28;

    const big = await at('/big.bin');
    await flip(join(d, big), 24 + STORED + 12 + 100);
    note(big, 'one bit flipped in the ciphertext of chunk 1 (of 3)');
    const ret = await at('/Documents/Taxes/2026/return.pdf');
    await truncate(join(d, ret), 24 + STORED);
    note(ret, 'cut at the end of chunk 0 (of 2): the last chunk is gone');
    const photo = await at('/Documents/photo.jpg');
    const scan = await at('/Documents/Taxes/scan.png');
    await swap(join(d, photo), join(d, scan), 24, STORED);
    note(photo, 'stored chunk 0 swapped with stored chunk 0 of Documents/Taxes/scan.png');
    note(scan, 'stored chunk 0 swapped with stored chunk 0 of Documents/photo.jpg');
    const empty = await at('/empty.txt');
    await flip(join(d, empty), 0);
    note(empty, 'first byte of the magic changed (S → R)');
    const run = await at('/run.sh');
    await appendFile(join(d, run), Buffer.from([0, 0, 0]));
    note(run, '3 bytes appended: its only (final) chunk no longer authenticates');
    const receipts = await at('/Documents/Taxes/2026/receipts.zip');
    await truncate(join(d, receipts), 24 + STORED + 10);
    note(receipts, 'cut 10 bytes into chunk 1: not a size any writer produces');
    const readme = await at('/README.txt');
    const renamed = (readme[0] === 'a' ? 'b' : 'a') + readme.slice(1);
    await rename(join(d, readme), join(d, renamed));
    note(renamed, `renamed from ${readme} (first character changed): the name does not decrypt`);
    const hello = await at('/日本語/こんにちは.txt');
    const moved = `${(await at('/Documents'))}/${hello.split('/').pop()}`;
    await rename(join(d, hello), join(d, moved));
    note(moved, `moved here from ${hello}: a name is bound to its directory`);
    const longNote = await at(`/${LONG_DIR}/${LONG_NOTE}`);
    const missing = sidecarOf(longNote);
    await unlink(join(d, missing));
    note(missing, 'sidecar deleted');
    const longRoot = await at(`/${LONG_ROOT}`);
    const badSidecar = sidecarOf(longRoot);
    const sidecarText = await readFile(join(d, badSidecar), 'utf8');
    await writeFile(join(d, badSidecar), (sidecarText[0] === 'a' ? 'b' : 'a') + sidecarText.slice(1));
    note(badSidecar, 'first character of the sidecar changed: it no longer hashes to its name');
    const orphan = `${await at('/Documents/Taxes')}/${'a'.repeat(26)}${LONG_NAME_SUFFIX}`;
    await writeFile(join(d, orphan), sidecarText);
    note(orphan, `a copy of ${badSidecar} (before its damage) under a hash no entry has`);
    const link = await at('/link-to-notes');
    const linkTarget = await readlink(join(d, link));
    await unlink(join(d, link));
    await symlink((linkTarget[0] === 'A' ? 'B' : 'A') + linkTarget.slice(1), join(d, link));
    note(link, 'first character of the symlink target changed');

    expect([...(await emptyDirs(join(VAULT_V1, 'cipher'))), ...(await emptyDirs(d))]).toEqual([]);
    const dcheck = join(work, 'dcheck');
    const damagedHardLinks = built.hardLinks;
    await copyVault(VAULT_V1_DAMAGED, join(dcheck, 'cipher'), damagedHardLinks);
    const damagedScrub = scrubJson(join(dcheck, 'cipher'), join(check, 'keystore'), passFile, EXIT.PROBLEMS);
    // Every damage is reported, and nothing else (the orphan's and each sidecar's problem name the sidecar).
    const reported = [...new Set(damagedScrub.problems.map((p) => p.cipherPath.replace('<cipher>/', '')))].sort();
    expect(reported).toEqual(damage.map((x) => x.cipherPath).sort());
    const result: VaultV1Damaged = { hardLinks: damagedHardLinks, damage, scrub: damagedScrub };
    await writeNew(join(VAULT_V1_DAMAGED, EXPECTED), json(result));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
