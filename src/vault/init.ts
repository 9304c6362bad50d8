/**
 * Creating and unlocking vaults: the cipher directory holds the vault file (no secrets),
 * the key store outside it holds the wrapped master key.
 */
import { mkdir, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { KEY_BYTES, type CipherName } from '../crypto/ciphers.js';
import { generateMasterKey, KEY_FILE_PREFIX, KeyFileError, readKeyFile } from '../crypto/keyfile.js';
import { VaultError } from './errors.js';
import {
  assertKeyLocationAllowed,
  changePassphrase,
  keyFilePath,
  storeMasterKey,
  unlockMasterKey,
  type PassphraseSource,
} from './keystore.js';
import { parseRecoveryKey } from './recovery.js';
import { isSyncClientMarker } from './syncclients.js';
import { newVaultConfig, readVaultFile, VAULT_FILE, verifyVaultFile, writeVaultFile, type VaultConfig } from './vaultfile.js';

/** Accepted range of `maxNameLength` (bytes of an encoded name before the long-name scheme). */
export const MIN_MAX_NAME_LENGTH = 64;
export const MAX_MAX_NAME_LENGTH = 255;
/**
 * Default limit: 200 leaves 55 characters for the text a sync client adds to a conflict
 * copy's name (Syncthing's ".sync-conflict-YYYYMMDD-HHMMSS-DEVICE" is 39), so the copy still
 * fits in 255 bytes.
 */
export const DEFAULT_MAX_NAME_LENGTH = 200;

function ioError(code: string, path: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, path });
}

/** Whether the cipher directory exists; throws if it cannot become a new vault. */
async function checkNewCipherDir(dir: string): Promise<{ exists: boolean }> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const parent = dirname(dir);
    const parentIsDir = await stat(parent).then((s) => s.isDirectory(), () => false);
    if (!parentIsDir) throw ioError('ENOENT', parent, 'no such folder (create it first, or check the path)');
    return { exists: false };
  }
  if (!isDir) throw new VaultError('vault-exists', `${dir} exists and is not a folder; choose a new or empty folder for the vault`);
  const entries = await readdir(dir);
  if (entries.includes(VAULT_FILE)) throw new VaultError('vault-exists', `${dir} is already a sealfs vault (it has ${VAULT_FILE}); refusing to create another one over it`);
  const others = entries.filter((name) => !isSyncClientMarker(name));
  if (others.length) {
    const shown = others.slice(0, 3).map((n) => JSON.stringify(n)).join(', ') + (others.length > 3 ? ', …' : '');
    throw new VaultError(
      'vault-exists',
      `${dir} is not empty (${shown}); a vault must start in a new or empty folder, so that no plaintext ends up next to the ciphertext`,
    );
  }
  return { exists: true };
}

export interface InitOptions {
  readonly cipherDir: string;
  readonly keystoreDir: string;
  /** A string, or a function called only after every check that needs no passphrase passed. */
  readonly passphrase: PassphraseSource;
  readonly cipher: CipherName;
  readonly chunkSize: number;
  readonly maxNameLength: number;
  /**
   * Bring your own key (e.g. from a recovery key or `sealfs keygen`); default: a new random
   * key. A function is called only after the checks that need no key passed.
   */
  readonly importKey?: Uint8Array | (() => Promise<Uint8Array>);
  /** Expert: KDF calibration target (default 500 ms). */
  readonly kdfTargetMs?: number;
}

export interface InitResult {
  readonly config: VaultConfig;
  readonly masterKey: Uint8Array;
  readonly keyPath: string;
  /** Things the user should know (e.g. the key store seems to be in a synced folder). */
  readonly warnings: string[];
  /** The cipher directory, absolute. */
  readonly cipherDir: string;
}

/**
 * Creates a vault: checks the cipher directory (new, or empty) and the key location
 * (never inside the cipher directory) before writing anything, stores the wrapped master
 * key in the key store, then writes the vault file.
 */
export async function initVault(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.cipherDir);
  if (!Number.isInteger(options.maxNameLength) || options.maxNameLength < MIN_MAX_NAME_LENGTH || options.maxNameLength > MAX_MAX_NAME_LENGTH) {
    throw new RangeError(`max name length must be an integer from ${MIN_MAX_NAME_LENGTH} to ${MAX_MAX_NAME_LENGTH}, got ${options.maxNameLength}`);
  }
  const config = newVaultConfig({ cipher: options.cipher, chunkSize: options.chunkSize, maxNameLength: options.maxNameLength });
  const { exists } = await checkNewCipherDir(dir);
  const warnings = await assertKeyLocationAllowed(keyFilePath(options.keystoreDir, config.vaultId), dir);

  const imported = typeof options.importKey === 'function' ? await options.importKey() : options.importKey;
  if (imported && imported.length !== KEY_BYTES) throw new RangeError(`an imported key must be ${KEY_BYTES} bytes, got ${imported.length}`);
  const masterKey = imported ? new Uint8Array(imported) : generateMasterKey();
  const keyPath = await storeMasterKey({
    keystoreDir: options.keystoreDir,
    vaultId: config.vaultId,
    cipherDir: dir,
    masterKey,
    passphrase: options.passphrase,
    kdfTargetMs: options.kdfTargetMs,
  });
  try {
    if (!exists) await mkdir(dir, { mode: 0o700 });
    await writeVaultFile(dir, config, masterKey);
  } catch (err) {
    // No vault without its key, and no key without its vault.
    await rm(keyPath, { force: true });
    if (!exists) await rmdir(dir).catch(() => undefined);
    throw err;
  }
  return { config, masterKey, keyPath, warnings, cipherDir: dir };
}

