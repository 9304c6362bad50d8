/**
 * The command line mount(8) gives a mount helper, turned into the `sealfs mount` command line
 * that does the work (src/cli/mount.ts): the helper translates, it never mounts by itself.
 *
 * util-linux mount(8) runs `/sbin/mount.fuse.sealfs SOURCE MOUNTPOINT [-sfnv] [-N NS]
 * [-o OPTIONS] [-t fuse.sealfs]` for `mount -t fuse.sealfs …` and for fstab lines of type
 * fuse.sealfs. It has already removed what only it reads (noauto, x-systemd.*, other x-*),
 * and passes on the rest: the generic flags (rw, nodev, nosuid, noexec, user, _netdev…),
 * of which sealfs applies ro and noexec (its mounts are always nosuid and nodev), and
 * sealfs's own options.
 */
import { realpathSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option } from 'commander';
import type { SealfsCommand } from './help.js';
import { CliError, EXIT } from './exit.js';
import type { CliIo } from './io.js';

/** Values of these options are passed as `--NAME VALUE` to `sealfs mount`. */
const VALUE_OPTIONS: ReadonlySet<string> = new Set(['passphrase-file', 'extpass', 'keystore', 'others-mode', 'log-file', 'pid-file', 'backend', 'cache-time']);

/**
 * Options that mount(8), the kernel's generic mount flags or systemd read, not sealfs. sealfs
 * mounts are always nosuid and nodev (libfuse's default), whatever suid/dev say.
 */
const IGNORED: ReadonlySet<string> = new Set([
  'defaults', 'auto', 'noauto', 'user', 'users', 'nouser', 'owner', 'group', '_netdev', 'nofail',
  'dev', 'nodev', 'suid', 'nosuid',
  'atime', 'noatime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'lazytime', 'nolazytime',
  'diratime', 'nodiratime', 'iversion', 'noiversion', 'mand', 'nomand', 'sync', 'async', 'dirsync', 'silent', 'loud',
]);

/** Options with a value that mount(8) or systemd read (`user=NAME` is util-linux's record of who mounted). */
const IGNORED_PREFIXES: readonly string[] = ['x-', 'comment=', 'user='];

export interface HelperCommand {
  /** The `sealfs` command line, or undefined for `-f` (mount(8)'s "fake": do everything but mount). */
  readonly argv: readonly string[] | undefined;
  /** Things to tell the user that do not stop the mount. */
  readonly warnings: readonly string[];
}

/** Splits an -o list at commas outside double quotes (mount(8) allows `extpass="a,b"`); quotes are removed. */
export function splitOptions(list: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of list) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  if (quoted) throw new CliError(`unbalanced double quote in the mount options ${JSON.stringify(list)}`, EXIT.USAGE);
  out.push(current);
  return out.filter((option) => option !== '');
}

/** `-o` options to `sealfs mount` flags; `sloppy` (-s) turns unknown options into warnings. */
function translateOptions(options: readonly string[], sloppy: boolean, warnings: string[]): string[] {
  const flags: string[] = [];
  let readOnly = false;
  let noExec = false;
  for (const option of options) {
    const eq = option.indexOf('=');
    const rawName = eq < 0 ? option : option.slice(0, eq);
    // allow_other is FUSE's spelling; passphrase_file is accepted alike.
    const name = rawName.startsWith('_') ? rawName : rawName.replace(/_/g, '-');
    if (IGNORED.has(option) || IGNORED_PREFIXES.some((prefix) => option.startsWith(prefix))) continue;
    if (option === 'ro' || option === 'rw') readOnly = option === 'ro';
    else if (option === 'noexec' || option === 'exec') noExec = option === 'noexec';
    else if (name === 'allow-other' && eq < 0) flags.push('--allow-other');
    else if (VALUE_OPTIONS.has(name)) {
      if (eq < 0 || eq === option.length - 1) throw new CliError(`mount option ${name} needs a value (${name}=…)`, EXIT.USAGE);
      flags.push(`--${name}`, option.slice(eq + 1));
    } else if (sloppy) {
      warnings.push(`ignoring the unknown mount option ${JSON.stringify(option)}`);
    } else {
      throw new CliError(
        `unknown mount option ${JSON.stringify(option)}; sealfs takes ro, rw, allow_other and ${[...VALUE_OPTIONS].map((o) => `${o}=…`).join(', ')}`,
        EXIT.USAGE,
      );
    }
  }
  return [...(readOnly ? ['--read-only'] : []), ...(noExec ? ['--noexec'] : []), ...flags];
}

