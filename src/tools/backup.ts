/**
 * Backups of a cipher directory to a second, independent location through rclone, their
 * verification with the key, restore of a whole vault, and repair of what scrub flags
 * from the backup copy. Only ciphertext ever moves; a key found inside the cipher
 * directory stops a backup before anything is sent.
 */
import { randomBytes } from 'node:crypto';
import * as fsc from 'node:fs';
import type { Dirent, Stats } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { MAGIC } from '../crypto/header.js';
import { KEY_FILE_PREFIX } from '../crypto/keyfile.js';
import { cipherIoFor, type CipherIo } from '../vault/cipherio.js';
import { typeWords } from '../vault/controlfile.js';
import { isSyncClientMarker } from '../vault/syncclients.js';
import { KEYSTORE_FORMAT, resolveLoosely } from '../vault/keystore.js';
import { isInside, stateDir } from '../vault/paths.js';
import { readVaultFile, VAULT_FILE, type StoredVaultFile } from '../vault/vaultfile.js';
import { ToolError } from './errors.js';
import { remoteJoin, runRclone, type RcloneOptions, type RcloneStats } from './rclone.js';
import {
  scrubVault,
  sidecarFault,
  symlinkFault,
  vaultFileFault,
  verifierContext,
  verifySealedFile,
  type ScrubOptions,
  type ScrubProblem,
  type ScrubResult,
} from './scrub.js';

// ---------------------------------------------------------------------------------------
// Keys must never travel with the backup

/** Bytes read from each file when looking for key material. */
const KEY_SCAN_BYTES = 4096;
const RECOVERY_KEY = /\b[0-9A-HJKMNP-TV-Z]{5}(?:-[0-9A-HJKMNP-TV-Z]{5}){10}\b/i;
const KEYGEN_FILE = new RegExp(`${KEY_FILE_PREFIX}\\s*[0-9a-fA-F]{64}`);
const KEYSTORE_FILE = new RegExp(`"format"\\s*:\\s*"${KEYSTORE_FORMAT}"`);
const RAW_KEY_BYTES = 32;

/** What a file's first bytes say about it holding key material, if anything. */
function keyMaterialIn(head: Buffer, size: number): string | undefined {
  if (head.length >= MAGIC.length && MAGIC.every((b, i) => head[i] === b)) return undefined; // a sealed file
  const text = head.toString('latin1');
  if (KEYSTORE_FILE.test(text)) return 'a sealfs key store file (wrapped master key)';
  if (KEYGEN_FILE.test(text)) return 'a sealfs key file (master key in clear)';
  if (RECOVERY_KEY.test(text)) return 'what looks like a sealfs recovery key (the master key in clear)';
  if (size === RAW_KEY_BYTES) return 'a 32-byte file, which may be a raw key file (no sealfs file is that small)';
  return undefined;
}

/**
 * Key material inside the cipher directory: a key store folder, key store files, key files,
 * recovery keys. Reads at most KEY_SCAN_BYTES of each file; follows no symbolic link.
 */
export async function findKeyMaterial(cipherDir: string, keystoreDirs: readonly string[]): Promise<string[]> {
  const root = await realpath(cipherDir);
  const findings: string[] = [];
  for (const dir of keystoreDirs) {
    const real = await resolveLoosely(dir);
    if (isInside(real, root)) findings.push(`${real}: the key store folder is inside the cipher directory`);
  }
  // The provider may swap a folder for a link or a file for a FIFO at any time: the scan goes
  // through the vault's confined calls, which follow no link and read regular files only.
  const io = cipherIoFor({ directIo: false }, root);
  async function walk(dir: string): Promise<void> {
    let items: Dirent[];
    try {
      items = await io.readdirTypes(dir);
    } catch {
      return; // unreadable to us: rclone will report it
    }
    for (const item of items) {
      if (findings.length >= 20) return;
      const path = join(dir, item.name);
      if (item.isDirectory()) await walk(path);
      else if (item.isFile()) {
        let size: number;
        let start: Buffer;
        try {
          size = (await io.lstat(path)).size;
          start = Buffer.from(await io.readBounded(path, KEY_SCAN_BYTES));
        } catch {
          continue; // gone, or no longer a regular file: nothing of ours to find there
        }
        const what = keyMaterialIn(start, size);
        if (what) findings.push(`${path}: ${what}`);
      }
    }
  }
  await walk(root);
  return findings;
}

