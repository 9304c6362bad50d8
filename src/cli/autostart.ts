/**
 * `sealfs autostart enable|disable|list`: a systemd user service per mount point that runs
 * `sealfs mount` at login (and `sealfs unmount` when stopped), with the passphrase from the
 * desktop keyring (Secret Service, read with `secret-tool lookup`) or from a file. The unit
 * runs the installed command by its real paths (node and main.js), so it does not depend on
 * the PATH of the user's systemd.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SealfsCommand } from './help.js';
import { unlockVaultAt } from '../vault/unlock.js';
import { isVaultId, stateDir } from '../vault/paths.js';
import { readVaultFile } from '../vault/vaultfile.js';
import { CliError, EXIT } from './exit.js';
import type { CliIo } from './io.js';
import { keystoreOf, obtainPassphrase, passphraseAsker, tellTerminal } from './passphrase.js';

/** First line of every unit this command writes: it only ever overwrites or removes those. */
export const UNIT_MARKER = '# Written by `sealfs autostart enable`; remove it with `sealfs autostart disable`.';
const UNIT_PREFIX = 'sealfs-';

/** The Secret Service attributes a vault's passphrase is stored under. */
export function keyringAttributes(vaultId: string): string[] {
  return ['application', 'sealfs', 'vault', vaultId];
}

/** `secret-tool store` arguments for a vault's passphrase (it reads the passphrase from its terminal or stdin). */
function keyringStoreArgs(vaultId: string, cipherDir: string): string[] {
  return ['store', `--label=sealfs vault ${vaultId} (${cipherDir})`, ...keyringAttributes(vaultId)];
}

/** `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user` (where `systemctl --user` looks). */
export function userUnitDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  const config = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.config');
  return join(config, 'systemd', 'user');
}

