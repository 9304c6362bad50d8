/**
 * The `sealfs` command as a user gets it (README, "Install"): the package that `npm pack`
 * makes, installed with `npm install -g` into a fresh prefix, run as a real unprivileged user
 * through Debian's set-user-ID fusermount3: --version, init, mount, a file written and read
 * through the mount by that user, the process title in ps, scrub, backup to a local rclone
 * remote, unmount, the messages when /dev/fuse or user_allow_other is missing, and uninstall.
 *
 * Runs as root (CI does): creates the user `sealfs-install-test` once (useradd, idempotent;
 * kept for later runs) and gives it a home in this run's temporary folder. Where /dev/fuse is
 * not usable by that user (CI containers have it 0600; a desktop has it 0666), the test gives
 * that one user access with an ACL entry instead of chmod 0666: the device's mode and every
 * other user (and any other test running at the time) stay as they were. The entry is removed
 * at the end, also on failure, as are the mount, its server and the temporary folder.
 *
 * Helpers for further steps of a user's day (fstab, status, completion, man): runAs(user, cmd)
 * runs any command as the user with a login-like environment; sealfsAs(cmd) the installed
 * sealfs from the PATH the README gives.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { serverTitle } from '../src/fs/mount.js';
import { readMounts } from '../src/fs/mountinfo.js';
import { endProcess, forceUnmount, fuseProblem, runDetached, waitPidGone, type Run } from '../bench/lib/proc.js';
import { CLI, REPO } from './build.js';

const USER = 'sealfs-install-test';
const FUSE_DEVICE = '/dev/fuse';
const PASSPHRASE = 'an ordinary user installs sealfs and mounts a vault\n';
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const TARBALL = `sealfs-${VERSION}.tgz`;

/** Why this suite cannot run here, or undefined. */
function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (to create the unprivileged user)';
  const fuse = fuseProblem();
  if (fuse) return fuse;
  for (const tool of ['useradd', 'runuser', 'setfacl', 'rclone', 'unshare']) {
    if (spawnSync(tool, ['--version']).error) return `${tool} is not installed (scripts/setup.sh --tests installs what is missing)`;
  }
  return undefined;
}
const SKIP = cannotRun();

interface User {
  readonly name: string;
  readonly uid: number;
  readonly home: string;
}

/** The user, created if missing (a system account without a home of its own: each run gives it one). */
function ensureUser(name: string, home: string): User {
  if (spawnSync('id', ['-u', name]).status !== 0) {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/bin/bash', name]);
  }
  return { name, uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim()), home };
}

/**
 * Runs `command` as `user` (runuser, no terminal, its own process group, bounded time) with
 * the environment a login gives: HOME, USER, and the PATH Debian's ~/.profile makes when
 * ~/.local/bin exists (README, "Install for one user"). Starts in the user's home.
 */
function runAs(user: User, command: readonly string[], options: { timeoutMs?: number; cwd?: string; prefix?: readonly string[] } = {}): Promise<Run> {
  const env = [`HOME=${user.home}`, `USER=${user.name}`, `LOGNAME=${user.name}`, 'LANG=C.UTF-8', `PATH=${user.home}/.local/bin:/usr/local/bin:/usr/bin:/bin`];
  const args = [...(options.prefix ?? []), 'runuser', '-u', user.name, '--', 'env', '-i', ...env, ...command];
  return runDetached(args[0]!, args.slice(1), process.env, options.timeoutMs ?? 60_000, { cwd: options.cwd ?? user.home });
}

