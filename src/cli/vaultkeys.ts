/**
 * `sealfs init`, `sealfs key export|import`, `sealfs passwd`. This file only parses and
 * prints; the logic is in src/vault/. Secrets go to stdout only when they are the
 * command's product (the recovery key); everything else goes to stderr.
 */
import { Option } from 'commander';
import type { CipherName } from '../crypto/ciphers.js';
import { chunkSizeOption, cipherOption, integerArg } from './args.js';
import { VaultError } from '../vault/errors.js';
import { changeVaultPassphrase, DEFAULT_MAX_NAME_LENGTH, importKeyIntoKeystore, initVault, MAX_MAX_NAME_LENGTH, MIN_MAX_NAME_LENGTH, readKeyOrRecoveryFile } from '../vault/init.js';
import { DEFAULT_KDF_TARGET_MS, KeyExistsError } from '../vault/keystore.js';
import { encodeRecoveryKey, groupRecoveryKey, parseRecoveryKey } from '../vault/recovery.js';
import { shellQuote } from '../vault/paths.js';
import { PROMPT_ATTEMPTS, withPassphrase } from '../vault/unlock.js';
import { CliError, EXIT } from './exit.js';
import type { SealfsCommand } from './help.js';
import type { CliIo } from './io.js';
import { addPassphraseOptions, keystoreOf, obtainPassphrase, passphraseAsker, promptRecoveryKey, tellTerminal, type VaultKeyOptions } from './passphrase.js';
import { unlockFromOptions } from './unlock.js';

const kdfOption = () =>
  new Option(
    '--kdf-target-ms <ms>',
    'expert: milliseconds one passphrase check should take on this machine (scrypt is calibrated to it); ' +
      'lower unlocks faster but makes guessing the passphrase cheaper',
  )
    .argParser(integerArg(1, 60_000))
    .default(DEFAULT_KDF_TARGET_MS);

function warnKdf(ms: number, io: CliIo): void {
  if (ms < DEFAULT_KDF_TARGET_MS) {
    io.stderr.write(`sealfs: warning: --kdf-target-ms ${ms} is below the default ${DEFAULT_KDF_TARGET_MS}; the passphrase is cheaper to guess\n`);
  }
}

function printWarnings(warnings: readonly string[], io: CliIo): void {
  for (const warning of warnings) io.stderr.write(`sealfs: warning: ${warning}\n`);
}

/** Prints the recovery key (stdout) between instructions (stderr). */
function printRecoveryKey(masterKey: Uint8Array, intro: string, io: CliIo): void {
  const err = (text: string) => void io.stderr.write(text);
  err(`\n${intro}\n`);
  err('Write it on paper now and keep the paper somewhere safe, away from this computer.\n');
  err('Anyone who has it can read the vault. Without it, losing this computer\'s key store loses the data.\n\n');
  io.stdout.write(`${encodeRecoveryKey(masterKey)}\n`);
  err('\n');
}

/** A key to import: from a file (recovery key or key file), or a recovery key typed at the terminal. */
async function loadKey(file: string | undefined, optionName: string, io: CliIo): Promise<Uint8Array> {
  if (file !== undefined) return readKeyOrRecoveryFile(file);
  for (let attempt = 1; ; attempt++) {
    // Short enough that the prompt and a whole key (65 columns) fit on one 80-column line.
    const text = await promptRecoveryKey('Recovery key: ', groupRecoveryKey, io);
    if (text === undefined) {
      throw new CliError(`no recovery key: there is no terminal to ask at; use ${optionName} FILE (${optionName} /dev/stdin reads it from a pipe)`, EXIT.USAGE);
    }
    try {
      return parseRecoveryKey(text);
    } catch (e) {
      if (attempt < PROMPT_ATTEMPTS && e instanceof VaultError) {
        tellTerminal(`${e.message}\n`, io);
        continue;
      }
      throw e;
    }
  }
}