export interface UnlockVaultOptions {
  readonly cipherDir: string;
  readonly keystoreDir: string;
  readonly passphrase: PassphraseSource;
}

/** Reads the vault file, unwraps its key from the key store, and checks the vault file's MAC. */
export async function unlockVault(options: UnlockVaultOptions): Promise<{ config: VaultConfig; masterKey: Uint8Array }> {
  const stored = await readVaultFile(options.cipherDir);
  const masterKey = await unlockMasterKey({ keystoreDir: options.keystoreDir, vaultId: stored.config.vaultId, passphrase: options.passphrase, cipherDir: options.cipherDir });
  try {
    return { config: verifyVaultFile(stored, masterKey, options.cipherDir), masterKey };
  } catch (err) {
    masterKey.fill(0);
    throw err;
  }
}

export interface ImportOptions {
  /** Overwrite an existing key file for this vault. */
  readonly replace?: boolean;
  readonly kdfTargetMs?: number;
}

/**
 * Rebuilds the key store entry of the vault at `cipherDir` from its master key (e.g. from
 * the recovery key), wrapped under a new passphrase. The key is checked against the vault
 * file's MAC first: a key of another vault is refused.
 */
export async function importKeyIntoKeystore(
  cipherDir: string,
  keystoreDir: string,
  masterKey: Uint8Array,
  passphrase: PassphraseSource,
  options: ImportOptions = {},
): Promise<{ config: VaultConfig; keyPath: string; warnings: string[] }> {
  const stored = await readVaultFile(cipherDir);
  let config: VaultConfig;
  try {
    config = verifyVaultFile(stored, masterKey, cipherDir);
  } catch (err) {
    if (err instanceof VaultError && err.kind === 'vault-tampered') {
      throw new VaultError('bad-recovery-key', `this recovery key does not belong to the vault at ${resolve(cipherDir)}`);
    }
    throw err;
  }
  const warnings = await assertKeyLocationAllowed(keyFilePath(keystoreDir, config.vaultId), cipherDir);
  const keyPath = await storeMasterKey({
    keystoreDir,
    vaultId: config.vaultId,
    cipherDir,
    masterKey,
    passphrase,
    kdfTargetMs: options.kdfTargetMs,
    replace: options.replace,
  });
  return { config, keyPath, warnings };
}

export interface ChangeVaultPassphraseOptions {
  readonly cipherDir: string;
  readonly keystoreDir: string;
  readonly oldPassphrase: PassphraseSource;
  readonly newPassphrase: PassphraseSource;
  readonly kdfTargetMs?: number;
}

/**
 * Changes the passphrase of the vault at `cipherDir` (which is only read, to find its id
 * and check that the stored key belongs to it). Returns the key file's path.
 */
export async function changeVaultPassphrase(options: ChangeVaultPassphraseOptions): Promise<string> {
  const stored = await readVaultFile(options.cipherDir);
  return changePassphrase({
    keystoreDir: options.keystoreDir,
    vaultId: stored.config.vaultId,
    oldPassphrase: options.oldPassphrase,
    newPassphrase: options.newPassphrase,
    kdfTargetMs: options.kdfTargetMs,
    check: (masterKey) => void verifyVaultFile(stored, masterKey, options.cipherDir),
    cipherDir: options.cipherDir,
  });
}

/**
 * Reads a key to import from a file: a recovery key (text), a `sealfs keygen` key file, or
 * 32 raw bytes. Malformed content is a VaultError('bad-recovery-key').
 */
export async function readKeyOrRecoveryFile(path: string): Promise<Uint8Array> {
  const data = await readFile(path);
  const text = data.toString('utf8').trim();
  if (data.length === KEY_BYTES || text.startsWith(KEY_FILE_PREFIX)) {
    try {
      return await readKeyFile(path);
    } catch (err) {
      if (err instanceof KeyFileError) throw new VaultError('bad-recovery-key', err.message);
      throw err;
    }
  }
  try {
    return parseRecoveryKey(text);
  } catch (err) {
    if (err instanceof VaultError) throw new VaultError(err.kind, `${path}: ${err.message}`);
    throw err;
  }
}