/** One line saying what a run did, for failed expectations. */
const said = (run: Run) => `exit ${run.code}${run.timedOut ? ' (timed out)' : ''}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;

/** The user's named ACL entry on /dev/fuse: rw gives access, --- takes it (whatever the mode says). */
function setFuseAcl(user: User, perms: 'rw' | '---'): void {
  execFileSync('setfacl', ['-m', `u:${user.name}:${perms}`, FUSE_DEVICE]);
}

/** Removes the user's entry; with no other named entry left, the ACL goes entirely (the mode is as before). */
function dropFuseAcl(user: User): void {
  spawnSync('setfacl', ['-x', `u:${user.name}`, FUSE_DEVICE]);
  const acl = spawnSync('getfacl', ['-c', '-p', FUSE_DEVICE], { encoding: 'utf8' }).stdout;
  if (!/^(user|group):[^:]+:/m.test(acl)) spawnSync('setfacl', ['-b', FUSE_DEVICE]);
}

describe.skipIf(SKIP !== undefined)(`the installed sealfs, run by an unprivileged user${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let root: string;
  let user: User;
  let tarball: string;
  let aclSet = false;
  /** The user's vault, mount point and passphrase file (relative paths, as a user types them, from the home). */
  const vault = 'vault';
  const mnt = 'Private';
  const pw = 'passphrase';
  let serverPid: number | undefined;
  /** A system-wide prefix (the README's /usr/local; a fresh one here, so that the machine's stays untouched). */
  let systemPrefix: string;

  /** The sealfs on the user's PATH (~/.local/bin after the one-user install). */
  const sealfsAs = (args: readonly string[], timeoutMs?: number) => runAs(user, ['sealfs', ...args], { timeoutMs });
  const inHome = (path: string) => join(user.home, path);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sealfs-install-'));
    // The user must reach its home and the tarball below this root-owned folder.
    await chmod(root, 0o755);
    user = ensureUser(USER, join(root, 'home'));
    await mkdir(user.home);
    await chown(user.home, user.uid, user.uid);
    systemPrefix = join(root, 'usr-local');

    // The README's `npm pack` builds first (prepack); that build is the one this test run
    // already has (npm ci, and dist/ from the global setup), and rebuilding it here would
    // rewrite dist/ and the addons under the test files running beside this one.
    const pack = await runDetached('npm', ['pack', '--ignore-scripts', '--pack-destination', root], process.env, 120_000, { cwd: REPO });
    expect(pack.code, said(pack)).toBe(0);
    tarball = join(root, TARBALL);
    await chmod(tarball, 0o644);

    const usable = await runAs(user, ['sh', '-c', `test -r ${FUSE_DEVICE} && test -w ${FUSE_DEVICE}`]);
    if (usable.code !== 0) {
      setFuseAcl(user, 'rw');
      aclSet = true;
    }
  }, 180_000);

  afterAll(async () => {
    if (!root) return;
    const mountpoint = inHome(mnt);
    if ((await readMounts()).some((m) => m.mountpoint === mountpoint)) await forceUnmount(mountpoint);
    if (serverPid !== undefined) await endProcess(serverPid);
    if (aclSet) dropFuseAcl(user);
    await rm(root, { recursive: true, force: true });
  }, 120_000);

  it('npm pack ships the built program, its two addons and its dependencies, and no tests, benchmarks or sources', async () => {
    const list = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n');
    for (const needed of [
      'package/package.json',
      'package/README.md',
      'package/dist/src/cli/main.js',
      'package/native/build/Release/sealfs_aead.node',
      'package/native/fuse/build/Release/sealfs_fuse.node',
      'package/node_modules/commander/package.json',
      'package/node_modules/@noble/ciphers/package.json',
    ]) {
      expect(list).toContain(needed);
    }
    const own = list.filter((path) => !path.startsWith('package/node_modules/'));
    expect(own.filter((path) => /^package\/(test|bench|src|scripts|docs|dist\/test|dist\/bench)\/|\.map$|\.ts$(?<!\.d\.ts)/.test(path))).toEqual([]);
  });

  it('installs for one user as the README says (npm install -g --prefix ~/.local) and runs without the clone', async () => {
    const install = await runAs(user, ['npm', 'install', '-g', '--prefix', inHome('.local'), tarball], { timeoutMs: 180_000 });
    expect(install.code, said(install)).toBe(0);
    // npm 11 warns about a `prepare` script of an installed package (which never runs there).
    expect(install.stdout + install.stderr).not.toMatch(/install-scripts|allow-scripts/);
    // A copy, not a link into the clone.
    expect(await realpath(inHome('.local/bin/sealfs'))).toBe(inHome('.local/lib/node_modules/sealfs/dist/src/cli/main.js'));

    // With the clone hidden (an empty folder mounted over it in a mount namespace of its own),
    // as if it had been deleted: every module and both addons load from the installed copy.
    const version = await runAs(user, ['sealfs', '--version'], {
      prefix: ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o ro,mode=0755 sealfs-hidden-clone "$0" && exec "$@"`, REPO],
    });
    expect(version.code, said(version)).toBe(0);
    const lines = version.stdout.split('\n');
    expect(lines[0]).toBe(`sealfs ${VERSION}`);
    expect(lines[1]).toBe('formats: vault file 1, sealed files 1, key store 1 (reads and writes these)');
    expect(lines[2]).toMatch(/^crypto: native \(OpenSSL \d/);
    expect(lines[3]).toMatch(/^libfuse: 3\.\d+\.\d+$/);
    expect(version.stderr).toBe('');
  }, 240_000);

  it('the user inits a vault, mounts it, writes and reads through the mount, scrubs, backs up to a local rclone remote and unmounts', async () => {
    const setup = await runAs(user, ['sh', '-c', `mkdir ${vault} ${mnt} && printf %s "$0" > ${pw} && chmod 600 ${pw}`, PASSPHRASE]);
    expect(setup.code, said(setup)).toBe(0);

    const init = await sealfsAs(['init', vault, '--passphrase-file', pw]);
    expect(init.code, said(init)).toBe(EXIT.OK);
    // The recovery key, in groups of five, on stdout (the words around it go to stderr).
    expect(init.stdout).toMatch(/^[0-9A-Z]{5}(-[0-9A-Z]{5})+\n$/);

    const mount = await sealfsAs(['mount', vault, mnt, '--passphrase-file', pw]);
    expect(mount.code, said(mount)).toBe(EXIT.OK);
    serverPid = Number(/server pid (\d+)/.exec(mount.stderr)?.[1]);
    expect(serverPid).toBeGreaterThan(0);
    const entry = (await readMounts()).find((m) => m.mountpoint === inHome(mnt));
    expect(entry?.fstype).toBe('fuse.sealfs');

    // What ps shows for the server: whose it is, and which vault on which mount point.
    const ps = (field: string) => spawnSync('ps', ['-o', `${field}=`, '-p', String(serverPid)], { encoding: 'utf8' }).stdout.trim();
    expect(ps('args')).toBe(`sealfs: ${inHome(vault)} on ${inHome(mnt)}`);
    expect(Number(ps('uid'))).toBe(user.uid);

    const text = 'written by an ordinary user through the mount\n';
    const write = await runAs(user, ['sh', '-c', `printf %s "$0" > ${mnt}/note.txt && cat ${mnt}/note.txt && stat -c %U ${mnt}/note.txt`, text]);
    expect(write.code, said(write)).toBe(0);
    expect(write.stdout).toBe(`${text}${user.name}\n`);
    // Only ciphertext reached the vault folder: the vault file and one encrypted name.
    const stored = await readdir(inHome(vault));
    expect(stored).toContain('sealfs.vault');
    expect(stored.filter((name) => name !== 'sealfs.vault')).toHaveLength(1);
    expect(stored.join('\n')).not.toContain('note');

    const scrub = await sealfsAs(['scrub', vault, '--passphrase-file', pw]);
    expect(scrub.code, said(scrub)).toBe(EXIT.OK);

    // `sealfs status` lists the mount as the user's, with its server's figures; not as root's.
    const status = await sealfsAs(['status', '--json']);
    expect(status.code, said(status)).toBe(EXIT.OK);
    expect((JSON.parse(status.stdout) as { mounts: unknown[] }).mounts).toEqual([
      expect.objectContaining({ mountpoint: inHome(mnt), vault: inHome(vault), state: 'alive', pid: serverPid, readOnly: false }),
    ]);
    const asRoot = await runDetached(process.execPath, [CLI, 'status', '--json'], process.env, 30_000);
    expect((JSON.parse(asRoot.stdout) as { mounts: { mountpoint: string }[] }).mounts.map((m) => m.mountpoint)).not.toContain(inHome(mnt));

    // A local rclone remote in the user's own rclone configuration.
    const remote = await runAs(user, ['sh', '-c', 'mkdir -p .config/rclone && printf "[backupdisk]\\ntype = local\\n" > .config/rclone/rclone.conf']);
    expect(remote.code, said(remote)).toBe(0);
    const backup = await sealfsAs(['backup', vault, `backupdisk:${inHome('backup')}`, '--passphrase-file', pw], 120_000);
    expect(backup.code, said(backup)).toBe(EXIT.OK);
    expect((await readdir(inHome('backup'))).sort()).toEqual([...stored].sort());

    const unmount = await sealfsAs(['unmount', mnt]);
    expect(unmount.code, said(unmount)).toBe(EXIT.OK);
    expect((await readMounts()).some((m) => m.mountpoint === inHome(mnt))).toBe(false);
    expect(await waitPidGone(serverPid, 10_000)).toBe(true);
    serverPid = undefined;
  }, 300_000);

  it('without access to /dev/fuse, mount exits 7 and says what a desktop provides; so does --allow-other without user_allow_other', async () => {
    setFuseAcl(user, '---');
    aclSet = true;
    try {
      const denied = await sealfsAs(['mount', vault, mnt, '--passphrase-file', pw]);
      expect(denied.code, said(denied)).toBe(EXIT.MOUNT);
      expect(denied.stderr).toMatch(/^sealfs: \/dev\/fuse is not usable by you \(mode \d{4}.*\): a desktop makes it mode 0666 .*chmod 0666 \/dev\/fuse/);
      expect(denied.stderr).not.toMatch(/cannot mount FUSE|\bE[A-Z]{4,}\b/);
    } finally {
      setFuseAcl(user, 'rw');
    }
    expect((await readMounts()).some((m) => m.mountpoint === inHome(mnt))).toBe(false);

    // Debian's /etc/fuse.conf has the line commented out; a machine that enabled it cannot show this.
    if (!/^\s*user_allow_other\b/m.test(readFileSync('/etc/fuse.conf', 'utf8'))) {
      const other = await sealfsAs(['mount', vault, mnt, '--passphrase-file', pw, '--allow-other']);
      expect(other.code, said(other)).toBe(EXIT.MOUNT);
      expect(other.stderr).toMatch(/^sealfs: --allow-other needs the line "user_allow_other" in \/etc\/fuse.conf.*echo user_allow_other >> \/etc\/fuse.conf/);
    }
  }, 120_000);

  it('installs for every user (npm install -g --prefix, as root) and uninstalls both ways', async () => {
    const install = await runDetached('npm', ['install', '-g', '--prefix', systemPrefix, tarball], process.env, 180_000, { cwd: root });
    expect(install.code, said(install)).toBe(0);
    const version = await runAs(user, [join(systemPrefix, 'bin', 'sealfs'), '--version']);
    expect(version.code, said(version)).toBe(0);
    expect(version.stdout).toMatch(new RegExp(`^sealfs ${VERSION.replace(/\./g, '\\.')}\\n`));

    const uninstallSystem = await runDetached('npm', ['uninstall', '-g', '--prefix', systemPrefix, 'sealfs'], process.env, 120_000, { cwd: root });
    expect(uninstallSystem.code, said(uninstallSystem)).toBe(0);
    expect(spawnSync('test', ['-e', join(systemPrefix, 'bin', 'sealfs')]).status).not.toBe(0);
    expect(spawnSync('test', ['-e', join(systemPrefix, 'lib', 'node_modules', 'sealfs')]).status).not.toBe(0);

    const uninstallUser = await runAs(user, ['npm', 'uninstall', '-g', '--prefix', inHome('.local'), 'sealfs'], { timeoutMs: 120_000 });
    expect(uninstallUser.code, said(uninstallUser)).toBe(0);
    const gone = await runAs(user, ['sh', '-c', 'command -v sealfs; ls .local/lib/node_modules']);
    expect(gone.stdout).toBe('');
  }, 300_000);

  it('the process title fits the memory of the command line: paths that do not fit are shortened from the left, the vault first', () => {
    expect(serverTitle('/home/a/vault', '/home/a/Private', 100)).toBe('sealfs: /home/a/vault on /home/a/Private');
    // 48 bytes in 40: the vault's path loses its first 8 bytes and 3 more for the '…' (3 bytes in UTF-8).
    expect(serverTitle('/home/a/Dropbox/vault', '/home/a/Private', 40)).toBe('sealfs: …pbox/vault on /home/a/Private');
    // Nothing of the vault's path fits: the mount point's is shortened too.
    expect(serverTitle('/home/a/Dropbox/vault', '/mnt/a/very/long/mount/point', 30)).toBe('sealfs: … on …/mount/point');
    // Whole characters only.
    expect(serverTitle('/home/ä/vault', '/m', 20)).toBe('sealfs: …ult on /m');
  });
});
