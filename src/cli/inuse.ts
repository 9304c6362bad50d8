/**
 * The vault lock as commands use it (src/vault/vaultlock.ts): `sealfs mount` and `sealfs
 * repair` hold it while they may write to the cipher folder, and a refusal names who holds
 * it: the mount point and server pid of the mount that has the vault (found in the mount
 * table by the vault folder's identity, so whatever path that mount was given), or the
 * process, for a repair.
 */
import { readFile, stat } from 'node:fs/promises';
import { isSealfs, readMounts } from '../fs/mountinfo.js';
import { shellQuote } from '../vault/paths.js';
import { lockVaultFolder, type FolderId } from '../vault/vaultlock.js';
import { CliError, EXIT } from './exit.js';

/** st_dev of a device numbered major:minor (glibc's makedev). */
function deviceNumber(major: number, minor: number): bigint {
  return (
    (BigInt(major & 0xfffff000) << 32n) | (BigInt(major & 0xfff) << 8n) | (BigInt(minor & 0xffffff00) << 12n) | BigInt(minor & 0xff)
  );
}

/** The command line of a process (its title, for a mount server: `sealfs: VAULT on MOUNTPOINT`). */
async function commandOf(pid: number): Promise<string | undefined> {
  const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const line = text.split('\0').filter(Boolean).join(' ').trim();
  return line === '' ? undefined : line;
}

/** Mount points of sealfs mounts whose vault folder is `folder` (the mount table names it by path). */
async function mountsOf(folder: FolderId): Promise<string[]> {
  const dev = deviceNumber(folder.major, folder.minor);
  const found: string[] = [];
  for (const entry of await readMounts().catch(() => [])) {
    if (!isSealfs(entry) || !entry.source.startsWith('sealfs:')) continue;
    const st = await stat(entry.source.slice('sealfs:'.length), { bigint: true }).catch(() => undefined);
    if (st && st.ino === BigInt(folder.ino) && st.dev === dev) found.push(entry.mountpoint);
  }
  return found;
}

/** The one-line refusal: who has the vault `cipherDir`, and what to do. */
export async function inUseMessage(cipherDir: string, folder: FolderId, holder: number | undefined): Promise<string> {
  const command = holder === undefined ? undefined : await commandOf(holder);
  const mounts = await mountsOf(folder);
  // A server's title names its mount point (serverTitle); it picks among several mounts of the vault's folder.
  const titled = command?.startsWith('sealfs: ') ? mounts.find((m) => command.endsWith(` on ${m}`)) : undefined;
  const mountpoint = titled ?? (mounts.length > 0 && (command === undefined || command.startsWith('sealfs: ')) ? mounts[0] : undefined);
  if (mountpoint !== undefined) {
    return (
      `${cipherDir} is already mounted at ${mountpoint}${holder === undefined ? '' : ` (server pid ${holder})`}: ` +
      `one vault has one mount at a time, as two would overwrite each other's writes; use that mount, or unmount it first: sealfs unmount ${shellQuote(mountpoint)}`
    );
  }
  if (holder !== undefined) {
    return `${cipherDir} is in use by another sealfs process (pid ${holder}${command === undefined ? '' : `: ${command}`}); wait until it ends, or end it`;
  }
  return `${cipherDir} is in use by another process (it holds the vault folder's lock); wait until it ends`;
}

/**
 * Takes the vault lock of `cipherDir` for this process and returns how to let go of it; a
 * CliError (EXIT.IN_USE) naming the holder when another process has it. Where the folder's
 * file system keeps no locks, `warn` is told and nothing is locked.
 */
export async function holdVaultLock(cipherDir: string, warn: (line: string) => void): Promise<() => void> {
  const lock = await lockVaultFolder(cipherDir);
  if (lock.state === 'held') return lock.release;
  if (lock.state === 'unsupported') {
    warn(`the vault folder ${cipherDir} cannot be locked (${lock.error}: its file system keeps no locks), so a second mount of it would not be refused`);
    return () => {};
  }
  throw new CliError(await inUseMessage(cipherDir, lock.folder, lock.holder), EXIT.IN_USE);
}

/** Fails (as holdVaultLock) when another process holds the lock of `cipherDir`; holds nothing. */
export async function checkVaultFree(cipherDir: string): Promise<void> {
  const release = await holdVaultLock(cipherDir, () => {});
  release();
}
