/**
 * Mounting a vault (libfuse3, served on this event loop by kernel.ts straight from PlainFs):
 * the mount point is checked first, and the mount is watched so that an unmount from outside
 * (`fusermount -u`, `umount`) ends the server cleanly too.
 */
import { constants, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { access, lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PlainFs } from '../vault/plainfs.js';
import { ProblemCounters } from '../vault/problems.js';
import type { Vault } from '../vault/vault.js';
import { shellQuote } from '../vault/paths.js';
import { describeFsError, MountError } from './errors.js';
import { loadFuseBinding, serveKernel, type KernelSession } from './kernel.js';
import { quiet, rateLimited } from './log.js';
import { NO_CAP, permissionRule } from './permissions.js';
import { canonicalMountpoint, connectionOf, isFuse, isSealfs, mountAt, readMounts, sealfsSource, type MountEntry } from './mountinfo.js';
import { publishStatus, type StatusPublisher } from './status.js';
import { abortConnection, probeMount, unmountMounted } from './unmount.js';

/** Largest write the kernel sends in one request (with big_writes); also the st_blksize we report. */
export const MAX_WRITE = 128 * 1024;
/** How often the server looks whether its mount is still there. */
const WATCH_MS = 1000;
/** How long, at the end, requests still being served get before files are closed under them. */
const DRAIN_MS = 10_000;
/** How long the watch waits for its own mount to answer the probe. */
const PROBE_MS = 3000;

export interface MountOptions {
  /**
   * The vault, opened with the mount's settings (cache times; direct cipher-directory calls,
   * safe because the cipher directory is outside this mount: the CLI refuses otherwise).
   */
  readonly vault: Vault;
  readonly mountpoint: string;
  readonly readOnly?: boolean;
  /** Programs in the mount cannot be run (the kernel's noexec; fstab's `user` implies it). */
  readonly noExec?: boolean;
  /** Let other users in (allow_other, with the kernel checking permissions: default_permissions). */
  readonly allowOther?: boolean;
  /**
   * With allowOther: the most other users may get, a chmod-style mode (default 0: nothing).
   * The cipher folder's modes only ever narrow it (src/fs/permissions.ts).
   */
  readonly othersMode?: number;
  /** Mount over a folder that has files in it (they are hidden while mounted). */
  readonly nonEmpty?: boolean;
  /** One timestamp-free line per event; never keys, passphrases or file contents. */
  readonly log?: (line: string) => void;
  /** Where to publish the mount's figures for `sealfs status` (statusDirs); none: not published. */
  readonly statusDirs?: readonly string[];
}

export interface MountedVault {
  /** The canonical mount point. */
  readonly mountpoint: string;
  /**
   * Unmounts (refused with MountError while programs use the mount, unless `lazy`: then
   * it is detached at once and served until the last of them lets go) and waits for `closed`.
   */
  unmount(options?: { lazy?: boolean }): Promise<void>;
  /** Resolves when the mount is gone, by whatever means, and every file was closed. */
  readonly closed: Promise<void>;
}

/**
 * Checks a mount point before anything is mounted on it; returns its canonical path. Throws
 * MountError saying what is wrong: missing, not a folder, not empty, already mounted (a
 * dead sealfs mount is named as such, with the way out).
 */
export async function checkMountpoint(path: string, options: { nonEmpty?: boolean } = {}): Promise<string> {
  const mountpoint = await canonicalMountpoint(path);
  const existing = await mountAt(mountpoint);
  if (existing) throw new MountError(await describeExisting(mountpoint, existing));
  let st;
  try {
    st = await lstat(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MountError(`${mountpoint} does not exist (create the folder first: mkdir ${shellQuote(mountpoint)})`);
    if (code === 'ENOTCONN') throw new MountError(`${mountpoint} is a dead mount (its server ended); run \`sealfs unmount ${shellQuote(mountpoint)}\` first`);
    throw new MountError(describeFsError(err) ?? `${mountpoint}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new MountError(`${mountpoint} is not a folder; the mount point must be an empty folder`);
  if (!options.nonEmpty) {
    const names = await readdir(mountpoint);
    if (names.length > 0) {
      throw new MountError(`${mountpoint} is not empty (${names.length} entr${names.length === 1 ? 'y' : 'ies'}); mount on an empty folder`);
    }
  }
  return mountpoint;
}

async function describeExisting(mountpoint: string, entry: MountEntry): Promise<string> {
  if (isFuse(entry) && isSealfs(entry)) {
    const state = await probeMount(mountpoint);
    const from = entry.source.replace(/^sealfs:/, '');
    if (state === 'alive') return `${mountpoint} is already mounted (sealfs, ${from}); unmount it first with \`sealfs unmount ${shellQuote(mountpoint)}\``;
    return `${mountpoint} has a ${state} sealfs mount of ${from} (its server ${state === 'dead' ? 'ended' : 'does not answer'}); run \`sealfs unmount ${shellQuote(mountpoint)}\` first`;
  }
  return `${mountpoint} is already a mount point (${entry.fstype} from ${entry.source}); choose an empty folder`;
}

/** libfuse's mount options (write size and cache timeouts are set per session and reply). */
export function fuseOptionList(options: { cipherDir: string; readOnly?: boolean; noExec?: boolean; allowOther?: boolean }): string[] {
  return [
    `fsname=${sealfsSource(options.cipherDir)}`,
    'subtype=sealfs',
    ...(options.readOnly ? ['ro'] : []),
    ...(options.noExec ? ['noexec'] : []),
    ...(options.allowOther ? ['allow_other', 'default_permissions'] : []),
  ];
}

const exists = (path: string, mode?: number) => access(path, mode).then(() => true, () => false);

/**
 * The title `ps` shows for the process serving a mount: `sealfs: VAULT on MOUNTPOINT`. Node
 * writes a title over the memory of the process's original command line and cuts it to
 * that many bytes, `room` (what /proc/PID/cmdline held, less its last NUL). A background
 * server's command line holds both paths, so they fit; a foreground one's may hold them
 * relative. What does not fit is shortened from the left (`…/end/of/path`), the vault's
 * path first: the mount point is what `sealfs unmount` takes.
 */
export function serverTitle(cipherDir: string, mountpoint: string, room: number): string {
  const title = (vault: string, mount: string) => `sealfs: ${vault} on ${mount}`;
  let vault = cipherDir;
  let mount = mountpoint;
  const over = () => Buffer.byteLength(title(vault, mount)) - room;
  if (over() > 0) vault = shortenLeft(cipherDir, Buffer.byteLength(cipherDir) - over());
  if (over() > 0) mount = shortenLeft(mountpoint, Buffer.byteLength(mountpoint) - over());
  return title(vault, mount);
}

/** `…` and as much of the end of `path` as fits in `max` bytes (whole characters). */
function shortenLeft(path: string, max: number): string {
  const chars = [...path];
  while (chars.length > 0 && Buffer.byteLength(`…${chars.join('')}`) > max) chars.shift();
  return `…${chars.join('')}`;
}

/** Names this process in `ps` as the server of this mount (see serverTitle). */
export function setServerTitle(cipherDir: string, mountpoint: string): void {
  let room = Infinity;
  try {
    room = readFileSync('/proc/self/cmdline').length - 1;
  } catch {
    // No /proc: Node cuts the title where it must.
  }
  process.title = serverTitle(cipherDir, mountpoint, room);
}

/** The device every FUSE mount talks to the kernel through. */
const FUSE_DEVICE = '/dev/fuse';
/** What mounts for a user who is not root (set-user-ID root; Debian package fuse3). */
const FUSERMOUNT = 'fusermount3';
/** S_ISUID (Node's fs.constants does not name it). */
const SET_USER_ID = 0o4000;

/** Why /dev/fuse cannot be used by this process, in words, or undefined when it can. */
async function fuseDeviceProblem(): Promise<string | undefined> {
  let st;
  try {
    st = await stat(FUSE_DEVICE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return `${FUSE_DEVICE} cannot be reached by you (a folder on its way may not be searched); ask an administrator`;
    return `${FUSE_DEVICE} does not exist: the fuse kernel module is not loaded (as root: modprobe fuse), or this container was started without the device (docker run --device /dev/fuse)`;
  }
  if (await exists(FUSE_DEVICE, constants.R_OK | constants.W_OK)) return undefined;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  return (
    `${FUSE_DEVICE} is not usable by you (mode ${mode}, owner uid ${st.uid}, group gid ${st.gid}): a desktop makes it mode 0666 (Debian's default), ` +
    `or gives it to a group such as fuse that its users are in; ask an administrator to run \`chmod 0666 ${FUSE_DEVICE}\` ` +
    `(or to add you to that group, then log in again), or mount as root`
  );
}

/** For a user who is not root: is fusermount3 there, and set-user-ID root? */
async function fusermountProblem(): Promise<string | undefined> {
  const dirs = ['/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':').filter((dir) => dir.startsWith('/'))];
  for (const dir of dirs) {
    const st = await stat(join(dir, FUSERMOUNT)).catch(() => undefined);
    if (!st?.isFile()) continue;
    if (st.uid === 0 && (st.mode & SET_USER_ID) !== 0) return undefined;
    return `${join(dir, FUSERMOUNT)} is not set-user-ID root, so it cannot mount for you (as root: chmod u+s ${join(dir, FUSERMOUNT)}, or reinstall the package fuse3)`;
  }
  return `${FUSERMOUNT} is missing: an ordinary user mounts through it (install the Debian package fuse3)`;
}

/**
 * Checks that this system can mount FUSE file systems with these options at all (so that a
 * command can say so before asking for a passphrase). Throws MountError saying what is
 * missing and what a desktop provides: /dev/fuse usable (mode 0666), a set-user-ID
 * fusermount3, and for --allow-other the line user_allow_other in /etc/fuse.conf.
 */
export async function checkFuseAvailable(options: { allowOther?: boolean } = {}): Promise<void> {
  const device = await fuseDeviceProblem();
  if (device) throw new MountError(device);
  const asUser = process.getuid?.() !== 0;
  if (asUser) {
    const fusermount = await fusermountProblem();
    if (fusermount) throw new MountError(fusermount);
  }
  if (options.allowOther && asUser) {
    const conf = await readFile('/etc/fuse.conf', 'utf8').catch(() => '');
    if (!/^\s*user_allow_other\b/m.test(conf)) {
      throw new MountError(
        '--allow-other needs the line "user_allow_other" in /etc/fuse.conf, which is not there by default: ask an administrator to add it ' +
          '(as root: echo user_allow_other >> /etc/fuse.conf), or mount without --allow-other',
      );
    }
  }
  try {
    loadFuseBinding();
  } catch (err) {
    const why = (err as Error).message.split('\n')[0]!;
    const hint = /libfuse3\.so/.test(why) ? '; install the Debian package libfuse3-3' : '';
    throw new MountError(`FUSE support is not available (${why})${hint}`);
  }
}

export async function mountVault(options: MountOptions): Promise<MountedVault> {
  const log = rateLimited(quiet(options.log));
  const mountpoint = await checkMountpoint(options.mountpoint, { nonEmpty: options.nonEmpty });
  await checkFuseAvailable(options);
  // The kernel has applied the calling program's umask to every mode a request carries (as
  // for a local disk); this server's own would take bits away a second time: `(umask 0;
  // mkdir d)` must give 777, as gocryptfs gives. Files the server writes for itself give
  // their modes explicitly, and the vault's control files keep the umask read when it was
  // opened (cipherio.ts).
  process.umask(0);
  const counters = new ProblemCounters();
  const fs = new PlainFs(options.vault, { readOnly: options.readOnly ?? false, log, counters });
  const probeName = `.sealfs-probe-${randomBytes(16).toString('hex')}`;
  let session: KernelSession;
  try {
    session = serveKernel(mountpoint, fs, {
      options: fuseOptionList({ cipherDir: options.vault.cipherDir, ...options }),
      maxWrite: MAX_WRITE,
      blockSize: MAX_WRITE,
      // Without allow_other no other user reaches the mount: modes show as stored.
      permissions: permissionRule(options.allowOther ? (options.othersMode ?? 0) : NO_CAP, fs.recordsOwners),
      settings: options.vault.settings,
      probeName,
      log,
      onEnd: () => void check(),
    });
  } catch (err) {
    throw new MountError(`could not mount ${mountpoint}: ${(err as Error).message}`);
  }

  const entry = await mountAt(mountpoint);
  const connection = entry ? connectionOf(entry) : undefined;
  log(`mounted ${options.vault.cipherDir} at ${mountpoint}${options.readOnly ? ' (read-only)' : ''}${connection !== undefined ? `, FUSE connection ${connection}` : ''}`);
  // A promise, so that a mount that ends before the first write is done still stops it.
  const status: Promise<StatusPublisher> | undefined =
    options.statusDirs && entry && connection !== undefined
      ? publishStatus({
          dirs: options.statusDirs,
          mountpoint,
          device: entry.device,
          connection,
          vault: options.vault.cipherDir,
          backend: options.vault.content.backend.name,
          figures: () => ({ openFiles: fs.openHandles, problems: counters.snapshot() }),
          log,
        })
      : undefined;
  await status;

  let finished = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolvePromise) => {
    resolveClosed = resolvePromise;
  });

  /** The mount is gone: let answers in flight finish, then close every file. */
  const finish = async (why: string) => {
    if (finished) return;
    finished = true;
    clearInterval(timer);
    const drained = await Promise.race([session.inflight.idle().then(() => true), delay(DRAIN_MS).then(() => false)]);
    if (!drained) log(`${session.inflight.count} request(s) still unanswered after ${DRAIN_MS / 1000} s; closing files anyway`);
    try {
      await fs.releaseAll();
    } catch (err) {
      log(`closing files: ${(err as Error).message}`);
    }
    session.close();
    await (await status)?.stop();
    log(`unmounted ${mountpoint} (${why})`);
    resolveClosed();
  };

  let checking = false;
  let initiated = false;
  /** Is our mount still there, attached or (lazily detached) still served? */
  const check = async () => {
    if (checking || finished) return;
    checking = true;
    try {
      const now = await mountAt(mountpoint);
      // The kernel hands a freed connection number (and mount id) to the next mount at once,
      // so a mount that looks like ours must also answer our secret probe name.
      if (now && (!entry || now.device === entry.device) && (await answersProbe(join(mountpoint, probeName)))) return;
      // Detached lazily: programs that still hold files in it are served until they close them.
      const reused = entry !== undefined && (await readMounts()).some((m) => m.device === entry.device);
      if (!reused && connection !== undefined && (await exists(`/sys/fs/fuse/connections/${connection}`))) return;
      await finish(initiated ? 'unmount requested' : 'unmounted by another program: sealfs unmount, fusermount -u or umount');
    } catch (err) {
      log(`watching the mount: ${(err as Error).message}`);
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void check(), WATCH_MS);

  const unmount = async (how: { lazy?: boolean } = {}) => {
    if (finished) return closed;
    initiated = true;
    try {
      await unmountMounted(mountpoint, how.lazy ?? false);
    } catch (err) {
      initiated = false;
      throw err;
    }
    await check();
    // A lazy detach keeps serving open files; a hard limit keeps shutdown from hanging.
    if (how.lazy) {
      await Promise.race([closed, delay(DRAIN_MS)]);
      if (!finished) {
        if (entry) await abortConnection(entry);
        await finish('unmount requested; connection aborted with files still open');
      }
    }
    return closed;
  };

  return { mountpoint, unmount, closed };
}

/**
 * Whether the mount answers `probe` (asynchronously: this process serves the mount). A mount
 * that does not answer within PROBE_MS is taken as still ours rather than abandoned.
 */
async function answersProbe(probe: string): Promise<boolean> {
  const answer = stat(probe).then(
    () => true,
    (err: NodeJS.ErrnoException) => err.code !== 'ENOENT',
  );
  return Promise.race([answer, delay(PROBE_MS).then(() => true)]);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolvePromise) => setTimeout(resolvePromise, ms).unref());
}