/** `systemd-escape --path`: a path as one unit-name component ("/home/a b" → "home-a\x20b"). */
export function escapePath(path: string): string {
  const trimmed = resolve(path).replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '-';
  let out = '';
  const bytes = Buffer.from(trimmed, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    const ch = String.fromCharCode(byte);
    if (ch === '/') out += '-';
    else if (/[A-Za-z0-9:_]/.test(ch) || (ch === '.' && i > 0)) out += ch;
    else out += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The service of a mount point: sealfs-<escaped path>.service. */
export function unitName(mountpoint: string): string {
  return `${UNIT_PREFIX}${escapePath(mountpoint)}.service`;
}

/** Text systemd reads literally in any setting: `%` starts a specifier. */
function noSpecifiers(text: string): string {
  return text.replace(/%/g, '%%');
}

/** One argument of an Exec= line: quoted, with backslash, quote, `%` and `$` escaped as systemd requires. */
export function execArg(arg: string): string {
  if (/[\u0000-\u001f\u007f]/.test(arg)) throw new CliError(`${JSON.stringify(arg)}: a control character cannot go into a systemd unit`, EXIT.USAGE);
  return `"${noSpecifiers(arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"')).replace(/\$/g, '$$$$')}"`;
}

export type PassphraseSource = { readonly file: string } | { readonly keyring: { readonly vaultId: string; readonly secretTool: string } };

export interface UnitSpec {
  readonly cipherDir: string;
  readonly mountpoint: string;
  readonly keystore: string;
  readonly passphrase: PassphraseSource;
  /** The sealfs command: node's and main.js's real paths. */
  readonly command: readonly string[];
  readonly pidFile: string;
}

/** The shell command --extpass runs to read the passphrase from the keyring. */
export function keyringLookup(secretTool: string, vaultId: string): string {
  if (!isVaultId(vaultId)) throw new CliError(`invalid vault id ${JSON.stringify(vaultId)}`, EXIT.VAULT);
  return [shellQuote(secretTool), 'lookup', ...keyringAttributes(vaultId)].join(' ');
}

/** A word for /bin/sh (single quotes). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The unit file of a spec. */
export function unitText(spec: UnitSpec): string {
  const passphrase =
    'file' in spec.passphrase ? ['--passphrase-file', spec.passphrase.file] : ['--extpass', keyringLookup(spec.passphrase.keyring.secretTool, spec.passphrase.keyring.vaultId)];
  const start = [...spec.command, 'mount', spec.cipherDir, spec.mountpoint, '--keystore', spec.keystore, ...passphrase, '--pid-file', spec.pidFile];
  const stop = [...spec.command, 'unmount', spec.mountpoint];
  const keyring = 'keyring' in spec.passphrase;
  return [
    UNIT_MARKER,
    '[Unit]',
    `Description=${noSpecifiers(`sealfs: ${spec.cipherDir} on ${spec.mountpoint}`)}`,
    // A wrong passphrase or a keyring that is still locked fails the start; a few retries, then it stays failed.
    'StartLimitIntervalSec=300',
    'StartLimitBurst=5',
    '',
    '[Service]',
    // `sealfs mount` returns once the mount is up; its server stays, and is the main process.
    'Type=forking',
    `PIDFile=${noSpecifiers(spec.pidFile)}`,
    `ExecStart=${start.map(execArg).join(' ')}`,
    `ExecStop=${stop.map(execArg).join(' ')}`,
    'Restart=on-failure',
    `RestartSec=${keyring ? 10 : 30}`,
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
}

/** The command as it is installed: node and main.js by their real paths. */
export function installedCommand(): string[] {
  return [realpathSync(process.execPath), realpathSync(fileURLToPath(new URL('./main.js', import.meta.url)))];
}

/** A program on PATH, or undefined. */
function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isAbsolute(dir) && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Is a systemd user manager running for this session (its private socket is there)? */
function userManagerRunning(env: NodeJS.ProcessEnv): boolean {
  const runtime = env.XDG_RUNTIME_DIR;
  return !!runtime && isAbsolute(runtime) && existsSync(join(runtime, 'systemd', 'private'));
}

/** Runs `systemctl --user ARGS`; a failure says what to run instead. */
function systemctl(args: readonly string[], io: CliIo): void {
  const run = spawnSync('systemctl', ['--user', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: io.env, encoding: 'utf8' });
  if (run.status !== 0) {
    const why = run.error?.message ?? (run.stderr.trim().split('\n')[0] || `exit ${run.status}`);
    throw new CliError(`systemctl --user ${args.join(' ')} failed (${why}); run it yourself once the user session has systemd`, EXIT.INTERNAL);
  }
}

async function ourUnit(path: string): Promise<boolean | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : text.startsWith(UNIT_MARKER);
}

async function checkFolder(path: string, what: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new CliError(`${what} ${path} does not exist (create it first: mkdir -p ${shellQuote(path)})`, EXIT.IO);
  if (!st.isDirectory()) throw new CliError(`${what} ${path} is not a folder`, EXIT.IO);
}

interface EnableOptions {
  passphraseFile?: string;
  keyring?: boolean;
  keystore?: string;
  now?: boolean;
}

/**
 * Stores the vault's passphrase in the keyring: asked at the terminal and checked against
 * the key store first, so a typo is not stored. Without a terminal, says the command to run.
 */
async function storeInKeyring(cipherDir: string, keystore: string, vaultId: string, secretTool: string, io: CliIo): Promise<void> {
  const storeArgs = keyringStoreArgs(vaultId, cipherDir);
  const command = [secretTool, ...storeArgs].map(shellQuote).join(' ');
  if (!io.openTerminal()) {
    io.stderr.write(`Store the vault's passphrase in the keyring once (it asks for it):\n  ${command}\n`);
    return;
  }
  let passphrase = '';
  const { masterKey } = await unlockVaultAt(cipherDir, keystore, {
    ask: async () => (passphrase = await obtainPassphrase({ purpose: `passphrase for ${cipherDir} (to store in the keyring)` }, io)),
    interactive: true,
    onWrong: () => tellTerminal('Wrong passphrase, try again.\n', io),
  });
  masterKey.fill(0);
  const code = await new Promise<number | null>((resolvePromise) => {
    const child = spawn(secretTool, storeArgs, { stdio: ['pipe', 'ignore', 'pipe'], env: io.env });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    child.on('error', () => resolvePromise(-1));
    child.on('close', (status) => {
      if (status !== 0 && err) io.stderr.write(err);
      resolvePromise(status);
    });
    child.stdin.end(passphrase);
  });
  passphrase = '';
  if (code !== 0) throw new CliError(`secret-tool could not store the passphrase (is the desktop keyring running and unlocked?); store it later with: ${command}`, EXIT.KEY);
  io.stderr.write('Stored the passphrase in the keyring.\n');
}

async function enableCommand(cipherDirArg: string, mountpointArg: string, opts: EnableOptions, io: CliIo): Promise<void> {
  if ((opts.passphraseFile === undefined) === !opts.keyring) {
    throw new CliError('say where the passphrase comes from at login: --keyring (the desktop keyring) or --passphrase-file FILE', EXIT.USAGE);
  }
  const cipherDir = resolve(cipherDirArg);
  const mountpoint = resolve(mountpointArg);
  const keystore = resolve(keystoreOf(opts, io));
  const { config } = await readVaultFile(cipherDir);
  await checkFolder(mountpoint, 'the mount point');
  const dir = userUnitDir(io.env);
  const unit = unitName(mountpoint);
  const path = join(dir, unit);
  if ((await ourUnit(path)) === false) throw new CliError(`${path} exists and was not written by sealfs; remove it first`, EXIT.IO);
  let passphrase: PassphraseSource;
  let secretTool: string | undefined;
  if (opts.passphraseFile !== undefined) {
    const file = resolve(opts.passphraseFile);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) throw new CliError(`the passphrase file ${file} does not exist`, EXIT.IO);
    if (st.mode & 0o077) io.stderr.write(`sealfs: warning: ${file} can be read by other users; chmod 600 ${shellQuote(file)}\n`);
    // Checked now: a wrong passphrase or a missing key would otherwise only show as a failed login mount.
    const { masterKey } = await unlockVaultAt(cipherDir, keystore, passphraseAsker({ passphraseFile: file }, `passphrase for ${cipherDir}`, io));
    masterKey.fill(0);
    passphrase = { file };
  } else {
    secretTool = onPath('secret-tool', io.env);
    passphrase = { keyring: { vaultId: config.vaultId, secretTool: secretTool ?? 'secret-tool' } };
  }

  const pidFile = join(stateDir(io.env), `autostart-${createHash('sha256').update(mountpoint).digest('hex').slice(0, 16)}.pid`);
  await mkdir(dir, { recursive: true });
  await writeFile(path, unitText({ cipherDir, mountpoint, keystore, passphrase, command: installedCommand(), pidFile }), { mode: 0o644 });
  io.stderr.write(`Wrote ${path}\n`);

  if ('keyring' in passphrase) {
    if (secretTool === undefined) {
      const command = ['secret-tool', ...keyringStoreArgs(config.vaultId, cipherDir)].map(shellQuote).join(' ');
      io.stderr.write(`secret-tool is not installed: install it (Debian: sudo apt install libsecret-tools), then store the passphrase once:\n  ${command}\n`);
    } else {
      await storeInKeyring(cipherDir, keystore, config.vaultId, secretTool, io);
    }
  }
  const enable = ['enable', ...(opts.now ? ['--now'] : []), unit];
  if (userManagerRunning(io.env)) {
    systemctl(['daemon-reload'], io);
    systemctl(enable, io);
    io.stderr.write(`Enabled ${unit}: ${cipherDir} is mounted at ${mountpoint} at login${opts.now ? ' (and now)' : ''}.\n`);
  } else {
    io.stderr.write(`systemd --user is not running in this session; in a session that has it, run:\n  systemctl --user daemon-reload && systemctl --user ${enable.map(shellQuote).join(' ')}\n`);
  }
}

async function disableCommand(mountpointArg: string, io: CliIo): Promise<void> {
  const mountpoint = resolve(mountpointArg);
  const unit = unitName(mountpoint);
  const path = join(userUnitDir(io.env), unit);
  const ours = await ourUnit(path);
  if (ours === undefined) throw new CliError(`no autostart for ${mountpoint} (${path} does not exist); see \`sealfs autostart list\``, EXIT.USAGE);
  if (!ours) throw new CliError(`${path} was not written by sealfs; leaving it alone`, EXIT.IO);
  // Disabled first (removes its link in default.target.wants), then the file goes.
  if (userManagerRunning(io.env)) systemctl(['disable', unit], io);
  await rm(path);
  if (userManagerRunning(io.env)) systemctl(['daemon-reload'], io);
  else io.stderr.write(`(systemd --user is not running here; if ${unit} is enabled in another session, run: systemctl --user disable ${shellQuote(unit)})\n`);
  io.stderr.write(`Removed ${path}; ${mountpoint} is no longer mounted at login (a mount that is up now stays: sealfs unmount ${shellQuote(mountpoint)}).\n`);
}

async function listCommand(io: CliIo): Promise<void> {
  const dir = userUnitDir(io.env);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.startsWith(UNIT_PREFIX) && name.endsWith('.service')).sort();
  let count = 0;
  for (const name of names) {
    const text = await readFile(join(dir, name), 'utf8').catch(() => '');
    if (!text.startsWith(UNIT_MARKER)) continue;
    const description = /^Description=sealfs: (.*)$/m.exec(text)?.[1]?.replace(/%%/g, '%') ?? '';
    io.stdout.write(`${name}\t${description}\n`);
    count++;
  }
  if (count === 0) io.stderr.write(`No sealfs autostart units in ${dir}.\n`);
}

