/**
 * `sealfs mount` and `sealfs unmount`. The vault is unlocked in the foreground (so a wrong
 * passphrase or a bad mount point is reported right there, with nothing mounted); then, by
 * default, a detached server process is started, handed the master key as raw bytes over a
 * pipe of its own (never argv or the environment, which other users can read, and never a
 * JavaScript string, which cannot be wiped), and the command returns once that server
 * reports the mount is up. `-f` serves from the command itself. Whichever process serves
 * first disables core dumps and tracing (keyholder.ts), and wipes its keys when it ends.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { lstat, mkdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES } from '../crypto/backend.js';
import { KEY_BYTES } from '../crypto/ciphers.js';
import { describeFsError } from '../fs/errors.js';
import { checkFuseAvailable, checkMountpoint, mountVault, setServerTitle, type MountedVault } from '../fs/mount.js';
import { quiet } from '../fs/log.js';
import { canonicalMountpoint, mountAt } from '../fs/mountinfo.js';
import { unmountPath } from '../fs/unmount.js';
import { isInside, shellQuote, stateDir, statusDirs } from '../vault/paths.js';
import { VAULT_FILE } from '../vault/vaultfile.js';
import { DEFAULT_CACHE_SECONDS, MAX_CACHE_SECONDS, mountSettings } from '../vault/settings.js';
import { lockVault, openVault, type Vault } from '../vault/vault.js';
import { CliError, CliExit, describeError, EXIT } from './exit.js';
import type { SealfsCommand } from './help.js';
import type { CliIo } from './io.js';
import { checkVaultFree, holdVaultLock } from './inuse.js';
import { protectKeyHolder } from './keyholder.js';
import { addPassphraseOptions, type VaultKeyOptions } from './passphrase.js';
import { unlockFromOptions } from './unlock.js';

interface MountCliOptions extends VaultKeyOptions {
  foreground?: boolean;
  readOnly?: boolean;
  noexec?: boolean;
  allowOther?: boolean;
  othersMode?: number;
  pidFile?: string;
  logFile?: string;
  backend?: string;
  cacheTime?: number;
  /** Internal: this process is the background server started by `sealfs mount`. */
  serve?: boolean;
}

/** The server's fd of the pipe the launcher writes the master key into (after stdio and IPC). */
const KEY_FD = 4;

/** What the server says over the IPC channel: ready for the key, then mounted or why not. */
type ServeReply =
  | { readonly type: 'ready' }
  | { readonly type: 'mounted'; readonly pid: number }
  | { readonly type: 'error'; readonly line: string; readonly code: number };

/**
 * glibc malloc settings for the background server: every request allocates buffers of a few
 * hundred KiB, which by default come from mmap and go back with munmap each time (page faults
 * and page zeroing for every request). Kept in the heap instead, a 256 MiB sequential write
 * took about 40% less system CPU and ran 10-50% faster here. The user's own settings win.
 */
const SERVER_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(8 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(16 * 1024 * 1024),
};

/** How long the launcher waits for its server to mount. */
const START_TIMEOUT_MS = 60_000;

const say = (text: string) => void process.stderr.write(text);

function logLine(line: string): string {
  return `${new Date().toISOString()} sealfs[${process.pid}] ${line.replace(/\n/g, ' ')}\n`;
}

/** Whether `dir` holds a vault file (lstat: a link planted under its name is not followed). */
const hasVaultFile = (dir: string) => lstat(join(dir, VAULT_FILE)).then(() => true, () => false);

/**
 * The vault folder and the mount point, before either is used: told apart when given the
 * wrong way round, and never the same folder or one inside the other (the server would
 * serve its own ciphertext through itself). Each mistake is named as what it is, rather than
 * as the "not empty" mount point it also makes.
 */
