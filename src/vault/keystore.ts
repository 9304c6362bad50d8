/**
 * The local key store (docs/FORMAT.md §12): one small JSON file per vault holding the
 * master key wrapped (AES-256-GCM) under a key derived from the user's passphrase
 * (scrypt). It lives on the client, OUTSIDE the cipher directory: the key must never sit
 * on top of the safe, where the sync client or a backup would carry it to the provider.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCallback, type ScryptOptions } from 'node:crypto';
import { constants as fsConstants, type Dirent } from 'node:fs';
import { chmod, link, mkdir, open, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES } from '../crypto/ciphers.js';
import { readControlFile } from './controlfile.js';
import { VaultError } from './errors.js';
import { isInside, isVaultId, shellQuote } from './paths.js';
import { matchesName, SYNC_MARKERS } from './syncclients.js';

export const KEYSTORE_FORMAT = 'sealfs-keystore';
export const KEYSTORE_VERSION = 1;
export const KEY_FILE_SUFFIX = '.key';
/** Key store files are small (well under 1 KiB); anything larger is not one. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/** Default wall-clock cost of one passphrase derivation. */
export const DEFAULT_KDF_TARGET_MS = 500;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
/**
 * The floor (docs/FORMAT.md §12): N ≥ 2^14 with r ≥ 8, i.e. 16 MiB and some 30-60 ms per
 * guess on a 2020s core. Calibration starts there and doubles N; it never goes past 2^20
 * (1 GiB of memory at r = 8). A key file below the floor is refused when READ: whoever can
 * write the key store could otherwise swap in a cheap setting (and a file made with one
 * invites offline guessing); there is no switch to accept one.
 */
export const SCRYPT_MIN_LOG2N = 14;
export const SCRYPT_MAX_LOG2N = 20;
const SALT_BYTES = 16;

/** A passphrase, or a function asked for it only once every check that needs no passphrase has passed. */
export type PassphraseSource = string | (() => Promise<string>);

export interface ScryptParams {
  readonly name: 'scrypt';
  readonly N: number;
  readonly r: number;
  readonly p: number;
  /** base64 */
  readonly salt: string;
  /** How long one derivation took when the parameters were chosen (informational). */
  readonly calibrationMs?: number;
}

/** The key file as stored at `<keystoreDir>/<vaultId>.key`. */
export interface KeyStoreFile {
  readonly format: typeof KEYSTORE_FORMAT;
  readonly version: number;
  readonly vaultId: string;
  /** The cipher directory's real path when the key was stored (informational, not trusted). */
  readonly cipherDir: string;
  readonly created: string;
  readonly kdf: ScryptParams;
  readonly wrappedKey: {
    readonly cipher: 'aes-256-gcm';
    /** base64 of 12 random bytes */
    readonly nonce: string;
    /** base64 of the 32 encrypted key bytes */
    readonly ciphertext: string;
    /** base64 of the 16-byte GCM tag */
    readonly tag: string;
  };
}

/** `$XDG_CONFIG_HOME/sealfs`, else `~/.config/sealfs`. */
export function defaultKeystoreDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'sealfs');
  return join(env.HOME || homedir(), '.config', 'sealfs');
}

/**
 * The vault id comes from the vault file, which sits in the synced (untrusted) folder and
 * is read before its MAC can be checked, so it must never be able to name another path.
 */
function checkVaultId(vaultId: string): void {
  if (!isVaultId(vaultId)) {
    throw new VaultError('vault-tampered', `invalid vault id ${JSON.stringify(vaultId)} (the vault file may have been tampered with)`);
  }
}

export function keyFilePath(keystoreDir: string, vaultId: string): string {
  checkVaultId(vaultId);
  return join(resolve(keystoreDir), `${vaultId}${KEY_FILE_SUFFIX}`);
}

