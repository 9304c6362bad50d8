/**
 * `sealfs unmount`: ends a sealfs mount, live, dead (its server was killed: "Transport
 * endpoint is not connected") or hung (its server stopped answering).
 */
import { execFile } from 'node:child_process';
import { lstat, readdir, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isInside, shellQuote } from '../vault/paths.js';
import { VAULT_FILE } from '../vault/vaultfile.js';
import { MountError } from './errors.js';
import { canonicalMountpoint, connectionOf, isFuse, isSealfs, mountAt, readMounts, sealfsSource, type MountEntry } from './mountinfo.js';

const FUSECTL = '/sys/fs/fuse/connections';
/** How long a live server gets to answer a stat before its mount counts as hung. */
const PROBE_MS = 3000;

export type MountState = 'alive' | 'dead' | 'hung';

export interface UnmountResult {
  readonly mountpoint: string;
  /** What the mount was like before it was removed. */
  readonly state: MountState;
  /** Whether its FUSE connection had to be aborted. */
  readonly aborted: boolean;
}

interface RunResult {
  readonly ok: boolean;
  readonly output: string;
  readonly missing: boolean;
}

function run(command: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    execFile(command, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const output = `${stderr}${stdout}`.trim();
      if (!err) return resolvePromise({ ok: true, output, missing: false });
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      resolvePromise({ ok: false, output: output || err.message, missing });
    });
  });
}

/**
 * fusermount: Debian's fuse3 package installs it as `fusermount3`; some systems also have the
 * old name. The first that exists is used.
 */
async function fusermount(args: string[]): Promise<RunResult> {
  const result = await run('fusermount3', args);
  return result.missing ? run('fusermount', args) : result;
}

/** Whether the server of a mount answers: a stat of its root, with a time limit. */
export async function probeMount(mountpoint: string, timeoutMs = PROBE_MS): Promise<MountState> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<MountState>((resolvePromise) => {
    timer = setTimeout(() => resolvePromise('hung'), timeoutMs);
  });
  const probe = stat(mountpoint).then(
    (): MountState => 'alive',
    (err: NodeJS.ErrnoException): MountState => (err.code === 'ENOTCONN' || err.code === 'ECONNABORTED' ? 'dead' : 'alive'),
  );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Aborts the kernel side of a FUSE mount: every waiting request fails at once. */
export async function abortConnection(entry: MountEntry): Promise<boolean> {
  const minor = connectionOf(entry);
  if (minor === undefined) return false;
  const listed = await readdir(FUSECTL).catch(() => [] as string[]);
  if (listed.length === 0) await run('mount', ['-t', 'fusectl', 'none', FUSECTL], 10_000);
  try {
    await writeFile(join(FUSECTL, String(minor), 'abort'), '1');
    return true;
  } catch {
    return false;
  }
}

const busy = (output: string) => /busy/i.test(output);

/**
 * How long a busy mount is retried. The kernel closes the files of a program that just ended
 * asynchronously (deferred fput), so right after the last program using the mount exits, an
 * unmount can still find it busy for a moment; a loaded machine stretches that moment.
 */
const BUSY_RETRY_MS = 2000;
const BUSY_STEP_MS = 100;

async function unmountLive(mountpoint: string): Promise<void> {
  let result = await fusermount(['-u', mountpoint]);
  for (const deadline = Date.now() + BUSY_RETRY_MS; !result.ok && busy(result.output) && Date.now() < deadline; ) {
    await new Promise((resolvePromise) => setTimeout(resolvePromise, BUSY_STEP_MS));
    result = await fusermount(['-u', mountpoint]);
  }
  if (!result.ok && !busy(result.output)) {
    const viaUmount = await run('umount', [mountpoint]);
    if (viaUmount.ok) return;
    if (busy(viaUmount.output)) result = viaUmount;
    else if (result.missing) result = viaUmount;
  }
  if (result.ok) return;
  if (busy(result.output)) throw new MountError(await whyBusy(mountpoint));
  throw new MountError(`could not unmount ${mountpoint}: ${result.output.split('\n')[0]}`);
}