/** Registers `sealfs autostart enable|disable|list`. */
export function registerAutostartCommands(program: SealfsCommand, io: CliIo): void {
  const autostart = program.command('autostart').summary('mount a vault at login (systemd user service)').description('mount a vault at login through a systemd user service');
  autostart
    .command('enable')
    .summary('mount a vault at every login')
    .documented({ examples: ['sealfs autostart enable ~/Dropbox/vault ~/Private --keyring'], exits: ['IO', 'KEY', 'VAULT', 'INTERRUPTED'] })
    .description('write a systemd user service that mounts CIPHERDIR at MOUNTPOINT at login, and enable it')
    .argument('<cipherdir>', 'the vault folder (ciphertext)')
    .argument('<mountpoint>', 'an empty folder where the plaintext appears')
    .option('--keyring', 'read the passphrase from the desktop keyring (Secret Service, through secret-tool); stored there now when run in a terminal')
    .option('--passphrase-file <file>', 'read the passphrase from the first line of FILE at login')
    .option('--keystore <dir>', 'key store folder (default: $XDG_CONFIG_HOME/sealfs, else ~/.config/sealfs)')
    .option('--now', 'also start it now')
    .action((cipherDir: string, mountpoint: string, opts: EnableOptions) => enableCommand(cipherDir, mountpoint, opts, io));
  autostart
    .command('disable')
    .summary('remove an autostart service')
    .documented({ examples: ['sealfs autostart disable ~/Private'], exits: ['IO'] })
    .description('remove the autostart service of MOUNTPOINT')
    .argument('<mountpoint>', 'the mount point given to `autostart enable`')
    .action((mountpoint: string) => disableCommand(mountpoint, io));
  autostart
    .command('list')
    .summary('list the autostart services')
    .documented({ examples: ['sealfs autostart list'], exits: ['IO'] })
    .description('list the autostart services sealfs wrote (unit, vault and mount point)')
    .action(() => listCommand(io));
}
