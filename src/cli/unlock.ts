import { VaultError } from '../vault/errors.js';
import { unlockVault } from '../vault/init.js';
import { defaultKeystoreDir } from '../vault/keystore.js';
import type { VaultConfig } from '../vault/vaultfile.js';
import { obtainPassphrase, tellTerminal, type VaultKeyOptions } from './passphrase.js';

const PROMPT_ATTEMPTS = 3;

/**
 * Unlocks the vault at `cipherDir` the way every command does (mount, ls, cat, export…):
 * options from addPassphraseOptions. The passphrase is asked for only after the vault file
 * and its key were found; at a prompt a wrong passphrase may be retyped (3 attempts).
 */
export async function unlockFromOptions(cipherDir: string, opts: VaultKeyOptions): Promise<{ config: VaultConfig; masterKey: Uint8Array }> {
  const keystoreDir = opts.keystore ?? defaultKeystoreDir();
  const interactive = opts.passphraseFile === undefined && opts.extpass === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await unlockVault({
        cipherDir,
        keystoreDir,
        passphrase: () => obtainPassphrase({ ...opts, purpose: `passphrase for ${cipherDir}` }),
      });
    } catch (err) {
      if (interactive && attempt < PROMPT_ATTEMPTS && err instanceof VaultError && err.kind === 'wrong-passphrase') {
        tellTerminal('Wrong passphrase, try again.\n');
        continue;
      }
      throw err;
    }
  }
}
