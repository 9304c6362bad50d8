/**
 * Where a passphrase comes from: a file, an external command, or the terminal (never
 * echoed; a recovery key, copied from paper, is shown as typed). Never from the command
 * line, where every user of the machine can read it (/proc/<pid>/cmdline, `ps`), and never
 * logged.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isatty, ReadStream } from 'node:tty';
import type { Readable } from 'node:stream';
import { Option, type Command } from 'commander';
import { defaultKeystoreDir } from '../vault/keystore.js';
import { PROMPT_ATTEMPTS, type PassphraseAsker } from '../vault/unlock.js';
import { describeFsError } from '../fs/errors.js';
import { CliError, EXIT } from './exit.js';
import type { CliIo, Terminal } from './io.js';

export interface PassphraseOptions {
  /** Read the passphrase from the first line of this file. */
  readonly passphraseFile?: string;
  /** Run this command through /bin/sh and take the first line it prints. */
  readonly extpass?: string;
}

export interface ObtainOptions extends PassphraseOptions {
  /** What is asked for, as in "Enter <purpose>: ", e.g. "passphrase for ~/Dropbox/vault". */
  readonly purpose: string;
  /** A new passphrase: asked twice at a prompt, and warned about when weak (weakPassphrase). */
  readonly confirm?: boolean;
}

/** A new passphrase shorter than this (in characters, after NFC) gets a warning. */
const MIN_PASSPHRASE_LENGTH = 12;
/** …and one made of fewer different characters than this ("aaaaaaaaaaaa", "abababababab"). */
const MIN_DISTINCT_CHARACTERS = 6;

/**
 * Why a new passphrase is weak, or undefined. A simple rule rather than a strength estimator:
 * the README's dependency table says why. It only warns: scrypt (docs/FORMAT.md §12) makes
 * each guess cost, but a short or repetitive passphrase falls to few guesses all the same.
 */
function weakPassphrase(passphrase: string): string | undefined {
  const chars = [...passphrase.normalize('NFC')];
  if (chars.length < MIN_PASSPHRASE_LENGTH) return `it is shorter than ${MIN_PASSPHRASE_LENGTH} characters`;
  if (new Set(chars).size < MIN_DISTINCT_CHARACTERS) return `it is made of fewer than ${MIN_DISTINCT_CHARACTERS} different characters`;
  return undefined;
}

function warnIfWeak(passphrase: string, fromPrompt: boolean, io: CliIo): void {
  const why = weakPassphrase(passphrase);
  if (why === undefined) return;
  const line = `sealfs: warning: weak passphrase: ${why}; anyone who gets the key store can guess it (several unrelated words make a strong one)\n`;
  if (fromPrompt) tellTerminal(line, io);
  else io.stderr.write(line);
}

/** The options every command that needs the vault key takes, so they all read alike. */
export interface VaultKeyOptions extends PassphraseOptions {
  /** Key store folder (default: defaultKeystoreDir()). */
  readonly keystore?: string;
}

/** Adds --passphrase-file, --extpass and --keystore to a command. */
export function addPassphraseOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--passphrase-file <file>', 'read the passphrase from the first line of FILE (instead of a prompt)').conflicts('extpass'),
    )
    .addOption(new Option('--extpass <cmd>', 'run CMD (through /bin/sh) and use the first line it prints as the passphrase'))
    .addOption(new Option('--keystore <dir>', 'key store folder, outside the vault (default: $XDG_CONFIG_HOME/sealfs, else ~/.config/sealfs)'));
}

/** The key store folder of a command: --keystore, else the default for its environment. */
export function keystoreOf(options: VaultKeyOptions, io: CliIo): string {
  return options.keystore ?? defaultKeystoreDir(io.env);
}

/**
 * Obtains a passphrase from --passphrase-file, --extpass, or the terminal, in that order; a
 * new one (confirm) that is weak gets a warning on the terminal it was typed at, else on stderr.
 */
