import { unlockVaultAt } from '../vault/unlock.js';
import type { VaultConfig } from '../vault/vaultfile.js';
import type { CliIo } from './io.js';
import { keystoreOf, passphraseAsker, type VaultKeyOptions } from './passphrase.js';

/**
 * Unlocks the vault at `cipherDir` the way every command does (mount, ls, cat, export…),
 * with the options from addPassphraseOptions; the rules are src/vault/unlock.ts's.
 */
export function unlockFromOptions(cipherDir: string, opts: VaultKeyOptions, io: CliIo): Promise<{ config: VaultConfig; masterKey: Uint8Array }> {
  return unlockVaultAt(cipherDir, keystoreOf(opts, io), passphraseAsker(opts, `passphrase for ${cipherDir}`, io));
}