export async function hasStoredKey(keystoreDir: string, vaultId: string): Promise<boolean> {
  try {
    await stat(keyFilePath(keystoreDir, vaultId));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// Where a key may live

/**
 * The real path of `path`: symlinks resolved in its nearest existing ancestor, the
 * not-yet-existing rest appended as it is.
 */
export async function resolveLoosely(path: string): Promise<string> {
  const absolute = resolve(path);
  const missing: string[] = [];
  let at = absolute;
  for (;;) {
    try {
      const real = await realpath(at);
      return missing.length ? join(real, ...missing.reverse()) : real;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      const parent = dirname(at);
      if (parent === at) return absolute;
      missing.push(basename(at));
      at = parent;
    }
  }
}

async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** The sync services whose markers are found on the way from `path` up to `/`. */
export async function findSyncMarkers(path: string): Promise<{ service: string; folder: string; marker: string }[]> {
  const found: { service: string; folder: string; marker: string }[] = [];
  const home = await resolveLoosely(homedir());
  let at = await resolveLoosely(path);
  for (;;) {
    const entries = await entriesOf(at);
    const name = basename(at);
    for (const marker of SYNC_MARKERS) {
      if (marker.kind === 'name') {
        if (name && matchesName(marker.match, name) && (!marker.inHomeOnly || dirname(at) === home)) {
          found.push({ service: marker.service, folder: at, marker: `folder name "${name}"` });
        }
        continue;
      }
      for (const entry of entries) {
        if (!matchesName(marker.match, entry.name)) continue;
        const typeOk = marker.kind === 'entry' || (marker.kind === 'file' ? entry.isFile() : entry.isDirectory());
        if (typeOk) found.push({ service: marker.service, folder: at, marker: entry.name });
      }
    }
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  return found;
}

/**
 * Refuses a key location inside (or equal to) the cipher directory, symlinks resolved,
 * with VaultError('key-location'); returns warnings when it lies in a folder a sync client
 * manages. `keyLocation` is the key store directory or a key file path; neither it nor the
 * cipher directory need exist yet.
 */
export async function assertKeyLocationAllowed(keyLocation: string, cipherDir: string): Promise<string[]> {
  const key = await resolveLoosely(keyLocation);
  const cipher = await resolveLoosely(cipherDir);
  if (isInside(key, cipher)) {
    throw new VaultError(
      'key-location',
      `refusing to keep the key at ${key}: it is inside the cipher directory ${cipher}, which is synced or backed up ` +
        `with the data it protects (the key on top of the safe). Use a key store outside it (default: ${defaultKeystoreDir()})`,
    );
  }
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const hit of await findSyncMarkers(key)) {
    const id = `${hit.service}\0${hit.folder}`;
    if (seen.has(id)) continue;
    seen.add(id);
    warnings.push(
      `the key store ${key} seems to be inside a folder synced by ${hit.service} (${hit.folder}, found ${hit.marker}); ` +
        `the key, even wrapped, should never reach a sync provider: use a local folder such as ${defaultKeystoreDir()}`,
    );
  }
  return warnings;
}

// ---------------------------------------------------------------------------------------
// scrypt

function scrypt(passphrase: Uint8Array, salt: Uint8Array, N: number, r: number, p: number): Promise<Buffer> {
  // Memory: 128·r·N for V plus 128·r·p for B, plus a margin.
  const options: ScryptOptions = { N, r, p, maxmem: 128 * r * (N + p + 2) + 1024 * 1024 };
  return new Promise((resolvePromise, reject) => {
    scryptCallback(passphrase, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolvePromise(key)));
  });
}

function passphraseBytes(passphrase: string): Uint8Array {
  if (passphrase.length === 0) throw new RangeError('empty passphrase');
  // NFC so that the same passphrase typed with another input method gives the same bytes.
  return new TextEncoder().encode(passphrase.normalize('NFC'));
}

export interface Calibration {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  /** Milliseconds the derivation with N took. */
  readonly ms: number;
}

/**
 * Doubles N from the floor (2^14) until one derivation takes at least `targetMs` (or N reaches 2^20).
 * Returns the parameters and, when passphrase and salt are given, the key the last
 * (chosen) derivation produced, so calibrating costs no extra derivation.
 */
async function calibrate(targetMs: number, passphrase: Uint8Array, salt: Uint8Array): Promise<Calibration & { key: Buffer }> {
  if (!(targetMs > 0) || !Number.isFinite(targetMs)) throw new RangeError(`KDF target must be a positive number of milliseconds, got ${targetMs}`);
  for (let log2N = SCRYPT_MIN_LOG2N; ; log2N++) {
    const N = 2 ** log2N;
    const start = performance.now();
    const key = await scrypt(passphrase, salt, N, SCRYPT_R, SCRYPT_P);
    const ms = performance.now() - start;
    if (ms >= targetMs || log2N >= SCRYPT_MAX_LOG2N) return { N, r: SCRYPT_R, p: SCRYPT_P, ms, key };
    key.fill(0);
  }
}

/** Calibrates scrypt on this machine (N a power of two, r = 8, p = 1). */
export async function calibrateScrypt(targetMs: number = DEFAULT_KDF_TARGET_MS): Promise<Calibration> {
  const { N, r, p, ms } = await calibrate(targetMs, new Uint8Array(8), randomBytes(SALT_BYTES));
  return { N, r, p, ms };
}

// ---------------------------------------------------------------------------------------
// Wrapping

function aadFor(vaultId: string): Buffer {
  return Buffer.from(`sealfs keystore v1 ${vaultId}`, 'utf8');
}

async function wrap(
  vaultId: string,
  cipherDir: string,
  created: string,
  masterKey: Uint8Array,
  passphrase: string,
  kdfTargetMs: number,
): Promise<KeyStoreFile> {
  if (masterKey.length !== KEY_BYTES) throw new RangeError(`master key must be ${KEY_BYTES} bytes, got ${masterKey.length}`);
  const salt = randomBytes(SALT_BYTES);
  const secret = passphraseBytes(passphrase);
  const { N, r, p, ms, key } = await calibrate(kdfTargetMs, secret, salt).finally(() => secret.fill(0));
  const nonce = randomBytes(NONCE_BYTES);
  const gcm = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  gcm.setAAD(aadFor(vaultId));
  const ciphertext = Buffer.concat([gcm.update(masterKey), gcm.final()]);
  key.fill(0);
  return {
    format: KEYSTORE_FORMAT,
    version: KEYSTORE_VERSION,
    vaultId,
    cipherDir,
    created,
    kdf: { name: 'scrypt', N, r, p, salt: salt.toString('base64'), calibrationMs: Math.round(ms) },
    wrappedKey: {
      cipher: 'aes-256-gcm',
      nonce: nonce.toString('base64'),
      ciphertext: ciphertext.toString('base64'),
      tag: gcm.getAuthTag().toString('base64'),
    },
  };
}

function base64Field(value: unknown, length: number): Buffer | undefined {
  if (typeof value !== 'string') return undefined;
  const bytes = Buffer.from(value, 'base64');
  return bytes.length === length && bytes.toString('base64') === value ? bytes : undefined;
}

/**
 * The command that restores a key store entry from the recovery key, to copy and paste: it
 * names the vault folder when the caller knows it, and the key store when not the default.
 */
export function keyImportHint(keystoreDir: string, cipherDir: string | undefined, replace = false): string {
  const vault = cipherDir !== undefined ? shellQuote(resolve(cipherDir)) : 'VAULT';
  const store = resolve(keystoreDir) === resolve(defaultKeystoreDir()) ? '' : ` --keystore ${shellQuote(resolve(keystoreDir))}`;
  return `\`sealfs key import ${vault}${store}${replace ? ' --replace' : ''}\``;
}

function damaged(path: string, why: string, keystoreDir: string, cipherDir: string | undefined): VaultError {
  return new VaultError('no-key', `${path}: damaged key file (${why}); restore it from the recovery key with ${keyImportHint(keystoreDir, cipherDir, true)}`);
}

/** Reads and checks a key file's structure (not the passphrase). */
export async function readKeyStoreFile(keystoreDir: string, vaultId: string, cipherDir?: string): Promise<{ path: string; file: KeyStoreFile }> {
  const path = keyFilePath(keystoreDir, vaultId);
  const read = await readControlFile(path, MAX_KEY_FILE_BYTES);
  if (!read.ok) {
    if (read.fault === 'missing' || read.error?.code === 'ENOTDIR') {
      throw new VaultError('no-key', `no key for vault ${vaultId} in ${resolve(keystoreDir)}; restore it from the recovery key with ${keyImportHint(keystoreDir, cipherDir)}`);
    }
    if (read.fault === 'unreadable') throw read.error!;
    throw damaged(path, read.detail, keystoreDir, cipherDir);
  }
  let file: KeyStoreFile;
  try {
    file = JSON.parse(read.bytes.toString('utf8')) as KeyStoreFile;
  } catch {
    throw damaged(path, 'not valid JSON', keystoreDir, cipherDir);
  }
  if (file?.format !== KEYSTORE_FORMAT) throw damaged(path, 'not a sealfs key store file', keystoreDir, cipherDir);
  if (typeof file.version !== 'number' || file.version > KEYSTORE_VERSION) {
    throw new VaultError('no-key', `${path}: key file version ${file.version} is newer than this sealfs supports (${KEYSTORE_VERSION}); upgrade sealfs`);
  }
  if (file.vaultId !== vaultId) throw damaged(path, `it is for vault ${String(file.vaultId)}`, keystoreDir, cipherDir);
  const kdf = file.kdf;
  const log2N = Math.log2(kdf?.N);
  const kdfOk =
    kdf?.name === 'scrypt' &&
    Number.isInteger(log2N) &&
    log2N >= 1 &&
    log2N <= SCRYPT_MAX_LOG2N + 2 &&
    Number.isInteger(kdf.r) &&
    kdf.r >= 1 &&
    kdf.r <= 32 &&
    Number.isInteger(kdf.p) &&
    kdf.p >= 1 &&
    kdf.p <= 16 &&
    typeof kdf.salt === 'string' &&
    Buffer.from(kdf.salt, 'base64').length >= 8;
  if (!kdfOk) throw damaged(path, 'unsupported or invalid KDF parameters', keystoreDir, cipherDir);
  if (log2N < SCRYPT_MIN_LOG2N || kdf.r < SCRYPT_R) {
    throw new VaultError(
      'no-key',
      `${path}: refusing a key file whose scrypt setting (N = 2^${log2N}, r = ${kdf.r}) is below the floor (N ≥ 2^${SCRYPT_MIN_LOG2N}, r ≥ ${SCRYPT_R}): ` +
        'it makes the passphrase cheap to guess, and may have been swapped in by someone who can write the key store; ' +
        `re-create it from the recovery key with ${keyImportHint(keystoreDir, cipherDir, true)}`,
    );
  }
  const w = file.wrappedKey;
  const wrapOk =
    w?.cipher === 'aes-256-gcm' && base64Field(w.nonce, NONCE_BYTES) && base64Field(w.ciphertext, KEY_BYTES) && base64Field(w.tag, TAG_BYTES);
  if (!wrapOk) throw damaged(path, 'invalid wrapped key', keystoreDir, cipherDir);
  return { path, file };
}

function unwrap(file: KeyStoreFile, wrappingKey: Buffer): Uint8Array {
  const w = file.wrappedKey;
  const gcm = createDecipheriv('aes-256-gcm', wrappingKey, Buffer.from(w.nonce, 'base64'), { authTagLength: TAG_BYTES });
  gcm.setAAD(aadFor(file.vaultId));
  gcm.setAuthTag(Buffer.from(w.tag, 'base64'));
  // The key is assembled in one array of its own; every intermediate copy is zeroed.
  const head = gcm.update(Buffer.from(w.ciphertext, 'base64'));
  try {
    const tail = gcm.final();
    const key = new Uint8Array(head.length + tail.length);
    key.set(head, 0);
    key.set(tail, head.length);
    tail.fill(0);
    return key;
  } catch {
    throw new VaultError('wrong-passphrase', 'wrong passphrase');
  } finally {
    head.fill(0);
    wrappingKey.fill(0);
  }
}

async function passphraseOf(source: PassphraseSource): Promise<string> {
  return typeof source === 'string' ? source : source();
}

// ---------------------------------------------------------------------------------------
// Files

async function ensureKeystoreDir(keystoreDir: string): Promise<void> {
  const dir = resolve(keystoreDir);
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) await chmod(dir, 0o700);
}

