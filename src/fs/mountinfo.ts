/**
 * Reading /proc/self/mountinfo: which mounts exist, of what type, from which source, and
 * the FUSE connection number of each. Only asynchronous reads (this runs inside the
 * process that serves a mount).
 */
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

export interface MountEntry {
  /** Mount point, unescaped. */
  readonly mountpoint: string;
  /** "major:minor" of the mounted device; for FUSE the minor is the connection number. */
  readonly device: string;
  /** e.g. "fuse.sealfs", "fuse", "ext4". */
  readonly fstype: string;
  /** e.g. "sealfs:/home/me/Dropbox/vault". */
  readonly source: string;
  /** Options of this mount, e.g. ["ro", "nosuid", "relatime"]. */
  readonly options: readonly string[];
  /** Options of the file system, e.g. ["rw", "user_id=1000", "group_id=1000"] for FUSE. */
  readonly superOptions: readonly string[];
}

/** mountinfo escapes space, tab, newline and backslash as \040, \011, \012, \134. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 0 || fields.length < separator + 3) continue;
    entries.push({
      device: fields[2]!,
      mountpoint: unescape(fields[4]!),
      fstype: fields[separator + 1]!,
      source: unescape(fields[separator + 2]!),
      options: (fields[5] ?? '').split(','),
      superOptions: (fields[separator + 3] ?? '').split(','),
    });
  }
  return entries;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The topmost mount at exactly `mountpoint` (already canonical), if any. */
export async function mountAt(mountpoint: string): Promise<MountEntry | undefined> {
  const mounts = await readMounts();
  for (let i = mounts.length - 1; i >= 0; i--) if (mounts[i]!.mountpoint === mountpoint) return mounts[i];
  return undefined;
}

export function isFuse(entry: MountEntry): boolean {
  return entry.fstype === 'fuse' || entry.fstype.startsWith('fuse.') || entry.fstype === 'fuseblk' || entry.fstype.startsWith('fuseblk.');
}

export function isSealfs(entry: MountEntry): boolean {
  return entry.fstype === 'fuse.sealfs' || entry.source.startsWith('sealfs:');
}

/**
 * The source ("fsname") a sealfs mount of `cipherDir` shows in mountinfo: its path, with the
 * characters libfuse's comma-separated option list cannot carry replaced.
 */
export function sealfsSource(cipherDir: string): string {
  return `sealfs:${cipherDir.replace(/[,\s\\"']/g, '_').slice(0, 200)}`;
}

/** Whether the mount is read-only (`ro` in its own options: the kernel refuses writes). */
export function isReadOnly(entry: MountEntry): boolean {
  return entry.options.includes('ro');
}

/** Who mounted a FUSE file system: the kernel's user_id= (fusermount3 passes the caller's uid). */
export function fuseOwner(entry: MountEntry): number | undefined {
  const option = entry.superOptions.find((o) => o.startsWith('user_id='));
  const uid = option === undefined ? NaN : Number(option.slice('user_id='.length));
  return Number.isInteger(uid) ? uid : undefined;
}

/** The FUSE connection number (minor device number) of a mount. */
export function connectionOf(entry: MountEntry): number | undefined {
  const minor = Number(entry.device.split(':')[1]);
  return Number.isInteger(minor) ? minor : undefined;
}

/**
 * The canonical path of a mount point without touching the mount itself (a dead FUSE mount
 * answers ENOTCONN to everything, a hung one never answers): the parent is resolved, the
 * last name kept.
 */
export async function canonicalMountpoint(path: string): Promise<string> {
  const absolute = resolve(path);
  if (absolute === '/') return '/';
  const parent = await realpath(dirname(absolute)).catch(() => dirname(absolute));
  const candidate = join(parent, basename(absolute));
  if (await mountAt(candidate)) return candidate;
  // Not a mount point itself, so safe to resolve (it may be a symbolic link to one).
  return realpath(candidate).catch(() => candidate);
}
