/**
 * `sealfs info VAULT [--json]`: what the vault file says, and where this machine keeps the
 * vault's key, without the key. The vault file lies in the synced folder and is hostile
 * input: it is read by readVaultFile (bounded, never through a link; it also says what is
 * wrong with a path that is no vault), and nothing it says is authenticated until a command
 * that has the key checks its MAC; the output says so.
 */
import { join, resolve } from 'node:path';
import { Option } from 'commander';
import { hasStoredKey, keyFilePath, readKeyStoreFile } from '../vault/keystore.js';
import { shellQuote } from '../vault/paths.js';
import { readVaultFile, VAULT_FILE } from '../vault/vaultfile.js';
import type { SealfsCommand } from './help.js';
import type { CliIo } from './io.js';
import { keystoreOf } from './passphrase.js';

/** `--json` (README, "Seeing what is mounted"): a stable shape for scripts. */
interface VaultInfoJson {
  readonly vault: string;
  readonly vaultFile: string;
  /** Always false: the vault file's MAC is only checked with the key. */
  readonly authenticated: false;
  readonly format: string;
  readonly version: number;
  readonly vaultId: string;
  readonly cipher: string;
  readonly chunkSize: number;
  readonly nameScheme: string;
  readonly maxNameLength: number;
  /** This machine's key store file for the vault. */
  readonly keyFile: string;
  /** present: a key store file for this vault (its passphrase is not checked); missing; unusable (keyProblem says why). */
  readonly key: 'present' | 'missing' | 'unusable';
  readonly keyProblem: string | null;
}

async function keyState(keystore: string, vaultId: string, vault: string): Promise<Pick<VaultInfoJson, 'key' | 'keyProblem'>> {
  try {
    if (!(await hasStoredKey(keystore, vaultId))) return { key: 'missing', keyProblem: null };
    await readKeyStoreFile(keystore, vaultId);
    return { key: 'present', keyProblem: null };
  } catch (err) {
    return { key: 'unusable', keyProblem: `${(err as Error).message} (restore it with \`sealfs key import ${shellQuote(vault)}\`)` };
  }
}

async function vaultInfo(vaultArg: string, keystore: string): Promise<VaultInfoJson> {
  const vault = resolve(vaultArg);
  const { config } = await readVaultFile(vault);
  // keyFilePath refuses a vault id that is not a UUID (it would name a path).
  const keyFile = keyFilePath(keystore, config.vaultId);
  return {
    vault,
    vaultFile: join(vault, VAULT_FILE),
    authenticated: false,
    format: config.format,
    version: config.version,
    vaultId: config.vaultId,
    cipher: config.cipher,
    chunkSize: config.chunkSize,
    nameScheme: config.nameScheme,
    maxNameLength: config.maxNameLength,
    keyFile,
    ...(await keyState(keystore, config.vaultId, vault)),
  };
}

function sizeText(bytes: number): string {
  return bytes >= 1024 && bytes % 1024 === 0 ? `${bytes} bytes (${bytes / 1024} KiB)` : `${bytes} bytes`;
}

function infoText(i: VaultInfoJson): string {
  const key =
    i.key === 'present'
      ? 'present (the passphrase is checked when the vault is unlocked)'
      : i.key === 'missing'
        ? `none on this machine: rebuild it from the recovery key with \`sealfs key import ${shellQuote(i.vault)}\``
        : `unusable: ${i.keyProblem}`;
  return [
    `vault:        ${i.vault}`,
    `vault file:   ${i.vaultFile}`,
    '              NOT AUTHENTICATED: read without the key, so its MAC was not checked; every',
    '              command that unlocks the vault checks it and refuses an edited vault file',
    `format:       ${i.format} version ${i.version}`,
    `vault id:     ${i.vaultId}`,
    `cipher:       ${i.cipher}`,
    `chunk size:   ${sizeText(i.chunkSize)}`,
    `names:        ${i.nameScheme}, stored in the long form beyond ${i.maxNameLength} characters`,
    `key file:     ${i.keyFile}`,
    `key:          ${key}`,
  ].join('\n') + '\n';
}

/** Registers `sealfs info`. */
export function registerInfoCommand(program: SealfsCommand, io: CliIo): void {
  program
    .command('info')
    .summary("show a vault's settings and where its key is")
    .documented({ examples: ['sealfs info ~/Dropbox/vault', 'sealfs info ~/Dropbox/vault --json'], exits: ['IO', 'VAULT'] })
    .description("show what a vault's vault file says (format, cipher, chunk size, names, vault id) and whether this machine has its key; needs no key")
    .argument('<cipherdir>', 'the vault folder (ciphertext)')
    .option('--json', 'print one JSON object (see the README)')
    .addOption(new Option('--keystore <dir>', 'key store folder to look in (default: $XDG_CONFIG_HOME/sealfs, else ~/.config/sealfs)'))
    .action(async (cipherDir: string, opts: { json?: boolean; keystore?: string }) => {
      const info = await vaultInfo(cipherDir, keystoreOf(opts, io));
      io.stdout.write(opts.json ? JSON.stringify(info) + '\n' : infoText(info));
    });
}