interface InitCliOptions extends VaultKeyOptions {
  cipher: CipherName;
  chunkSize: number;
  maxNameLength: number;
  importKey?: boolean;
  importKeyFile?: string;
  kdfTargetMs: number;
}

async function initCommand(cipherDir: string, opts: InitCliOptions, io: CliIo): Promise<void> {
  if (opts.importKey && opts.importKeyFile !== undefined) throw new CliError('use either --import-key or --import-key-file, not both', EXIT.USAGE);
  warnKdf(opts.kdfTargetMs, io);
  const importing = opts.importKey || opts.importKeyFile !== undefined;
  const result = await initVault({
    cipherDir,
    keystoreDir: keystoreOf(opts, io),
    passphrase: () => obtainPassphrase({ ...opts, purpose: 'a new passphrase for this vault', confirm: true }, io),
    cipher: opts.cipher,
    chunkSize: opts.chunkSize,
    maxNameLength: opts.maxNameLength,
    importKey: importing ? () => loadKey(opts.importKeyFile, '--import-key-file', io) : undefined,
    kdfTargetMs: opts.kdfTargetMs,
  });
  printWarnings(result.warnings, io);
  const { config } = result;
  const err = (text: string) => void io.stderr.write(text);
  err(`Created vault ${config.vaultId} in ${result.cipherDir} (${config.cipher}, ${config.chunkSize / 1024} KiB chunks${importing ? ', imported key' : ''}).\n`);
  err(`Its key is in the local key store: ${result.keyPath}\n`);
  err('Never copy the key store into the vault folder or any synced folder.\n');
  printRecoveryKey(result.masterKey, `RECOVERY KEY (\`sealfs key export ${shellQuote(result.cipherDir)}\` prints it again, after asking for the passphrase):`, io);
  result.masterKey.fill(0);
}

async function keyExportCommand(cipherDir: string, opts: VaultKeyOptions, io: CliIo): Promise<void> {
  const { config, masterKey } = await unlockFromOptions(cipherDir, opts, io);
  printRecoveryKey(masterKey, `RECOVERY KEY of vault ${config.vaultId}:`, io);
  masterKey.fill(0);
}

interface ImportCliOptions extends VaultKeyOptions {
  recoveryKeyFile?: string;
  replace?: boolean;
  kdfTargetMs: number;
}

async function keyImportCommand(cipherDir: string, opts: ImportCliOptions, io: CliIo): Promise<void> {
  warnKdf(opts.kdfTargetMs, io);
  const masterKey = await loadKey(opts.recoveryKeyFile, '--recovery-key-file', io);
  try {
    const result = await importKeyIntoKeystore(
      cipherDir,
      keystoreOf(opts, io),
      masterKey,
      () => obtainPassphrase({ ...opts, purpose: 'a new passphrase for this vault', confirm: true }, io),
      { replace: opts.replace ?? false, kdfTargetMs: opts.kdfTargetMs },
    );
    printWarnings(result.warnings, io);
    io.stderr.write(`Key of vault ${result.config.vaultId} stored in ${result.keyPath}; the vault can be unlocked with the new passphrase.\n`);
  } catch (e) {
    if (e instanceof KeyExistsError) {
      throw new CliError(`${e.path}: this vault already has a key in the key store; use --replace to overwrite it (its passphrase will stop working)`, EXIT.IO);
    }
    throw e;
  } finally {
    masterKey.fill(0);
  }
}

interface PasswdCliOptions extends VaultKeyOptions {
  newPassphraseFile?: string;
  kdfTargetMs: number;
}

