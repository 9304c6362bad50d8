/**
 * Unlocking a vault the way every command does: the passphrase is asked for only once the
 * vault file and its key were found, a wrong one typed at a prompt may be retyped, and a
 * vault whose vault file is lost or damaged can still be unlocked through the key store
 * entry stored for its folder (so that scrub can report it and repair can restore it).
 */
import { readdir, realpath } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readControlFile } from './controlfile.js';
import { VaultError } from './errors.js';
import { unlockVault } from './init.js';
import { KEY_FILE_SUFFIX, KEYSTORE_FORMAT, MAX_KEY_FILE_BYTES, unlockMasterKey } from './keystore.js';
import { shellQuote } from './paths.js';
import { readVaultFile, verifyVaultFile, type StoredVaultFile, type VaultConfig } from './vaultfile.js';

/** Where a passphrase comes from. */
export interface PassphraseAsker {
  /** Asks for it (again, on each call). */
  readonly ask: () => Promise<string>;
  /** Typed at a prompt: a wrong one may be retyped. A file or a command gets one try. */
  readonly interactive: boolean;
  /** Told before asking again after a wrong passphrase. */
  readonly onWrong?: () => void;
}

/** Tries at an interactive prompt: for a passphrase of every command that unlocks, and for any secret typed there. */
export const PROMPT_ATTEMPTS = 3;

/**
 * Runs `work` with the passphrase; when it fails with a wrong passphrase typed at a prompt,
 * asks again, up to PROMPT_ATTEMPTS tries in all. The one retry rule of every command.
 */
export async function withPassphrase<T>(passphrase: PassphraseAsker, work: (ask: () => Promise<string>) => Promise<T>): Promise<T> {
  const attempts = passphrase.interactive ? PROMPT_ATTEMPTS : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(passphrase.ask);
    } catch (err) {
      if (attempt < attempts && err instanceof VaultError && err.kind === 'wrong-passphrase') {
        passphrase.onWrong?.();
        continue;
      }
      throw err;
    }
  }
}

/**
 * Unlocks the vault at `cipherDir` through its vault file (whose MAC is then checked). The
 * vault id that finds the key is read before anything is authenticated: when the key store
 * has no key for it but holds one stored for this very folder, the vault file was edited or
 * replaced, and saying "no key" would send the user to the wrong remedy.
 */
export async function unlockVaultAt(cipherDir: string, keystoreDir: string, passphrase: PassphraseAsker): Promise<{ config: VaultConfig; masterKey: Uint8Array }> {
  try {
    return await withPassphrase(passphrase, (ask) => unlockVault({ cipherDir, keystoreDir, passphrase: ask }));
  } catch (err) {
    if (!(err instanceof VaultError && err.kind === 'no-key')) throw err;
    const stored = await keysStoredFor(cipherDir, keystoreDir);
    if (stored.length === 0) throw err;
    throw new VaultError(
      'vault-tampered',
      `${resolve(cipherDir)}: the vault file names a vault whose key is not in ${resolve(keystoreDir)}, but the key store holds this folder's key as vault ${stored.join(', ')}: the vault file was edited or replaced; repair it from a backup: sealfs repair ${shellQuote(cipherDir)} --from REMOTE`,
    );
  }
}

/** The master key of vault `vaultId` from the key store. */
export function unlockVaultId(vaultId: string, keystoreDir: string, passphrase: PassphraseAsker, cipherDir?: string): Promise<Uint8Array> {
  return withPassphrase(passphrase, (ask) => unlockMasterKey({ keystoreDir, vaultId, passphrase: ask, cipherDir }));
}

/** Vault ids of key store entries that were stored for this cipher directory (their informational cipherDir field). */
export async function keysStoredFor(cipherDir: string, keystoreDir: string): Promise<string[]> {
  const real = await realpath(cipherDir).catch(() => resolve(cipherDir));
  const ids: string[] = [];
  const names = await readdir(keystoreDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith(KEY_FILE_SUFFIX))) {
    const read = await readControlFile(join(keystoreDir, name), MAX_KEY_FILE_BYTES);
    if (!read.ok) continue;
    try {
      const file = JSON.parse(read.bytes.toString('utf8')) as { format?: string; vaultId?: string; cipherDir?: string } | null;
      if (file?.format === KEYSTORE_FORMAT && file.cipherDir === real && typeof file.vaultId === 'string') ids.push(file.vaultId);
    } catch {
      // not a key store file we can read: skip
    }
  }
  return ids;
}