async function checkPlaces(cipherDir: string, cipherDirArg: string, mountpointArg: string): Promise<void> {
  const vault = await realpath(cipherDir).catch(() => cipherDir);
  const mountpoint = await canonicalMountpoint(mountpointArg);
  const mounted = (await mountAt(mountpoint)) !== undefined; // reported by checkMountpoint, never looked into here
  if (mountpoint === vault) {
    throw new CliError(`the vault folder and the mount point are the same folder (${vault}); mount the vault on another, empty folder: sealfs mount ${shellQuote(cipherDirArg)} MOUNTPOINT`, EXIT.MOUNT);
  }
  if (!mounted && (await hasVaultFile(mountpoint)) && !(await hasVaultFile(vault))) {
    throw new CliError(
      `${mountpoint} is a vault folder and ${vault} is not: the two are swapped; the vault comes first: sealfs mount ${shellQuote(mountpointArg)} ${shellQuote(cipherDirArg)}`,
      EXIT.USAGE,
    );
  }
  if (isInside(mountpoint, vault)) {
    throw new CliError(`the mount point ${mountpoint} is inside the vault folder ${vault}; choose a mount point outside it`, EXIT.MOUNT);
  }
  if (isInside(vault, mountpoint)) {
    throw new CliError(`the vault folder ${vault} is inside the mount point ${mountpoint}; choose a mount point outside the vault folder, such as an empty folder beside it`, EXIT.MOUNT);
  }
  if (!mounted && (await hasVaultFile(mountpoint))) {
    throw new CliError(`${mountpoint} is a vault folder, not a mount point; mount on an empty folder`, EXIT.MOUNT);
  }
}

/**
 * Files the server writes: never inside its own mount (it would deadlock on itself), and in
 * a folder that exists (a mistyped folder is refused, never created).
 */
async function checkSidePaths(mountpoint: string, opts: MountCliOptions): Promise<void> {
  for (const [name, path] of [['--pid-file', opts.pidFile], ['--log-file', opts.logFile]] as const) {
    if (path === undefined) continue;
    if (isInside(resolve(path), mountpoint)) throw new CliError(`${name} ${path} is inside the mount point; name a file outside it`, EXIT.USAGE);
    const folder = dirname(resolve(path));
    const st = await stat(folder).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new CliError(`${name} ${path}: the folder ${folder} does not exist; create it first (mkdir -p ${shellQuote(folder)}) or name a file in an existing folder`, EXIT.IO);
    }
  }
}

/** Opens a log file for appending; `createFolder` only for the default log (in sealfs's own state folder). */
async function openLogFile(path: string, createFolder: boolean): Promise<number> {
  try {
    if (createFolder) await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    return openSync(path, 'a', 0o600);
  } catch (err) {
    throw new CliError(`cannot open the log file: ${describeFsError(err) ?? `${path}: ${(err as Error).message}`}`, EXIT.IO);
  }
}

async function writePidFile(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  // An explicit mode: the server serves with no umask of its own (src/fs/mount.ts).
  await writeFile(path, `${process.pid}\n`, { mode: 0o644 });
}

async function removePidFile(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  const text = await readFile(path, 'utf8').catch(() => '');
  if (text.trim() === String(process.pid)) await rm(path, { force: true });
}

/**
 * Serves until the mount is gone. SIGINT/SIGTERM/SIGHUP unmount (detaching lazily when
 * programs still use the mount); an unmount from outside ends it too.
 */
async function serveUntilClosed(mounted: MountedVault, vault: Vault, log: (line: string) => void, pidFile: string | undefined): Promise<void> {
  setServerTitle(vault.cipherDir, mounted.mountpoint);
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) {
      log(`${why}: already unmounting`);
      return;
    }
    stopping = true;
    log(`${why}: unmounting ${mounted.mountpoint}`);
    try {
      await mounted.unmount();
    } catch (err) {
      log(`${(err as Error).message}; detaching it lazily instead`);
      await mounted.unmount({ lazy: true }).catch((e: unknown) => log(`lazy unmount failed: ${(e as Error).message}`));
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(signal));
  process.on('unhandledRejection', (reason) => log(`internal error (unhandled rejection): ${(reason as Error)?.stack ?? String(reason)}`));
  process.on('uncaughtException', (err) => {
    log(`internal error: ${err.stack ?? err.message}`);
    void stop('internal error');
  });
  await mounted.closed;
  lockVault(vault);
  await removePidFile(pidFile).catch(() => undefined);
  log('server exiting');
}