/** Thrown when a key file exists and replacing it was not asked for. */
export class KeyExistsError extends Error {
  readonly code = 'EEXIST';
  constructor(readonly path: string) {
    super(`already exists (refusing to overwrite)`);
    this.name = 'KeyExistsError';
  }
}

/** Writes `data` to `path` via a temporary file in the same folder, mode 0600, synced. */
async function writeAtomically(path: string, data: string, replace: boolean): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    try {
      await handle.writeFile(data, 'utf8');
      await handle.chmod(0o600);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (replace) {
      await rename(temp, path);
    } else {
      // link() fails if the target exists, so two writers cannot both win.
      try {
        await link(temp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyExistsError(path);
        throw err;
      }
    }
  } finally {
    await rm(temp, { force: true });
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } catch {
    // some file systems cannot sync a directory; the rename is still atomic
  } finally {
    await dir.close();
  }
}

export interface StoreOptions {
  readonly keystoreDir: string;
  readonly vaultId: string;
  readonly cipherDir: string;
  readonly masterKey: Uint8Array;
  readonly passphrase: PassphraseSource;
  /** Expert: wall-clock target of one derivation (default 500 ms). */
  readonly kdfTargetMs?: number;
  /** Overwrite an existing key file for this vault. */
  readonly replace?: boolean;
}