export interface Unlocked {
  readonly masterKey: Uint8Array;
  readonly vaultId: string;
}

/**
 * Unlocks the vault at `cipherDir` for maintenance: through its vault file when that can be
 * read, else (lost, damaged or edited) through the key store entry stored for this folder.
 * The vault file's MAC is not checked here: scrub reports a vault file that fails it.
 */
export async function unlockForMaintenance(cipherDir: string, keystoreDir: string, passphrase: PassphraseAsker): Promise<Unlocked> {
  let vaultId: string | undefined;
  let trouble: VaultError | undefined;
  try {
    vaultId = (await readVaultFile(cipherDir)).config.vaultId;
  } catch (err) {
    if (!(err instanceof VaultError)) throw err;
    trouble = err;
  }
  if (vaultId !== undefined) {
    try {
      return { masterKey: await unlockVaultId(vaultId, keystoreDir, passphrase, cipherDir), vaultId };
    } catch (err) {
      if (!(err instanceof VaultError && err.kind === 'no-key')) throw err;
      trouble = err;
    }
  }
  for (const id of await keysStoredFor(cipherDir, keystoreDir)) {
    if (id === vaultId) continue;
    return { masterKey: await unlockVaultId(id, keystoreDir, passphrase, cipherDir), vaultId: id };
  }
  const hint = trouble!.kind === 'no-key' ? '' : `; if its vault file was lost or damaged, repair it from a backup: sealfs repair ${shellQuote(cipherDir)} --from REMOTE`;
  throw new VaultError(trouble!.kind, trouble!.message + hint);
}

/**
 * Unlocks for a restore with the backup's vault file (read from `where`): the key is
 * undefined when the key store has none for it; a vault file that does not verify under it
 * is left for the scrub after the restore to report.
 */
export async function unlockForRestore(stored: StoredVaultFile, where: string, keystoreDir: string, passphrase: PassphraseAsker): Promise<{ vaultId: string; masterKey?: Uint8Array }> {
  const vaultId = stored.config.vaultId;
  let masterKey: Uint8Array;
  try {
    masterKey = await unlockVaultId(vaultId, keystoreDir, passphrase);
  } catch (err) {
    // No key, or a vault id that cannot name one: the restore goes on, unverified.
    if (err instanceof VaultError && (err.kind === 'no-key' || err.kind === 'vault-tampered')) return { vaultId };
    throw err;
  }
  try {
    verifyVaultFile(stored, masterKey, where);
  } catch (err) {
    if (!(err instanceof VaultError && err.kind === 'vault-tampered')) {
      masterKey.fill(0);
      throw err;
    }
  }
  return { vaultId, masterKey };
}

/**
 * Unlocks for a repair: as for maintenance, else, when the local vault file is lost or
 * damaged or names a key the key store lacks, with the backup's vault file, which must
 * then verify under the key it names.
 */
export async function unlockForRepair(
  cipherDir: string,
  keystoreDir: string,
  passphrase: PassphraseAsker,
  backup: { readonly where: string; readonly vaultFile: () => Promise<StoredVaultFile | undefined> },
): Promise<Unlocked> {
  try {
    return await unlockForMaintenance(cipherDir, keystoreDir, passphrase);
  } catch (err) {
    if (!(err instanceof VaultError && (err.kind === 'not-a-vault' || err.kind === 'vault-tampered' || err.kind === 'no-key'))) throw err;
    const stored = await backup.vaultFile();
    if (!stored) throw err;
    const masterKey = await unlockVaultId(stored.config.vaultId, keystoreDir, passphrase);
    try {
      verifyVaultFile(stored, masterKey, backup.where);
    } catch (verifyErr) {
      masterKey.fill(0);
      throw verifyErr;
    }
    return { masterKey, vaultId: stored.config.vaultId };
  }
}
