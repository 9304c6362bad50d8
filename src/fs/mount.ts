/**
 * Mounting a vault (libfuse3, served on this event loop by kernel.ts straight from PlainFs):
 * the mount point is checked first, and the mount is watched so that an unmount from outside
 * (`fusermount -u`, `umount`) ends the server cleanly too.
 */
import { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { access, lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PlainFs } from '../vault/plainfs.js';
import type { Vault } from '../vault/vault.js';
import { shellQuote } from '../vault/paths.js';
import { describeFsError, MountError } from './errors.js';
import { loadFuseBinding, serveKernel, type KernelSession } from './kernel.js';
import { quiet, rateLimited } from './log.js';
import { NO_CAP, permissionRule } from './permissions.js';
import { canonicalMountpoint, connectionOf, isFuse, isSealfs, mountAt, readMounts, sealfsSource, type MountEntry } from './mountinfo.js';
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
export function fuseOptionList(options: { cipherDir: string; readOnly?: boolean; allowOther?: boolean }): string[] {
  return [
    `fsname=${sealfsSource(options.cipherDir)}`,
    'subtype=sealfs',
    ...(options.readOnly ? ['ro'] : []),
    ...(options.allowOther ? ['allow_other', 'default_permissions'] : []),
  ];
}

const exists = (path: string) => access(path).then(() => true, () => false);

/**
 * Checks that this system can mount FUSE file systems with these options at all (so that a
 * command can say so before asking for a passphrase). Throws MountError.
 */
export async function checkFuseAvailable(options: { allowOther?: boolean } = {}): Promise<void> {
  if (!(await access('/dev/fuse', constants.R_OK | constants.W_OK).then(() => true, () => false))) {
    throw new MountError('/dev/fuse is missing or not accessible: this system cannot mount FUSE file systems (load the fuse module, or run with access to /dev/fuse)');
  }
  if (options.allowOther && process.getuid?.() !== 0) {
    const conf = await readFile('/etc/fuse.conf', 'utf8').catch(() => '');
    if (!/^\s*user_allow_other\b/m.test(conf)) {
      throw new MountError('--allow-other needs the line "user_allow_other" in /etc/fuse.conf (ask an administrator), or mounting as root');
    }
  }
  try {
    loadFuseBinding();
  } catch (err) {
    throw new MountError(`FUSE support is not available (${(err as Error).message.split('\n')[0]})`);
  }
}

export async function mountVault(options: MountOptions): Promise<MountedVault> {
  const log = rateLimited(quiet(options.log));
  const mountpoint = await checkMountpoint(options.mountpoint, { nonEmpty: options.nonEmpty });
  await checkFuseAvailable(options);
  const fs = new PlainFs(options.vault, { readOnly: options.readOnly ?? false, log });
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