async function mountCommand(cipherDirArg: string, mountpointArg: string, opts: MountCliOptions, io: CliIo): Promise<void> {
  if (opts.serve) return serveCommand(cipherDirArg, mountpointArg, opts);
  if (opts.othersMode !== undefined && !opts.allowOther) throw new CliError('--others-mode only applies with --allow-other', EXIT.USAGE);
  // The vault folder by its real path, links resolved as the user means them: the server,
  // the mount table, `ps` and the log all name the folder itself.
  const cipherDir = await realpath(resolve(cipherDirArg)).catch(() => resolve(cipherDirArg));
  await checkPlaces(cipherDir, cipherDirArg, mountpointArg);
  const mountpoint = await checkMountpoint(mountpointArg);
  await checkSidePaths(mountpoint, opts);
  await checkFuseAvailable({ allowOther: opts.allowOther ?? false });
  // Said before the passphrase is asked for; the server takes the lock for itself.
  if (await hasVaultFile(cipherDir)) await checkVaultFree(cipherDir);
  const unprotected = protectKeyHolder();
  const { config, masterKey } = await unlockFromOptions(cipherDir, opts, io);

  if (opts.foreground) {
    // Logs go to stderr, or to --log-file when one is named (a file outside the mount).
    const logFd = opts.logFile === undefined ? 2 : await openLogFile(resolve(opts.logFile), false);
    const log = quiet((line: string) => void writeSync(logFd, logLine(line)));
    if (unprotected !== undefined) log(`warning: ${unprotected}`);
    const release = await holdVaultLock(cipherDir, (line) => log(`warning: ${line}`)).catch((err: unknown) => {
      masterKey.fill(0);
      throw err;
    });
    const vault = await openVault(cipherDir, masterKey, { backend: opts.backend, settings: mountSettings(opts.cacheTime) }).finally(() => masterKey.fill(0));
    let mounted: MountedVault;
    try {
      mounted = await mountVault({ vault, mountpoint, readOnly: opts.readOnly ?? false, noExec: opts.noexec ?? false, allowOther: opts.allowOther ?? false, othersMode: opts.othersMode, log, statusDirs: statusDirs(io.env) });
    } catch (err) {
      lockVault(vault);
      release();
      throw err;
    }
    await writePidFile(opts.pidFile);
    return serveUntilClosed(mounted, vault, log, opts.pidFile).finally(release);
  }

  const logFile = resolve(opts.logFile ?? join(stateDir(io.env), `${config.vaultId}.log`));
  const logFd = await openLogFile(logFile, opts.logFile === undefined);
  const args = [process.argv[1]!, 'mount', cipherDir, mountpoint, '--serve'];
  if (opts.readOnly) args.push('--read-only');
  if (opts.noexec) args.push('--noexec');
  if (opts.allowOther) args.push('--allow-other');
  if (opts.othersMode !== undefined) args.push('--others-mode', opts.othersMode.toString(8));
  if (opts.pidFile !== undefined) args.push('--pid-file', resolve(opts.pidFile));
  if (opts.backend !== undefined) args.push('--backend', opts.backend);
  if (opts.cacheTime !== undefined) args.push('--cache-time', String(opts.cacheTime));
  const execArgv = process.execArgv.filter((arg) => !arg.startsWith('--inspect'));
  const child = spawn(process.execPath, [...execArgv, ...args], {
    detached: true,
    cwd: '/',
    stdio: ['ignore', logFd, logFd, 'ipc', 'pipe'], // fd 4 (KEY_FD): the key pipe
    env: { ...SERVER_MALLOC_ENV, ...process.env },
  });
  closeSync(logFd);

  const reply = await new Promise<ServeReply>((resolvePromise) => {
    const timer = setTimeout(() => {
      resolvePromise({ type: 'error', line: `the mount server did not start within ${START_TIMEOUT_MS / 1000} s (see ${logFile})`, code: EXIT.MOUNT });
      child.kill('SIGTERM');
    }, START_TIMEOUT_MS);
    // The key goes out only once the server listens for it (a message sent earlier could be lost).
    const onMessage = (message: ServeReply) => {
      if (message.type === 'ready') {
        // Written from the key's own memory, which is zeroed once the bytes are in the pipe.
        const keyPipe = child.stdio[KEY_FD] as Socket;
        keyPipe.on('error', () => undefined); // a server that died is reported by 'exit'
        keyPipe.end(Buffer.from(masterKey.buffer, masterKey.byteOffset, masterKey.byteLength), () => masterKey.fill(0));
        return;
      }
      child.off('message', onMessage);
      clearTimeout(timer);
      resolvePromise(message);
    };
    child.on('message', onMessage);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ type: 'error', line: `the mount server ended (${signal ?? `exit ${code}`}) before mounting; see ${logFile}`, code: code || EXIT.MOUNT });
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      resolvePromise({ type: 'error', line: `could not start the mount server: ${err.message}`, code: EXIT.MOUNT });
    });
  });
  masterKey.fill(0);
  if (child.connected) child.disconnect();
  child.unref();
  if (reply.type === 'error') throw new CliError(reply.line, reply.code);
  if (reply.type !== 'mounted') throw new CliError('the mount server answered out of turn', EXIT.INTERNAL);
  say(`Mounted ${cipherDir} at ${mountpoint} (server pid ${reply.pid}; log ${logFile}). Unmount with: sealfs unmount ${shellQuote(mountpoint)}\n`);
}