/** Refuses (ToolError 'keys-inside') when any key material lies inside the cipher directory. */
export async function assertNoKeysInside(cipherDir: string, keystoreDirs: readonly string[]): Promise<void> {
  const findings = await findKeyMaterial(cipherDir, keystoreDirs);
  if (findings.length === 0) return;
  throw new ToolError(
    'keys-inside',
    `refusing to back up ${cipherDir}: key material inside the cipher directory would be shipped with the ciphertext ` +
      `(the key on top of the safe). Move it out first: ${findings.slice(0, 3).join('; ')}${findings.length > 3 ? `; and ${findings.length - 3} more` : ''}`,
  );
}

// ---------------------------------------------------------------------------------------
// Backup

export interface TransferSummary {
  /** Files transferred. */
  readonly files: number;
  readonly bytes: number;
  /** Files found already up to date. */
  readonly checks: number;
  /** Files deleted on the destination (mirror only). */
  readonly deletes: number;
  readonly seconds: number;
}

function summaryOf(stats: RcloneStats | undefined, seconds: number): TransferSummary {
  return { files: stats?.transfers ?? 0, bytes: stats?.bytes ?? 0, checks: stats?.checks ?? 0, deletes: stats?.deletes ?? 0, seconds };
}

export interface BackupOptions extends RcloneOptions {
  readonly cipherDir: string;
  readonly remote: string;
  /** Delete remote files missing locally (`rclone sync`); default: never delete (`rclone copy`). */
  readonly mirror?: boolean;
}

/** Copies the cipher directory to REMOTE (incremental; deletes remotely only with `mirror`). */
export async function backupCipherDir(options: BackupOptions): Promise<TransferSummary> {
  const started = performance.now();
  const run = await runRclone([options.mirror ? 'sync' : 'copy', resolve(options.cipherDir), options.remote, '--links'], options);
  return summaryOf(run.stats, (performance.now() - started) / 1000);
}

/** Downloads REMOTE (all of it) into the local folder `dest`. */
export async function downloadRemote(remote: string, dest: string, options: RcloneOptions = {}): Promise<TransferSummary> {
  const started = performance.now();
  const run = await runRclone(['copy', remote, dest, '--links'], options);
  return summaryOf(run.stats, (performance.now() - started) / 1000);
}

/**
 * Fetches the given '/'-separated paths of REMOTE into `workDir`/copy (same relative
 * paths); returns that folder and the paths that arrived. Paths missing on the remote are
 * simply absent. A symbolic link is asked for as `<path>.rclonelink`.
 */
export async function fetchFromRemote(remote: string, rels: readonly string[], workDir: string, options: RcloneOptions = {}): Promise<{ dir: string; arrived: Set<string> }> {
  const dir = join(workDir, 'copy');
  const list = join(workDir, 'files-from');
  await mkdir(dir, { mode: 0o700 });
  await writeFile(list, rels.map((r) => r + '\n').join(''), { mode: 0o600 });
  await runRclone(['copy', remote, dir, '--files-from', list, '--no-traverse', '--links'], { ...options, liveStats: false });
  const arrived = new Set<string>();
  for (const rel of rels) {
    const local = rel.endsWith('.rclonelink') ? rel.slice(0, -'.rclonelink'.length) : rel;
    if (await lstat(join(dir, local)).then(() => true, () => false)) arrived.add(rel);
  }
  return { dir, arrived };
}

/** A private temporary folder (0700) for downloads; TMPDIR chooses where. */
export function tempFolder(prefix: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return mkdtemp(join(env.TMPDIR || tmpdir(), prefix));
}

function noVaultIn(remote: string): ToolError {
  return new ToolError('no-vault', `${remote} holds no sealfs vault (no ${VAULT_FILE}); nothing was restored`);
}

/**
 * The vault file of the backup at REMOTE, read (not yet verified: that needs the key);
 * undefined when the backup has none. Nothing else is downloaded.
 */