/** A busy mount: another mount inside it holds it (named, to be unmounted first), or programs using it. */
async function whyBusy(mountpoint: string): Promise<string> {
  const nested = (await readMounts()).filter((m) => m.mountpoint !== mountpoint && isInside(m.mountpoint, mountpoint));
  if (nested.length > 0) {
    // The innermost last (mountinfo lists parents before children): it is the one to unmount first.
    const inner = nested[nested.length - 1]!;
    const how = isSealfs(inner) ? `sealfs unmount ${shellQuote(inner.mountpoint)}` : `umount ${shellQuote(inner.mountpoint)}`;
    const more = nested.length > 1 ? ` (and ${nested.length - 1} more mount${nested.length > 2 ? 's' : ''})` : '';
    return `${mountpoint} is busy: ${inner.mountpoint} is mounted inside it${more}; unmount that first (\`${how}\`), then this one`;
  }
  return `${mountpoint} is busy (close the programs using it, or leave it, then try again)`;
}

async function unmountLazy(mountpoint: string): Promise<void> {
  const result = await fusermount(['-u', '-z', mountpoint]);
  if (result.ok) return;
  const viaUmount = await run('umount', ['-l', mountpoint]);
  if (!viaUmount.ok) throw new MountError(`could not unmount ${mountpoint}: ${result.output.split('\n')[0]}`);
}

/** Unmounts a mount this process serves: normally (MountError when busy), or lazily. */
export async function unmountMounted(mountpoint: string, lazy: boolean): Promise<void> {
  if (lazy) await unmountLazy(mountpoint);
  else await unmountLive(mountpoint);
}

/** At most this many mount points are named in one message (it stays one readable line). */
const LISTED_MOUNTS = 4;

/**
 * Why there is nothing to unmount at `mountpoint`, with the way on: it does not exist, it is
 * a vault folder (then where that vault is mounted), or a folder with no mount; the sealfs
 * mounts there are listed, so that the user sees which path was meant.
 */
async function whyNotMounted(mountpoint: string): Promise<string> {
  const sealfsMounts = (await readMounts()).filter(isSealfs);
  const listed = (mounts: readonly MountEntry[]) =>
    mounts.slice(0, LISTED_MOUNTS).map((m) => shellQuote(m.mountpoint)).join(', ') + (mounts.length > LISTED_MOUNTS ? ` and ${mounts.length - LISTED_MOUNTS} more` : '');
  const elsewhere = sealfsMounts.length === 0 ? 'no sealfs vault is mounted' : `sealfs vaults are mounted at ${listed(sealfsMounts)}`;
  if ((await lstat(mountpoint).catch(() => undefined)) === undefined) {
    return `${mountpoint} does not exist, so nothing is mounted there (check the path; ${elsewhere})`;
  }
  if (await lstat(join(mountpoint, VAULT_FILE)).then(() => true, () => false)) {
    const real = await realpath(mountpoint).catch(() => mountpoint);
    const mounts = sealfsMounts.filter((m) => m.source === sealfsSource(real) || m.source === sealfsSource(mountpoint));
    const where =
      mounts.length === 0
        ? 'this vault is not mounted now'
        : mounts.length === 1
          ? `this vault is mounted at ${mounts[0]!.mountpoint}: \`sealfs unmount ${shellQuote(mounts[0]!.mountpoint)}\``
          : `this vault is mounted at ${listed(mounts)}`;
    return `${mountpoint} is a vault folder, not a mount point: give the folder where it is mounted (${where})`;
  }
  return `${mountpoint} is not mounted, so there is nothing to unmount (${elsewhere})`;
}

/**
 * Unmounts the sealfs mount at `path`. A live mount is unmounted normally (refused while
 * programs use it); a dead or hung one is detached lazily, its connection aborted first when
 * hung so that no program stays stuck. Throws MountError when `path` is not a sealfs mount.
 */
export async function unmountPath(path: string): Promise<UnmountResult> {
  const mountpoint = await canonicalMountpoint(path);
  const entry = await mountAt(mountpoint);
  if (!entry) throw new MountError(await whyNotMounted(mountpoint));
  if (!isFuse(entry)) throw new MountError(`${mountpoint} is not a sealfs mount (a file system of type ${entry.fstype} is mounted there); not touching it`);
  if (!isSealfs(entry)) {
    throw new MountError(`${mountpoint} is not a sealfs mount (${entry.source}, of type ${entry.fstype}, is mounted there); unmount it with \`fusermount3 -u ${shellQuote(mountpoint)}\``);
  }
  const state = await probeMount(mountpoint);
  let aborted = false;
  if (state === 'alive') {
    await unmountLive(mountpoint);
  } else {
    if (state === 'hung') aborted = await abortConnection(entry);
    await unmountLazy(mountpoint);
  }
  const still = await mountAt(mountpoint);
  if (still && still.device === entry.device) throw new MountError(`${mountpoint} is still mounted after unmounting`);
  return { mountpoint, state, aborted };
}
