import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, rename, rm, symlink, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { IntegrityFailure } from '../vault/errors.js';
import type { PlainFs, PlainStat } from '../vault/plainfs.js';
import { joinPlain } from '../vault/tree.js';
import { ToolError } from './errors.js';

/** Bytes read per call when copying plaintext out of a vault. */
const COPY_BYTES = 1024 * 1024;

export interface ListedEntry {
  readonly name: string;
  /** 'fifo', 'socket', 'char', 'block': a special file as the vault stores it (FORMAT.md §14). */
  readonly type: 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char' | 'block' | 'other';
  readonly size: number;
  /** A device's number (char and block only). */
  readonly rdev?: number;
  readonly mode: number;
  readonly mtime: Date;
  readonly target?: string;
}

const TYPES: ReadonlyMap<number, ListedEntry['type']> = new Map([
  [constants.S_IFDIR, 'dir'],
  [constants.S_IFLNK, 'symlink'],
  [constants.S_IFREG, 'file'],
  [constants.S_IFIFO, 'fifo'],
  [constants.S_IFSOCK, 'socket'],
  [constants.S_IFCHR, 'char'],
  [constants.S_IFBLK, 'block'],
]);

function typeOf(st: PlainStat): ListedEntry['type'] {
  return TYPES.get(st.mode & constants.S_IFMT) ?? 'other';
}

/** A FIFO, socket or device: the vault stores what it is, never contents. */
const isSpecial = (type: ListedEntry['type']) => type === 'fifo' || type === 'socket' || type === 'char' || type === 'block';

/** Lists a vault directory straight from the cipher directory, without FUSE. */
export async function listDirectory(fs: PlainFs, plainPath: string): Promise<ListedEntry[]> {
  const names = (await fs.readdir(plainPath)).sort();
  const entries: ListedEntry[] = [];
  for (const name of names) {
    const path = joinPlain(plainPath, name);
    const st = await fs.getattr(path);
    const type = typeOf(st);
    const target = type === 'symlink' ? await fs.readlink(path).catch(() => undefined) : undefined;
    const rdev = type === 'char' || type === 'block' ? { rdev: st.rdev ?? 0 } : {};
    entries.push({ name, type, size: st.size, mode: st.mode & 0o7777, mtime: st.mtime, ...rdev, ...(target !== undefined ? { target } : {}) });
  }
  return entries;
}

/** Bits of a mode an exported entry keeps: never setuid, setgid or sticky bits, which the provider sets at will. */
const EXPORTED_MODE_BITS = 0o777;