/** The helper's arguments (argv after the program name) as the `sealfs mount` command line. */
export function helperCommand(args: readonly string[]): HelperCommand {
  const positional: string[] = [];
  const lists: string[] = [];
  let fake = false;
  let sloppy = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = (what: string) => {
      const next = args[++i];
      if (next === undefined) throw new CliError(`${arg} needs ${what}`, EXIT.USAGE);
      return next;
    };
    if (arg === '-o') lists.push(value('a list of options'));
    else if (arg.startsWith('-o')) lists.push(arg.slice(2));
    else if (arg === '-t') {
      const type = value('a file system type');
      if (type !== 'fuse.sealfs' && type !== 'sealfs') throw new CliError(`this helper mounts fuse.sealfs, not ${type}`, EXIT.USAGE);
    } else if (arg === '-N') throw new CliError('mounting in another mount namespace (-N) is not supported', EXIT.USAGE);
    else if (/^-[sfnvrw]+$/.test(arg)) {
      fake ||= arg.includes('f');
      sloppy ||= arg.includes('s');
      // -r/-w: an old mount(8)'s way of saying ro/rw.
      if (arg.includes('r')) lists.push('ro');
      if (arg.includes('w')) lists.push('rw');
    } else if (arg.startsWith('-') && arg !== '-') throw new CliError(`unknown argument ${arg}`, EXIT.USAGE);
    else positional.push(arg);
  }
  if (positional.length !== 2) {
    throw new CliError('usage: mount.fuse.sealfs CIPHERDIR MOUNTPOINT [-o passphrase-file=FILE,…] (run by mount -t fuse.sealfs)', EXIT.USAGE);
  }
  const warnings: string[] = [];
  const flags = translateOptions(lists.flatMap(splitOptions), sloppy, warnings);
  return { argv: fake ? undefined : ['mount', positional[0]!, positional[1]!, ...flags], warnings };
}

/** Where util-linux mount(8) looks for helpers (it searches /sbin, /sbin/fs.d and /sbin/fs only). */
export const HELPER_DIR = '/sbin';
export const HELPER_NAME = 'mount.fuse.sealfs';
/** Second line of the helper script this command writes: it only ever replaces or removes those. */
const HELPER_MARKER = '# Written by `sealfs mount-helper install`: mount(8) runs it for fuse.sealfs mounts.';

/** The helper script: the installed node and mounthelper.js by their real paths (mount(8)'s PATH may not have node). */
export function helperScript(node: string, helper: string): string {
  const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh\n${HELPER_MARKER}\nexec ${quote(node)} ${quote(helper)} "$@"\n`;
}

/** An access to the helper folder that the system refused, said in words (it needs root). */
function notAllowed(err: unknown, path: string, verb: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return err;
  return new CliError(`${path}: not allowed to change it; run as root: sudo sealfs mount-helper ${verb}`, EXIT.IO);
}

/** Whether the helper at `path` is one this command wrote (undefined: there is none). */
async function ourHelper(path: string, verb: string): Promise<boolean | undefined> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw notAllowed(err, path, verb);
  });
  return text === undefined ? undefined : text.split('\n')[1] === HELPER_MARKER;
}

async function installHelper(opts: { dir: string }, io: CliIo): Promise<void> {
  const path = join(resolve(opts.dir), HELPER_NAME);
  if ((await ourHelper(path, 'install')) === false) throw new CliError(`${path} exists and was not written by sealfs; remove it first`, EXIT.IO);
  const helper = realpathSync(fileURLToPath(new URL('./mounthelper.js', import.meta.url)));
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temp, helperScript(realpathSync(process.execPath), helper), { mode: 0o755 });
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw notAllowed(err, path, 'install');
  }
  io.stderr.write(`Wrote ${path}; \`mount -t fuse.sealfs CIPHERDIR MOUNTPOINT -o passphrase-file=FILE\` and fstab lines of type fuse.sealfs now work.\n`);
}

async function uninstallHelper(opts: { dir: string }, io: CliIo): Promise<void> {
  const path = join(resolve(opts.dir), HELPER_NAME);
  const ours = await ourHelper(path, 'uninstall');
  if (ours === undefined) throw new CliError(`${path} does not exist`, EXIT.IO);
  if (!ours) throw new CliError(`${path} was not written by sealfs; leaving it alone`, EXIT.IO);
  await rm(path).catch((err: unknown) => {
    throw notAllowed(err, path, 'uninstall');
  });
  io.stderr.write(`Removed ${path}.\n`);
}

/** Registers `sealfs mount-helper install|uninstall`. */
export function registerMountHelperCommands(program: SealfsCommand, io: CliIo): void {
  const group = program.command('mount-helper').summary('install the mount(8) helper for fstab lines').description(`install ${HELPER_DIR}/${HELPER_NAME}, which mount(8) runs for mount -t fuse.sealfs and fstab lines (as root)`);
  const dirOption = () => new Option('--dir <dir>', 'where mount(8) looks for helpers').default(HELPER_DIR);
  group
    .command('install')
    .summary('install the helper (as root)')
    .documented({ examples: ['sudo sealfs mount-helper install'], exits: ['IO'] })
    .description(`write ${HELPER_DIR}/${HELPER_NAME}, running this sealfs (again after moving or reinstalling it elsewhere)`)
    .addOption(dirOption())
    .action((opts: { dir: string }) => installHelper(opts, io));
  group
    .command('uninstall')
    .summary('remove the helper (as root)')
    .documented({ examples: ['sudo sealfs mount-helper uninstall'], exits: ['IO'] })
    .description(`remove ${HELPER_DIR}/${HELPER_NAME}`)
    .addOption(dirOption())
    .action((opts: { dir: string }) => uninstallHelper(opts, io));
}