/**
 * Stores the master key, wrapped under the passphrase, at `<keystoreDir>/<vaultId>.key`.
 * Refuses a key store inside the cipher directory. Returns the key file's path.
 */
export async function storeMasterKey(options: StoreOptions): Promise<string> {
  const path = keyFilePath(options.keystoreDir, options.vaultId);
  await assertKeyLocationAllowed(path, options.cipherDir);
  if (!options.replace && (await hasStoredKey(options.keystoreDir, options.vaultId))) throw new KeyExistsError(path);
  const passphrase = await passphraseOf(options.passphrase);
  const file = await wrap(
    options.vaultId,
    await resolveLoosely(options.cipherDir),
    new Date().toISOString(),
    options.masterKey,
    passphrase,
    options.kdfTargetMs ?? DEFAULT_KDF_TARGET_MS,
  );
  await ensureKeystoreDir(options.keystoreDir);
  await writeAtomically(path, `${JSON.stringify(file, null, 2)}\n`, options.replace ?? false);
  return path;
}

export interface UnlockOptions {
  readonly keystoreDir: string;
  readonly vaultId: string;
  readonly passphrase: PassphraseSource;
  /** The vault's folder, when known: named in the hint of a missing or damaged key. */
  readonly cipherDir?: string;
}

/** Unwraps the vault's master key with the passphrase. */
export async function unlockMasterKey(options: UnlockOptions): Promise<Uint8Array> {
  const { file } = await readKeyStoreFile(options.keystoreDir, options.vaultId, options.cipherDir);
  const passphrase = await passphraseOf(options.passphrase);
  const { N, r, p, salt } = file.kdf;
  const secret = passphraseBytes(passphrase);
  return unwrap(file, await scrypt(secret, Buffer.from(salt, 'base64'), N, r, p).finally(() => secret.fill(0)));
}