async function passwdCommand(cipherDir: string, opts: PasswdCliOptions, io: CliIo): Promise<void> {
  warnKdf(opts.kdfTargetMs, io);
  const keyPath = await withPassphrase(passphraseAsker(opts, `current passphrase for ${cipherDir}`, io), (ask) =>
    changeVaultPassphrase({
      cipherDir,
      keystoreDir: keystoreOf(opts, io),
      oldPassphrase: ask,
      newPassphrase: () => obtainPassphrase({ passphraseFile: opts.newPassphraseFile, purpose: 'new passphrase', confirm: true }, io),
      kdfTargetMs: opts.kdfTargetMs,
    }),
  );
  io.stderr.write(`Passphrase changed (${keyPath}). The vault folder was not modified; the recovery key stays the same.\n`);
}

/** Registers init, key export, key import and passwd on the sealfs program. */
export function registerVaultKeyCommands(program: SealfsCommand, io: CliIo): void {
  addPassphraseOptions(
    program
      .command('init')
      .summary('create a new vault in a new or empty folder')
      .documented({ examples: ['sealfs init ~/Dropbox/vault'], exits: ['IO', 'KEY', 'VAULT', 'UNSAFE', 'INTERRUPTED'] })
      .description('create a new vault in CIPHERDIR (a new or empty folder, e.g. inside your sync folder); its key goes to the local key store, never into CIPHERDIR')
      .argument('<cipherdir>', 'folder for the ciphertext (the one the sync client uploads)')
      .addOption(cipherOption())
      .addOption(chunkSizeOption())
      .option(
        '--max-name-length <n>',
        'longest encrypted file name (bytes) before the long-name scheme; lower it for file systems or services with shorter limits',
        integerArg(MIN_MAX_NAME_LENGTH, MAX_MAX_NAME_LENGTH),
        DEFAULT_MAX_NAME_LENGTH,
      ),
  )
    .option('--import-key', 'bring your own key: type its recovery key at a prompt')
    .option('--import-key-file <file>', 'bring your own key from FILE: a recovery key, or a key file from `sealfs keygen`')
    .addOption(kdfOption())
    .action((cipherDir: string, opts: InitCliOptions) => initCommand(cipherDir, opts, io));

  const key = program.command('key').description('export or restore the key of a vault');

  addPassphraseOptions(
    key
      .command('export')
      .summary("print a vault's recovery key")
      .documented({ examples: ['sealfs key export ~/Dropbox/vault'], exits: ['IO', 'KEY', 'VAULT', 'INTERRUPTED'] })
      .description('print the recovery key of the vault in CIPHERDIR (asks for the passphrase)')
      .argument('<cipherdir>', 'the vault folder'),
  ).action((cipherDir: string, opts: VaultKeyOptions) => keyExportCommand(cipherDir, opts, io));

  addPassphraseOptions(
    key
      .command('import')
      .summary("restore a vault's key from its recovery key")
      .documented({ examples: ['sealfs key import ~/Dropbox/vault'], exits: ['IO', 'KEY', 'VAULT', 'UNSAFE', 'INTERRUPTED'] })
      .description('restore the key store entry of the vault in CIPHERDIR from its recovery key, under a new passphrase')
      .argument('<cipherdir>', 'the vault folder')
      .option('--recovery-key-file <file>', 'read the recovery key (or a `sealfs keygen` key file) from FILE instead of a prompt')
      .option('--replace', 'overwrite a key already in the key store for this vault'),
  )
    .addOption(kdfOption())
    .action((cipherDir: string, opts: ImportCliOptions) => keyImportCommand(cipherDir, opts, io));

  addPassphraseOptions(
    program
      .command('passwd')
      .summary("change a vault's passphrase")
      .documented({ examples: ['sealfs passwd ~/Dropbox/vault'], exits: ['IO', 'KEY', 'VAULT', 'UNSAFE', 'INTERRUPTED'] })
      .description('change the passphrase of the vault in CIPHERDIR (only the local key store changes)')
      .argument('<cipherdir>', 'the vault folder')
      .option('--new-passphrase-file <file>', 'read the new passphrase from the first line of FILE instead of a prompt'),
  )
    .addOption(kdfOption())
    .action((cipherDir: string, opts: PasswdCliOptions) => passwdCommand(cipherDir, opts, io));
}