export async function obtainPassphrase(options: ObtainOptions, io: CliIo): Promise<string> {
  if (options.passphraseFile !== undefined && options.extpass !== undefined) {
    throw new CliError('use either --passphrase-file or --extpass, not both', EXIT.USAGE);
  }
  const fromPrompt = options.passphraseFile === undefined && options.extpass === undefined;
  const passphrase =
    options.passphraseFile !== undefined
      ? await fromFile(options.passphraseFile, io)
      : options.extpass !== undefined
        ? await fromCommand(options.extpass, io.env)
        : await fromTerminal(options.purpose, options.confirm ?? false, io);
  if (options.confirm) warnIfWeak(passphrase, fromPrompt, io);
  return passphrase;
}

/** The passphrase of a vault to unlock, as the vault layer asks for it (with retries at a prompt). */
export function passphraseAsker(options: PassphraseOptions, purpose: string, io: CliIo): PassphraseAsker {
  return {
    ask: () => obtainPassphrase({ ...options, purpose }, io),
    interactive: options.passphraseFile === undefined && options.extpass === undefined,
    onWrong: () => tellTerminal('Wrong passphrase, try again.\n', io),
  };
}

function firstLine(text: string): string {
  const line = text.replace(/^\uFEFF/, '').split('\n', 1)[0] ?? '';
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** All of a stream, as text. */
async function readAll(stream: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(parts).toString('utf8');
}

async function fromFile(path: string, io: CliIo): Promise<string> {
  // /dev/stdin is read from the stream itself: opening it fails (ENXIO) when stdin is a
  // socket, which is what a program started by Node (child_process) gets for a pipe.
  const read = path === '/dev/stdin' ? readAll(io.stdin) : readFile(path, 'utf8');
  const text = await read.catch((err: unknown) => {
    throw new CliError(`passphrase file ${describeFsError(err) ?? `${path}: ${(err as Error).message}`}`, EXIT.IO);
  });
  const passphrase = firstLine(text);
  // Like an --extpass command that printed nothing: the passphrase could not be had (exit 5).
  if (passphrase === '') throw new CliError(`passphrase file ${path}: empty passphrase (the first line of the file is empty)`, EXIT.KEY);
  return passphrase;
}

/** Output beyond this is not a passphrase; stop collecting. */
const MAX_EXTPASS_OUTPUT = 64 * 1024;

function fromCommand(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    // stdin and stderr are the user's, so an interactive helper can ask and explain.
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['inherit', 'pipe', 'inherit'], env });
    const parts: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      if (size < MAX_EXTPASS_OUTPUT) parts.push(chunk);
      size += chunk.length;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
        reject(new CliError(`--extpass command ${how}; no passphrase`, EXIT.KEY));
        return;
      }
      const passphrase = firstLine(Buffer.concat(parts).toString('utf8'));
      if (passphrase === '') reject(new CliError('--extpass command printed an empty passphrase (its first line of output is empty); no passphrase', EXIT.KEY));
      else resolvePromise(passphrase);
    });
  });
}

/** Without a terminal nothing can be asked: how to give the passphrase instead, a pipe included (`echo … | sealfs …`). */
const NO_TERMINAL =
  'no passphrase: there is no terminal to ask at; use --passphrase-file FILE (--passphrase-file /dev/stdin reads it from a pipe) or --extpass CMD';

async function fromTerminal(purpose: string, confirm: boolean, io: CliIo): Promise<string> {
  const terminal = io.openTerminal();
  if (!terminal) throw new CliError(NO_TERMINAL, EXIT.USAGE);
  try {
    for (let attempt = 1; attempt <= PROMPT_ATTEMPTS; attempt++) {
      const first = await readLine(terminal, `Enter ${purpose}: `);
      if (first === '') {
        terminal.write('The passphrase must not be empty.\n');
        continue;
      }
      if (!confirm) return first;
      const second = await readLine(terminal, `Repeat ${purpose}: `);
      if (first === second) return first;
      terminal.write('The two entries differ; please try again.\n');
    }
    throw new CliError(`no passphrase after ${PROMPT_ATTEMPTS} attempts`, EXIT.USAGE);
  } finally {
    terminal.close();
  }
}

/**
 * Reads a recovery key at the terminal, shown as typed (it is copied from paper, where a
 * hidden entry only causes mistakes) in the groups it is printed in: `format` regroups the
 * typed characters (dashes and spaces typed or pasted are dropped, the grouping puts them
 * back). Undefined when there is no terminal.
 */
