import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { PlainFs, PlainStat } from '../vault/plainfs.js';
import { joinPlain } from '../vault/tree.js';

/** Bytes read per call when copying plaintext out of a vault. */
const COPY_BYTES = 1024 * 1024;

export interface ListedEntry {
  readonly name: string;
  readonly type: 'file' | 'dir' | 'symlink' | 'other';
  readonly size: number;
  readonly mode: number;
  readonly mtime: Date;
  readonly target?: string;
}

function typeOf(st: PlainStat): ListedEntry['type'] {
  const type = st.mode & constants.S_IFMT;
  return type === constants.S_IFDIR ? 'dir' : type === constants.S_IFLNK ? 'symlink' : type === constants.S_IFREG ? 'file' : 'other';
}

/** Lists a vault directory straight from the cipher directory, without FUSE. */
export async function listDirectory(fs: PlainFs, plainPath: string): Promise<ListedEntry[]> {
  const names = (await fs.readdir(plainPath)).sort();
  const entries: ListedEntry[] = [];
  for (const name of names) {
    const path = joinPlain(plainPath, name);
    const st = await fs.getattr(path);
    const type = typeOf(st);
    const target = type === 'symlink' ? await fs.readlink(path).catch(() => undefined) : undefined;
    entries.push({ name, type, size: st.size, mode: st.mode & 0o7777, mtime: st.mtime, ...(target !== undefined ? { target } : {}) });
  }
  return entries;
}

/** Streams a file's plaintext to `out`; stops at the first chunk that fails authentication. */
export async function catFile(fs: PlainFs, plainPath: string, out: Writable): Promise<void> {
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
}

/**
 * Copies a file or a whole tree out of the vault into `dest` (which must not exist),
 * keeping modes, modification times and symlinks. Any failure stops the export with
 * the failing path: nothing is silently skipped.
 */
export async function exportTree(fs: PlainFs, plainPath: string, dest: string): Promise<ExportSummary> {
  const summary: ExportSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  const exists = await lstat(dest).then(() => true, () => false);
  if (exists) throw Object.assign(new Error(`${dest}: already exists`), { code: 'EEXIST', path: dest });
  await copyEntry(fs, plainPath, dest, summary);
  return summary;
}

async function copyEntry(fs: PlainFs, plainPath: string, dest: string, summary: ExportSummary): Promise<void> {
  const st = await fs.getattr(plainPath);
  const type = typeOf(st);
  if (type === 'dir') {
    await mkdir(dest, { mode: 0o700 });
    for (const name of await fs.readdir(plainPath)) await copyEntry(fs, joinPlain(plainPath, name), join(dest, name), summary);
    await chmod(dest, st.mode & 0o7777);
    summary.dirs++;
  } else if (type === 'symlink') {
    await symlink(await fs.readlink(plainPath), dest);
    summary.symlinks++;
    return;
  } else if (type === 'file') {
    summary.bytes += await copyFile(fs, plainPath, dest, st.mode & 0o7777);
    summary.files++;
  } else {
    throw new Error(`${plainPath}: cannot export a special file`);
  }
  await utimes(dest, st.atime, st.mtime);
}

async function copyFile(fs: PlainFs, plainPath: string, dest: string, mode: number): Promise<number> {
  const out = await open(dest, 'wx', 0o600);
  const fh = await fs.open(plainPath, constants.O_RDONLY);
  let position = 0;
  try {
    for (;;) {
      const data = await fs.read(fh, position, COPY_BYTES);
      if (data.length === 0) break;
      await out.write(data, 0, data.length, position);
      position += data.length;
    }
    await out.chmod(mode);
  } finally {
    await fs.release(fh);
    await out.close();
  }
  return position;
}