export interface ChangePassphraseOptions {
  readonly keystoreDir: string;
  readonly vaultId: string;
  readonly oldPassphrase: PassphraseSource;
  readonly newPassphrase: PassphraseSource;
  readonly kdfTargetMs?: number;
  /** Called with the unwrapped key before anything is written; throw to stop. */
  readonly check?: (masterKey: Uint8Array) => void;
  /** The vault's folder, when known: named in the hint of a missing or damaged key. */
  readonly cipherDir?: string;
}

/**
 * Re-wraps the master key under a new passphrase (new salt, new calibration) and replaces
 * the key file atomically. Touches only the key store, never the cipher directory.
 */
export async function changePassphrase(options: ChangePassphraseOptions): Promise<string> {
  const { path, file } = await readKeyStoreFile(options.keystoreDir, options.vaultId, options.cipherDir);
  const masterKey = await unlockMasterKey({ keystoreDir: options.keystoreDir, vaultId: options.vaultId, passphrase: options.oldPassphrase, cipherDir: options.cipherDir });
  try {
    options.check?.(masterKey);
    const newPassphrase = await passphraseOf(options.newPassphrase);
    const next = await wrap(file.vaultId, file.cipherDir, file.created, masterKey, newPassphrase, options.kdfTargetMs ?? DEFAULT_KDF_TARGET_MS);
    await writeAtomically(path, `${JSON.stringify(next, null, 2)}\n`, true);
    return path;
  } finally {
    masterKey.fill(0);
  }
}