export async function promptRecoveryKey(prompt: string, format: (typed: string) => string, io: CliIo): Promise<string | undefined> {
  const terminal = io.openTerminal();
  if (!terminal) return undefined;
  try {
    return await readLine(terminal, prompt, { show: (chars) => format(chars.join('').toUpperCase()), skip: /[\s-]/ });
  } finally {
    terminal.close();
  }
}

/** Writes a line to the terminal the prompts use (stderr if there is none). */
export function tellTerminal(text: string, io: CliIo): void {
  const terminal = io.openTerminal();
  if (!terminal) {
    io.stderr.write(text);
    return;
  }
  terminal.write(text);
  terminal.close();
}

/** The process's controlling terminal (/dev/tty), else stdin/stderr when stdin is a terminal. */
export function openProcessTerminal(): Terminal | undefined {
  let readFd: number | undefined;
  let writeFd: number | undefined;
  try {
    readFd = openSync('/dev/tty', 'r');
    writeFd = openSync('/dev/tty', 'w');
    if (!isatty(readFd)) throw new Error('not a terminal');
    const input = new ReadStream(readFd);
    const fd = writeFd;
    return {
      input,
      write: (text) => void writeSync(fd, text),
      close: () => {
        input.destroy();
        closeSync(fd);
      },
    };
  } catch {
    if (writeFd !== undefined) closeSync(writeFd);
    if (readFd !== undefined) closeSync(readFd);
  }
  if (process.stdin.isTTY) {
    return {
      input: process.stdin as ReadStream,
      write: (text) => void process.stderr.write(text),
      close: () => void process.stdin.pause(),
    };
  }
  return undefined;
}

/** How a line is shown while typed: `show` renders the characters kept so far; characters matching `skip` are not kept. */
interface Echo {
  readonly show: (chars: readonly string[]) => string;
  readonly skip?: RegExp;
}

/**
 * Reads a line in raw mode: echoing nothing, or (with `echo`) what `echo.show` makes of it,
 * redrawn after each key. Backspace and Ctrl-U edit; Ctrl-C and Ctrl-D cancel (exit 130).
 * The terminal's mode is restored however the prompt ends (Enter, Ctrl-C, or the process exiting).
 */
function readLine(terminal: Terminal, prompt: string, echo?: Echo): Promise<string> {
  const { input } = terminal;
  terminal.write(prompt);
  return new Promise((resolvePromise, reject) => {
    let chars: string[] = [];
    let shown = '';
    // Skip escape sequences (arrow keys and the like): ESC, then '[' or 'O', up to a final byte.
    let escape: 'none' | 'start' | 'body' = 'none';
    const restoreOnExit = () => input.setRawMode(false);
    const finish = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.off('exit', restoreOnExit);
      terminal.write('\n');
    };
    /** Redraws what changed: back over the old text from the first differing character, then the new text. */
    const redraw = () => {
      if (!echo) return;
      const next = echo.show(chars);
      let same = 0;
      while (same < shown.length && same < next.length && shown[same] === next[same]) same++;
      terminal.write(`${'\b'.repeat([...shown.slice(same)].length)}${next.slice(same)}\x1b[K`);
      shown = next;
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (escape === 'start') {
          escape = ch === '[' || ch === 'O' ? 'body' : 'none';
          continue;
        }
        if (escape === 'body') {
          if (ch >= '@' && ch <= '~') escape = 'none';
          continue;
        }
        switch (ch) {
          case '\r':
          case '\n': {
            redraw(); // what came in the same chunk (a paste ending in Enter) is shown too
            finish();
            const value = chars.join('');
            chars = [];
            resolvePromise(value);
            return;
          }
          case '\u0003': // Ctrl-C
          case '\u0004': // Ctrl-D
            finish();
            chars = [];
            reject(new CliError('cancelled', EXIT.INTERRUPTED));
            return;
          case '\u007f':
          case '\b':
            chars.pop();
            break;
          case '\u0015': // Ctrl-U
            chars = [];
            break;
          case '\u001b':
            escape = 'start';
            break;
          default:
            if (ch >= ' ' && !echo?.skip?.test(ch)) chars.push(ch);
        }
      }
      redraw();
    };
    process.on('exit', restoreOnExit);
    input.setRawMode(true);
    input.setEncoding('utf8');
    input.on('data', onData);
    input.resume();
  });
}