export async function readBackupVaultFile(remote: string, options: RcloneOptions = {}): Promise<StoredVaultFile | undefined> {
  const work = await tempFolder('sealfs-vaultfile-', options.env);
  try {
    const { dir, arrived } = await fetchFromRemote(remote, [VAULT_FILE], work, options);
    return arrived.size ? await readVaultFile(dir) : undefined;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Like readBackupVaultFile, but a backup without a vault file is an error. */
export async function requireBackupVaultFile(remote: string, options: RcloneOptions = {}): Promise<StoredVaultFile> {
  const stored = await readBackupVaultFile(remote, options);
  if (!stored) throw noVaultIn(remote);
  return stored;
}

export interface VerifyRemoteOptions extends RcloneOptions {
  /** rclone's statistics while downloading (onStats/liveStats) are those of the download. */
  readonly remote: string;
  readonly masterKey: Uint8Array;
  readonly backend?: string;
  readonly onProgress?: ScrubOptions['onProgress'];
  /** Called when the download is done and the scrub starts. */
  readonly onScrubStart?: (downloaded: TransferSummary, dir: string) => void | Promise<void>;
}

/**
 * Downloads the remote copy into a temporary folder and scrubs it with the key, exactly as
 * `sealfs scrub` would, reporting REMOTE paths; the temporary folder is always removed.
 */
export async function verifyRemote(options: VerifyRemoteOptions): Promise<ScrubResult & { downloaded: TransferSummary }> {
  const dir = await tempFolder('sealfs-verify-', options.env);
  try {
    const downloaded = await downloadRemote(options.remote, dir, options);
    await options.onScrubStart?.(downloaded, dir);
    const result = await scrubVault({
      cipherDir: dir,
      masterKey: options.masterKey,
      backend: options.backend,
      showCipherPath: (rel) => remoteJoin(options.remote, rel),
      onProgress: options.onProgress,
    });
    return { ...result, downloaded };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Restore

/** Whether `dir` holds nothing but sync-client markers; undefined when it does not exist. */
async function isEmptyFolder(dir: string): Promise<boolean | undefined> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!st.isDirectory()) return false;
  return (await readdir(dir)).every(isSyncClientMarker);
}

/** Checks that `cipherDir` can receive a restore: absent (with an existing parent) or empty. */
export async function checkRestoreTarget(cipherDir: string): Promise<void> {
  const empty = await isEmptyFolder(cipherDir);
  if (empty === false) {
    throw new ToolError('target', `${cipherDir} exists and is not an empty folder; restore needs a new or empty folder (nothing is ever overwritten)`);
  }
  if (empty === undefined && !(await stat(dirname(resolve(cipherDir))).then((s) => s.isDirectory(), () => false))) {
    throw new ToolError('target', `${dirname(resolve(cipherDir))}: no such folder (create it first, or check the path)`);
  }
}

/**
 * Downloads REMOTE into `cipherDir`: into a staging folder next to it first, moved into
 * place only when the whole download succeeded (a failed restore leaves nothing behind).
 */
export async function restoreCipherDir(remote: string, cipherDir: string, options: RcloneOptions = {}): Promise<TransferSummary> {
  let target = resolve(cipherDir);
  await checkRestoreTarget(target);
  // An existing folder is the one its path names now (a link the user made is followed
  // once, here); from then on it is reached only through the confined calls, rooted at its
  // parent, where the staging folder is made too.
  const existing = (await isEmptyFolder(target)) !== undefined;
  if (existing) target = await realpath(target);
  const staging = join(dirname(target), `.${basename(target)}.sealfs-restore-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    const summary = await downloadRemote(remote, staging, options);
    if (!(await lstat(join(staging, VAULT_FILE)).then(() => true, () => false))) {
      throw noVaultIn(remote);
    }
    await checkRestoreTarget(target);
    if (!existing) {
      // rename(2) of a folder never lands in a link planted at the target (ENOTDIR) nor in a
      // folder that is not empty (ENOTEMPTY).
      await rename(staging, target);
    } else {
      await moveIntoFolder(staging, target);
      await rm(staging, { recursive: true, force: true });
    }
    return summary;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Moves what `staging` holds into the existing folder `target` (its sibling). The target is
 * what a sync client shares with the provider, who may swap it for a link to another folder
 * after the checks: the moves go through the confined calls beneath the parent folder, so
 * such a target fails (ELOOP, ENOTDIR) instead of receiving, or overwriting, anything.
 */
async function moveIntoFolder(staging: string, target: string): Promise<void> {
  const io = cipherIoFor({ directIo: false }, dirname(target));
  try {
    const present = new Set(await io.readdir(target));
    for (const name of await readdir(staging)) {
      // The folder's own sync-client markers stay; everything else was checked absent.
      if (present.has(name) && isSyncClientMarker(name)) continue;
      await io.rename(join(staging, name), join(target, name));
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ELOOP' && code !== 'ENOTDIR' && code !== 'EXDEV') throw err;
    throw new ToolError('target', `${target}: it was replaced by a symbolic link or a non-folder during the restore; nothing more was moved into it`);
  }
}

// ---------------------------------------------------------------------------------------
// Repair

export interface RepairOutcome {
  readonly problem: ScrubProblem;
  readonly repaired: boolean;
  /** What was done, or why it could not be. */
  readonly detail: string;
  /** Where the damaged copy was kept. */
  readonly keptAt?: string;
}

export interface RepairReport {
  readonly outcomes: RepairOutcome[];
  /** The scrub after the repairs. */
  readonly after: ScrubResult;
  /** The folder damaged copies were moved to (outside the cipher directory), if any. */
  readonly quarantine?: string;
}

export interface RepairOptions extends RcloneOptions {
  readonly cipherDir: string;
  readonly remote: string;
  readonly masterKey: Uint8Array;
  readonly vaultId: string;
  readonly backend?: string;
  /** The scrub to repair from (default: run one now). */
  readonly before?: ScrubResult;
}

/** Where damaged copies of one repair run are kept: outside the cipher directory, never deleted. */
export function quarantineFolder(vaultId: string, when = new Date(), state = stateDir()): string {
  return join(state, 'quarantine', vaultId, when.toISOString().replace(/[:.]/g, '-'));
}

/** What to fetch from the remote for a problem, or why nothing can be. */
function fetchPath(p: ScrubProblem): string | undefined {
  switch (p.remedy.type) {
    case 'file':
    case 'vault-file':
    case 'sidecar':
      return p.rel;
    case 'symlink':
      return `${p.rel}.rclonelink`;
    default:
      return undefined;
  }
}

/** Bytes moved per read when copying into or out of the cipher directory. */
const COPY_BYTES = 1 << 20;
const fdRead = promisify(fsc.read);
const fdWrite = promisify(fsc.write);
const fdChmod = promisify(fsc.fchmod);
const fdChown = promisify(fsc.fchown);
const fdUtimes = promisify(fsc.futimes);
const fdSync = promisify(fsc.fsync);

/** Copies everything descriptor `from` holds to descriptor `to`, at the same offsets. */
async function copyDescriptor(from: number, to: number): Promise<void> {
  const buffer = Buffer.alloc(COPY_BYTES);
  for (let at = 0; ; ) {
    const { bytesRead } = await fdRead(from, buffer, 0, buffer.length, at);
    if (bytesRead === 0) return;
    for (let done = 0; done < bytesRead; ) done += (await fdWrite(to, buffer, done, bytesRead - done, at + done)).bytesWritten;
    at += bytesRead;
  }
}

function missingIsUndefined(err: NodeJS.ErrnoException): undefined {
  if (err.code === 'ENOENT') return undefined;
  throw err;
}

/** A confined call's refusal, said as what it means for a repair. */
function inVaultError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ELOOP' || e.code === 'ENOTDIR' || e.code === 'EXDEV') {
    return `${e.path ?? 'its path'}: a folder on the way is a symbolic link or not a folder (planted in the cipher directory? a link there is never followed)`;
  }
  return e.message;
}

/**
 * Repair's calls inside the cipher directory, all through the confined io (cipherio.ts): the
 * provider may have swapped a folder for a link before the scrub or while the copies were
 * being fetched, and such a path fails (ELOOP, ENOTDIR) and is reported instead of leading
 * out of the vault. The quarantine folder and the fetched copies are ours, outside the vault,
 * and keep Node's calls.
 */
class RepairWriter {
  private readonly io: CipherIo;
  /** Whether anything was copied into the quarantine folder. */
  used = false;

  constructor(
    private readonly cipherDir: string,
    private readonly quarantine: string,
  ) {
    this.io = cipherIoFor({ directIo: false }, cipherDir);
  }

  path(rel: string): string {
    return join(this.cipherDir, ...rel.split('/'));
  }

  lstat(rel: string): Promise<Stats | undefined> {
    return this.io.lstat(this.path(rel)).catch(missingIsUndefined);
  }

  /**
   * Copies the entry at `rel` (a file or symbolic link) into the quarantine folder; returns
   * where, and the entry's identity, or undefined when there is none. The vault side is read
   * through a confined descriptor rather than moved with rename(2): a rename would take the
   * entry out of the vault along a path the provider may have changed, and the copy lets
   * the caller check that what it removes afterwards is the entry that was kept.
   */
  async keepAside(rel: string): Promise<{ kept: string; dev: number; ino: number } | undefined> {
    const current = this.path(rel);
    const st = await this.lstat(rel);
    if (!st) return undefined;
    const kept = join(this.quarantine, ...rel.split('/'));
    await mkdir(dirname(kept), { recursive: true, mode: 0o700 });
    if (st.isSymbolicLink()) {
      await symlink(await this.io.readlink(current), kept);
      this.used = true;
      return { kept, dev: st.dev, ino: st.ino };
    }
    if (!st.isFile()) throw new Error(`${current} is ${typeWords(st)}, not what the scrub checked; nothing was moved`);
    const fd = await this.io.open(current, fsc.constants.O_RDONLY);
    try {
      const opened = await this.io.fstat(fd);
      const out = await open(kept, 'wx', 0o600);
      this.used = true;
      try {
        await copyDescriptor(fd, out.fd);
        await out.sync();
      } finally {
        await out.close();
      }
      return { kept, dev: opened.dev, ino: opened.ino };
    } finally {
      await this.io.close(fd);
    }
  }

  /**
   * Removes the entry at `rel` once kept aside, if it is still the one kept. An entry planted
   * in its place since is left alone; whatever is removed, it is removed inside the vault.
   */
  async removeKept(rel: string, kept: { dev: number; ino: number }): Promise<void> {
    const now = await this.lstat(rel);
    if (!now) return;
    if (now.dev !== kept.dev || now.ino !== kept.ino) throw new Error(`${this.path(rel)} changed while it was being set aside; it was left in place`);
    await this.io.unlink(this.path(rel));
  }

  /**
   * Puts the verified copy `copy` (a file or link in our download folder) in place of `rel`:
   * written next to it under a temporary name, the old entry kept aside, then renamed over
   * it, every step confined to the vault. Returns where the old entry was kept.
   */
  async replace(rel: string, copy: string, copies: CipherIo): Promise<string | undefined> {
    const target = this.path(rel);
    const temp = join(dirname(target), `.sealfs-repair-${randomBytes(6).toString('hex')}.tmp`);
    const old = await this.lstat(rel);
    if (old && !old.isFile() && !old.isSymbolicLink()) throw new Error(`${target} is ${typeWords(old)} now, not what the scrub checked; nothing was changed`);
    const owner = old && process.getuid?.() === 0 ? old : undefined;
    const fetched = await copies.lstat(copy);
    let made = false;
    try {
      if (fetched.isSymbolicLink()) {
        await this.io.symlink(await copies.readlink(copy), temp);
        made = true;
        if (owner) await this.io.lchown(temp, owner.uid, owner.gid);
      } else {
        const fd = await this.io.open(temp, fsc.constants.O_WRONLY | fsc.constants.O_CREAT | fsc.constants.O_EXCL, 0o600);
        made = true;
        try {
          const from = await copies.open(copy, fsc.constants.O_RDONLY);
          try {
            await copyDescriptor(from, fd);
          } finally {
            await copies.close(from);
          }
          // The old file's permission bits, never set-id bits (the provider sets those).
          await fdChmod(fd, (old && old.isFile() ? old.mode : fetched.mode) & 0o777);
          await fdUtimes(fd, fetched.atime, fetched.mtime);
          if (owner) await fdChown(fd, owner.uid, owner.gid);
          await fdSync(fd);
        } finally {
          await this.io.close(fd);
        }
      }
      const kept = await this.keepAside(rel);
      await this.io.rename(temp, target);
      return kept?.kept;
    } catch (err) {
      if (made) await this.io.unlink(temp).catch(() => {});
      throw err;
    }
  }
}

/**
 * Scrubs, fetches the backup copy of every repairable problem, verifies each copy
 * completely, and puts in place only copies that verify; the damaged version is first
 * copied aside into the quarantine folder (outside the cipher directory) and never deleted.
 * Problems no backup copy can fix (undecryptable names, clashing names…) are reported.
 */
export async function repairFromRemote(options: RepairOptions): Promise<RepairReport> {
  const cipherDir = resolve(options.cipherDir);
  const before = options.before ?? (await scrubVault({ cipherDir, masterKey: options.masterKey, backend: options.backend }));
  const outcomes: RepairOutcome[] = [];
  const quarantine = quarantineFolder(options.vaultId, new Date(), stateDir(options.env));
  if (isInside(await resolveLoosely(quarantine), await realpath(cipherDir))) {
    throw new ToolError('overlap', `the quarantine folder ${quarantine} would be inside the cipher directory; set XDG_STATE_HOME to a folder outside it`);
  }
  const writer = new RepairWriter(cipherDir, quarantine);

  const wanted = before.problems.map(fetchPath).filter((r): r is string => r !== undefined);
  const workDir = await tempFolder('sealfs-repair-', options.env);
  try {
    const { dir: fetchDir, arrived } = wanted.length
      ? await fetchFromRemote(options.remote, [...new Set(wanted)], workDir, options)
      : { dir: workDir, arrived: new Set<string>() };
    const ctx = verifierContext(options.masterKey, options.backend);
    // The copies come from another provider: read as warily as the vault itself.
    const copies = cipherIoFor({ directIo: false }, fetchDir);
    for (const problem of before.problems) {
      const remedy = problem.remedy;
      if (remedy.type === 'none') {
        outcomes.push({ problem, repaired: false, detail: `cannot be repaired from a backup: ${remedy.reason}` });
        continue;
      }
      if (remedy.type === 'set-aside') {
        try {
          const kept = await writer.keepAside(problem.rel);
          if (kept) await writer.removeKept(problem.rel, kept);
          outcomes.push({ problem, repaired: true, detail: 'moved out of the vault', ...(kept ? { keptAt: kept.kept } : {}) });
        } catch (err) {
          outcomes.push({ problem, repaired: false, detail: `could not be moved out of the vault: ${inVaultError(err)}` });
        }
        continue;
      }
      const rel = fetchPath(problem)!;
      if (!arrived.has(rel)) {
        outcomes.push({ problem, repaired: false, detail: `the backup ${options.remote} has no copy of it` });
        continue;
      }
      const copy = join(fetchDir, problem.rel);
      let fault: string | undefined;
      if (remedy.type === 'file') fault = (await verifySealedFile(copy, ctx, undefined, undefined, copies)).failure?.detail;
      else if (remedy.type === 'symlink') fault = await symlinkFault(copy, options.masterKey, copies);
      else if (remedy.type === 'sidecar') fault = await sidecarFault(copy, remedy, options.masterKey, copies);
      else fault = await vaultFileFault(fetchDir, options.masterKey);
      if (fault) {
        outcomes.push({ problem, repaired: false, detail: `the backup copy does not verify either (${fault}); nothing was changed` });
        continue;
      }
      try {
        const kept = await writer.replace(problem.rel, copy, copies);
        const what = kept ? `replaced by the verified copy from ${options.remote}` : `restored from the verified copy in ${options.remote}`;
        outcomes.push({ problem, repaired: true, detail: what, ...(kept ? { keptAt: kept } : {}) });
      } catch (err) {
        outcomes.push({ problem, repaired: false, detail: `could not be put in place: ${inVaultError(err)}` });
      }
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const after = await scrubVault({ cipherDir, masterKey: options.masterKey, backend: options.backend });
  return { outcomes, after, ...(writer.used ? { quarantine } : {}) };
}
