import { randomUUID, timingSafeEqual } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { CIPHER_NAMES, type CipherName } from '../crypto/ciphers.js';
import { chunkSizeLog2 } from '../crypto/header.js';
import { deriveSubkey } from '../crypto/kdf.js';
import { readControlFile } from './controlfile.js';
import { VaultError } from './errors.js';
import { shellQuote } from './paths.js';

/** The one control file in a cipher directory (docs/FORMAT.md §11). Holds nothing secret. */
export const VAULT_FILE = 'sealfs.vault';
export const VAULT_FORMAT_VERSION = 1;
export const NAME_SCHEME = 'aes-siv-base32';
/** A vault file is one line of settings and one of MAC, a few hundred bytes; anything larger is not one. */
export const MAX_VAULT_FILE_BYTES = 16 * 1024;

export interface VaultConfig {
  readonly format: 'sealfs-vault';
  readonly version: number;
  readonly vaultId: string;
  readonly cipher: CipherName;
  readonly chunkSize: number;
  readonly nameScheme: typeof NAME_SCHEME;
  /** Encoded names longer than this many bytes use the long-name scheme. */
  readonly maxNameLength: number;
}

/** The vault file as stored: its first line, parsed, and the MAC from its second line. */
export interface StoredVaultFile {
  readonly config: VaultConfig;
  readonly body: string;
  readonly mac: string;
}

const MAC_PREFIX = 'hmac-sha256:';

function macOf(body: string, masterKey: Uint8Array): string {
  return Buffer.from(hmac(sha256, deriveSubkey(masterKey, 'config'), new TextEncoder().encode(body))).toString('hex');
}

export function newVaultConfig(options: { cipher: CipherName; chunkSize: number; maxNameLength: number }): VaultConfig {
  chunkSizeLog2(options.chunkSize);
  return {
    format: 'sealfs-vault',
    version: VAULT_FORMAT_VERSION,
    vaultId: randomUUID(),
    cipher: options.cipher,
    chunkSize: options.chunkSize,
    nameScheme: NAME_SCHEME,
    maxNameLength: options.maxNameLength,
  };
}

export async function writeVaultFile(cipherDir: string, config: VaultConfig, masterKey: Uint8Array): Promise<void> {
  const body = JSON.stringify(config);
  await writeFile(join(cipherDir, VAULT_FILE), `${body}\n${MAC_PREFIX}${macOf(body, masterKey)}\n`, { flag: 'wx', mode: 0o644 });
}

/** Why there is no vault file in `cipherDir`: no such folder, not a folder, or a folder that is not a vault. */
async function notAVault(cipherDir: string): Promise<VaultError> {
  const dir = resolve(cipherDir);
  const st = await stat(dir).catch(() => undefined);
  if (!st) return new VaultError('not-a-vault', `${dir} does not exist: there is no vault there (check the path; \`sealfs init ${shellQuote(dir)}\` creates a new vault)`);
  if (!st.isDirectory()) return new VaultError('not-a-vault', `${dir} is not a folder, so not a vault (check the path)`);
  return new VaultError('not-a-vault', `${dir} is not a sealfs vault (it has no ${VAULT_FILE}); check the path, or \`sealfs init\` a new vault in an empty folder`);
}

/**
 * Reads the vault file without the key (to find which key unlocks it). Nothing read here
 * is trusted until verifyVaultFile has checked its MAC.
 */
export async function readVaultFile(cipherDir: string): Promise<StoredVaultFile> {
  const path = join(cipherDir, VAULT_FILE);
  const read = await readControlFile(path, MAX_VAULT_FILE_BYTES);
  if (!read.ok) {
    if (read.fault === 'missing' || read.error?.code === 'ENOTDIR') throw await notAVault(cipherDir);
    if (read.fault === 'unreadable') throw read.error!;
    // Another file linked or planted under its name: the vault file is a regular file in the folder itself.
    throw new VaultError('vault-tampered', `${path}: damaged vault file (${read.detail})`);
  }
  const text = read.bytes.toString('utf8');
  const [body = '', macLine = ''] = text.split('\n');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new VaultError('vault-tampered', `${path}: damaged vault file (${body.trim() === '' ? 'empty' : 'not valid JSON'})`);
  }
  // null, a number, a string or an array has no fields to read.
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new VaultError('not-a-vault', `${path}: not a sealfs vault file`);
  const parsed = json as Partial<VaultConfig>;
  if (parsed.format !== 'sealfs-vault') throw new VaultError('not-a-vault', `${path}: not a sealfs vault file`);
  if (typeof parsed.version !== 'number' || parsed.version > VAULT_FORMAT_VERSION) {
    throw new VaultError('vault-too-new', `${path}: vault format version ${parsed.version} is newer than this sealfs supports (${VAULT_FORMAT_VERSION}); upgrade sealfs`);
  }
  if (!macLine.startsWith(MAC_PREFIX)) throw new VaultError('vault-tampered', `${path}: vault file has no MAC line`);
  const config = parsed as VaultConfig;
  const valid =
    typeof config.vaultId === 'string' &&
    CIPHER_NAMES.includes(config.cipher) &&
    Number.isInteger(config.chunkSize) &&
    config.nameScheme === NAME_SCHEME &&
    Number.isInteger(config.maxNameLength);
  if (!valid) throw new VaultError('vault-tampered', `${path}: vault file has missing or invalid fields`);
  return { config, body, mac: macLine.slice(MAC_PREFIX.length) };
}

/** The MAC as written: 64 lowercase hex digits (HMAC-SHA-256). */
const MAC_HEX = /^[0-9a-f]{64}$/;

/** Checks the vault file's MAC with the master key: an edited vault file is refused. */
export function verifyVaultFile(stored: StoredVaultFile, masterKey: Uint8Array, cipherDir: string): VaultConfig {
  const expected = Buffer.from(macOf(stored.body, masterKey), 'hex');
  // Exactly the form sealfs writes: Buffer.from would skip what is not hex, and accept it.
  const actual = MAC_HEX.test(stored.mac) ? Buffer.from(stored.mac, 'hex') : Buffer.alloc(0);
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new VaultError('vault-tampered', `${join(cipherDir, VAULT_FILE)}: vault file was modified or belongs to another key (MAC mismatch)`);
  }
  chunkSizeLog2(stored.config.chunkSize);
  return stored.config;
}