/**
 * Reads the master key the launcher writes into the key pipe (fd KEY_FD) once `ready` says
 * the server listens: exactly KEY_BYTES raw bytes, then end of file. Read into one reused
 * buffer (zeroed after each read) and copied into the key, so no other copy is left behind.
 */
function receiveKey(ready: () => void): Promise<Uint8Array> {
  const key = new Uint8Array(KEY_BYTES);
  const chunk = Buffer.alloc(KEY_BYTES + 1);
  let length = 0;
  return new Promise((resolvePromise, reject) => {
    const fail = (why: string) => {
      key.fill(0);
      pipe.destroy();
      reject(new CliError(`the launching \`sealfs mount\` ${why}`, EXIT.MOUNT));
    };
    // Node takes onread in the constructor too; @types/node lists it for connect() only.
    const options: SocketConstructorOpts & { onread: OnReadOpts } = {
      fd: KEY_FD,
      readable: true,
      writable: false,
      onread: {
        buffer: chunk,
        callback: (bytes: number) => {
          if (length + bytes <= KEY_BYTES) key.set(chunk.subarray(0, bytes), length);
          length += bytes;
          chunk.fill(0);
          return true;
        },
      },
    };
    const pipe = new Socket(options);
    pipe.once('end', () => {
      pipe.destroy();
      if (length === KEY_BYTES) resolvePromise(key);
      else fail(`sent ${length} bytes instead of a ${KEY_BYTES}-byte key`);
    });
    pipe.once('error', (err) => fail(`key pipe failed: ${err.message}`));
    process.once('disconnect', () => {
      if (length < KEY_BYTES) fail('went away before handing over the key');
    });
    ready();
  });
}

/** The background server: gets the key from its launcher, mounts, reports, serves. */
async function serveCommand(cipherDirArg: string, mountpointArg: string, opts: MountCliOptions): Promise<void> {
  const log = quiet((line: string) => say(logLine(line)));
  const reply = (message: ServeReply) =>
    new Promise<void>((resolvePromise) => {
      if (!process.send || !process.connected) return resolvePromise();
      process.send(message, undefined, {}, () => resolvePromise());
    });
  try {
    if (!process.send) throw new CliError('--serve is internal to `sealfs mount`', EXIT.USAGE);
    const unprotected = protectKeyHolder();
    if (unprotected !== undefined) log(`warning: ${unprotected}`);
    // Held for as long as this process lives (the kernel lets go when it ends, however it
    // ends); taken before the key is sent, so that a refused mount never receives it.
    await holdVaultLock(resolve(cipherDirArg), (line) => log(`warning: ${line}`));
    const masterKey = await receiveKey(() => void reply({ type: 'ready' }));
    const vault = await openVault(resolve(cipherDirArg), masterKey, { backend: opts.backend, settings: mountSettings(opts.cacheTime) }).finally(() =>
      masterKey.fill(0),
    );
    let mounted: MountedVault;
    try {
      mounted = await mountVault({
        vault,
        mountpoint: mountpointArg,
        readOnly: opts.readOnly ?? false,
        noExec: opts.noexec ?? false,
        allowOther: opts.allowOther ?? false,
        othersMode: opts.othersMode,
        log,
        statusDirs: statusDirs(process.env), // the launcher's environment, passed on to this server
      });
    } catch (err) {
      lockVault(vault);
      throw err;
    }
    await writePidFile(opts.pidFile);
    await reply({ type: 'mounted', pid: process.pid });
    if (process.connected) process.disconnect();
    return await serveUntilClosed(mounted, vault, log, opts.pidFile);
  } catch (err) {
    const { line, code } = describeError(err);
    log(`could not mount: ${line}`);
    await reply({ type: 'error', line, code });
    throw new CliExit(code); // said in the log and to the launcher already
  }
}