/** Where a file is written until it is complete: beside its destination, hidden, never taken for it. */
export function partialPath(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.sealfs-partial-${process.pid}`);
}

/** An entry of a type no vault stores (PlainFs never shows one: a planted FIFO shows as an empty file). */
function unknownType(plainPath: string, st: PlainStat): ToolError {
  return new ToolError('integrity', `${plainPath}: an entry of unknown type 0${(st.mode & constants.S_IFMT).toString(8)}`);
}

/** A special file has no contents: `cat` says what it is. */
function noContents(plainPath: string, st: PlainStat): ToolError {
  return new ToolError('target', `${plainPath} is a ${SPECIAL_KINDS.get(st.mode & constants.S_IFMT)}: it has no contents to print`);
}

const SPECIAL_KINDS: ReadonlyMap<number, string> = new Map([
  [constants.S_IFIFO, 'FIFO'],
  [constants.S_IFSOCK, 'socket'],
  [constants.S_IFCHR, 'character device'],
  [constants.S_IFBLK, 'block device'],
]);

/**
 * Streams a file's plaintext to `out`, each piece only once its chunks verified; the file's
 * final chunk verifies before anything is written (PlainFs.open). Stops at the first chunk
 * that fails authentication (an IntegrityFailure naming the path and chunk).
 */
export async function catFile(fs: PlainFs, plainPath: string, out: Writable): Promise<void> {
  const st = await fs.getattr(plainPath);
  if (isSpecial(typeOf(st))) throw noContents(plainPath, st);
  if (typeOf(st) === 'other') throw unknownType(plainPath, st);
  const fh = await fs.open(plainPath, constants.O_RDONLY);
  try {
    for (let position = 0; ; ) {
      const data = await fs.read(fh, position, COPY_BYTES);
      if (data.length === 0) break;
      position += data.length;
      if (!out.write(data)) await new Promise((resolve) => out.once('drain', resolve));
    }
  } finally {
    await fs.release(fh);
  }
}

export interface ExportSummary {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** FIFOs, made again with mkfifo. */
  fifos: number;
  /** Sockets and devices, which are not made again (each told to `onSkipped`). */
  skipped: number;
  /** Entries not exported because they failed authentication. */
  failed: number;
}

interface ExportRun {
  readonly fs: PlainFs;
  readonly summary: ExportSummary;
  readonly onFailure: (failure: ToolError) => void;
  readonly onSkipped: (line: string) => void;
}

/**
 * Copies a file or a whole tree out of the vault into `dest` (which must not exist), keeping
 * permission bits (never setuid, setgid or sticky), modification times and symlinks. An entry
 * FIFO is made again (mkfifo); a socket or device is not (a socket is made by the program
 * that listens on it, a device only by root), and `onSkipped` gets one line for each. An entry
 * that fails authentication is reported to `onFailure` (one ToolError
 * of kind 'integrity' naming its path, and the chunk) and left out; the export goes on with
 * the others. A file appears under its name only once all of it verified: it is written to
 * partialPath() and renamed into place, and the partial file is removed on failure. Any other
 * failure (the destination's disk, a missing entry) stops the export with the failing path.
 */
export async function exportTree(
  fs: PlainFs,
  plainPath: string,
  dest: string,
  onFailure: (failure: ToolError) => void = () => {},
  onSkipped: (line: string) => void = () => {},
): Promise<ExportSummary> {
  const summary: ExportSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0, fifos: 0, skipped: 0, failed: 0 };
  await refuseExisting(dest);
  await copyEntry({ fs, summary, onFailure, onSkipped }, plainPath, dest);
  return summary;
}

async function refuseExisting(dest: string): Promise<void> {
  const exists = await lstat(dest).then(() => true, () => false);
  if (exists) throw new ToolError('target', `${dest}: already exists (refusing to overwrite)`);
}

async function copyEntry(run: ExportRun, plainPath: string, dest: string): Promise<void> {
  const { fs, summary } = run;
  try {
    const st = await fs.getattr(plainPath);
    const type = typeOf(st);
    if (type === 'dir') {
      await mkdir(dest, { mode: 0o700 });
      for (const name of await fs.readdir(plainPath)) await copyEntry(run, joinPlain(plainPath, name), join(dest, name));
      await chmod(dest, st.mode & EXPORTED_MODE_BITS);
      await utimes(dest, st.atime, st.mtime);
      summary.dirs++;
    } else if (type === 'symlink') {
      await symlink(await fs.readlink(plainPath), dest);
      summary.symlinks++;
    } else if (type === 'file') {
      summary.bytes += await copyFile(fs, plainPath, dest, st);
      summary.files++;
    } else if (type === 'fifo') {
      await mkfifo(dest, st.mode & EXPORTED_MODE_BITS);
      await utimes(dest, st.atime, st.mtime);
      summary.fifos++;
    } else if (isSpecial(type)) {
      summary.skipped++;
      const what = SPECIAL_KINDS.get(st.mode & constants.S_IFMT)!;
      run.onSkipped(`${plainPath}: a ${what}, not exported (${type === 'socket' ? 'a socket is made by the program that listens on it' : 'sealfs does not make device files'})`);
    } else {
      throw unknownType(plainPath, st);
    }
  } catch (err) {
    const failure = err instanceof IntegrityFailure ? new ToolError('integrity', err.message) : err;
    if (!(failure instanceof ToolError && failure.kind === 'integrity')) throw err;
    summary.failed++;
    run.onFailure(new ToolError('integrity', `${failure.message}: not exported`));
  }
}

/** mkfifo(1): Node has no call that makes a FIFO. */
function mkfifo(dest: string, mode: number): Promise<void> {
  return new Promise((done, fail) =>
    execFile('mkfifo', ['-m', mode.toString(8), '--', dest], (err, _out, stderr) => (err ? fail(new Error(`mkfifo ${dest}: ${stderr.trim() || err.message}`)) : done())),
  );
}

/** Copies one file's plaintext to partialPath(dest), then renames it to `dest` once all of it verified. */
async function copyFile(fs: PlainFs, plainPath: string, dest: string, st: PlainStat): Promise<number> {
  const fh = await fs.open(plainPath, constants.O_RDONLY);
  const temp = partialPath(dest);
  let out: FileHandle | undefined;
  let position = 0;
  try {
    out = await open(temp, 'wx', 0o600);
    for (;;) {
      const data = await fs.read(fh, position, COPY_BYTES);
      if (data.length === 0) break;
      await out.write(data, 0, data.length, position);
      position += data.length;
    }
    await out.chmod(st.mode & EXPORTED_MODE_BITS);
    await out.utimes(st.atime, st.mtime);
    await out.close();
    out = undefined;
    await refuseExisting(dest);
    await rename(temp, dest);
  } catch (err) {
    await out?.close();
    await rm(temp, { force: true });
    throw err;
  } finally {
    await fs.release(fh);
  }
  return position;
}
