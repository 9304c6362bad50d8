import { resolve } from 'node:path';
import { contentContext, type ContentContext } from '../crypto/context.js';
import { deriveSubkey } from '../crypto/kdf.js';
import { cipherIoFor, type CipherIo } from './cipherio.js';
import { DirectoryDecoder } from './directory.js';
import { NameCipher } from './names.js';
import { DEFAULT_SETTINGS, type MountSettings } from './settings.js';
import { Tree } from './tree.js';
import { XattrCipher } from './xattrs.js';
import { readVaultFile, verifyVaultFile, type VaultConfig } from './vaultfile.js';

/** An unlocked vault: its verified configuration and the keys to read and write it. */
export interface Vault {
  readonly cipherDir: string;
  readonly config: VaultConfig;
  readonly content: ContentContext;
  readonly names: NameCipher;
  readonly tree: Tree;
  readonly settings: MountSettings;
  /** The calls made on the cipher directory, as the settings ask. */
  readonly io: CipherIo;
  /** Extended attributes' names and values (docs/FORMAT.md §14.2). */
  readonly xattrs: XattrCipher;
}

export interface OpenVaultOptions {
  /** Crypto backend name; default automatic. */
  backend?: string;
  /** Cache times and cipher-directory calls; default DEFAULT_SETTINGS. */
  settings?: MountSettings;
}

/** Opens the vault at `cipherDir` with its master key; refuses an edited vault file. */
export async function openVault(cipherDir: string, masterKey: Uint8Array, options: OpenVaultOptions = {}): Promise<Vault> {
  const dir = resolve(cipherDir);
  const config = verifyVaultFile(await readVaultFile(dir), masterKey, dir);
  const content = contentContext(masterKey, { cipher: config.cipher, chunkSize: config.chunkSize, backend: options.backend });
  const names = new NameCipher(deriveSubkey(masterKey, 'names'), deriveSubkey(masterKey, 'dirid'));
  const settings = options.settings ?? DEFAULT_SETTINGS;
  const io = cipherIoFor(settings, dir);
  const tree = new Tree(dir, new DirectoryDecoder(names, config.maxNameLength, io), settings.listingTtlMs);
  const xattrs = new XattrCipher(deriveSubkey(masterKey, 'xattr'), names, config.cipher);
  return { cipherDir: dir, config, content, names, tree, settings, io, xattrs };
}

/**
 * Locks an unlocked vault: zeroes its content, name, directory-id and xattr keys (the master key
 * itself is zeroed by whoever unlocked it, right after openVault). The vault is unusable
 * afterwards; the mount server calls this when it ends.
 */
export function lockVault(vault: Vault): void {
  vault.content.contentKey.fill(0);
  vault.names.wipe();
  vault.xattrs.wipe();
}