async function unmountCommand(mountpoint: string): Promise<void> {
  const result = await unmountPath(mountpoint);
  const how = result.state === 'alive' ? '' : ` (its server had ${result.state === 'dead' ? 'ended' : 'stopped answering'}${result.aborted ? '; connection aborted' : ''})`;
  say(`Unmounted ${result.mountpoint}${how}.\n`);
}

/** `--cache-time`: seconds, fractions allowed (tests use 0.1). */
function parseCacheTime(text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || value > MAX_CACHE_SECONDS) {
    throw new InvalidArgumentError(`expected seconds from 0 to ${MAX_CACHE_SECONDS}, such as 1 or 0.1`);
  }
  return value;
}

/** `--others-mode`: a chmod-style octal mode such as 750 or 0 (digits only, at most 777). */
function parseOthersMode(text: string): number {
  if (!/^[0-7]{1,4}$/.test(text.trim()) || Number.parseInt(text, 8) > 0o777) {
    throw new InvalidArgumentError('expected an octal mode from 0 to 777, such as 750 (no setuid, setgid or sticky digit)');
  }
  return Number.parseInt(text, 8);
}

/** Registers `sealfs mount` and `sealfs unmount`. */
export function registerMountCommands(program: SealfsCommand, io: CliIo): void {
  addPassphraseOptions(
    program
      .command('mount')
      .summary('show a vault decrypted at a mount point')
      .documented({
        examples: ['sealfs mount ~/Dropbox/vault ~/Private', 'sealfs mount --read-only ~/Dropbox/vault ~/Private'],
        exits: ['IO', 'KEY', 'VAULT', 'MOUNT', 'IN_USE', 'INTERRUPTED'],
      })
      .description('show the vault in CIPHERDIR decrypted at MOUNTPOINT (an empty folder); runs in the background until `sealfs unmount`')
      .argument('<cipherdir>', 'the vault folder (ciphertext)')
      .argument('<mountpoint>', 'an empty folder where the plaintext appears')
      .option('-f, --foreground', 'stay in the foreground and log to stderr; Ctrl-C unmounts')
      .option('--read-only', 'mount read-only')
      .option('--noexec', 'programs in the mount cannot be run (the mount flag noexec)')
      .option('--allow-other', 'let other users use the mount (the kernel checks file permissions); needs root or user_allow_other in /etc/fuse.conf')
      .addOption(
        new Option('--others-mode <mode>', 'with --allow-other: the most other users may get, as an octal mode such as 750 (default 0: nothing); modes in the vault folder only narrow it')
          .argParser(parseOthersMode),
      )
      .option('--pid-file <file>', 'write the pid of the serving process to FILE')
      .option('--log-file <file>', 'log of the background server (default: $XDG_STATE_HOME/sealfs/VAULTID.log, else ~/.local/state/sealfs/VAULTID.log)')
      .addOption(new Option('--backend <name>', 'crypto backend (default: $SEALFS_BACKEND, else native, else node)').choices(BACKEND_NAMES))
      .addOption(
        new Option('--cache-time <seconds>', `expert: how long attributes, names, listings and gathered writes are cached (default ${DEFAULT_CACHE_SECONDS})`)
          .argParser(parseCacheTime),
      )
      .addOption(new Option('--serve', 'internal: run as the background server').hideHelp()),
  ).action((cipherDir: string, mountpoint: string, opts: MountCliOptions) => mountCommand(cipherDir, mountpoint, opts, io));

  program
    .command('unmount')
    .alias('umount')
    .summary('unmount a sealfs mount (also: umount)')
    .documented({ examples: ['sealfs unmount ~/Private'], exits: ['IO', 'MOUNT'] })
    .description('unmount a sealfs mount; also clears one whose server was killed ("Transport endpoint is not connected")')
    .argument('<mountpoint>', 'where the vault is mounted')
    .action((mountpoint: string) => unmountCommand(mountpoint));
}
