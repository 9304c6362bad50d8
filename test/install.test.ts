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
 * The README is followed as written: the one-user install line and the "Using sealfs" lines
 * are read out of README.md and run as the user (the passphrase typed at the prompts of a
 * terminal that script(1) provides), so the README cannot drift from what is tested. Then
 * the rest of a user's day with the installed package: bash completion, the man page,
 * `sealfs info` and `sealfs status`, an /etc/fstab line with `user` mounted and unmounted by
 * the user through mount(8) and the helper that root installed, and `mount -t fuse.sealfs`
 * as root. For the fstab line the user's home in the password database is this run's home
 * (mount(8) clears HOME for the helper; sealfs then finds the home there, as on a desktop);
 * it is set back, the fstab line and the helper put back as they were, also on failure.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { serverTitle } from '../src/fs/mount.js';
import { readMounts } from '../src/fs/mountinfo.js';
import { HELPER_DIR, HELPER_NAME } from '../src/cli/mountopts.js';
import { endProcess, forceUnmount, fuseProblem, killGroup, machineLock, runDetached, waitPidGone, type Run } from '../bench/lib/proc.js';
import { CLI, REPO } from './build.js';

const USER = 'sealfs-install-test';
const FUSE_DEVICE = '/dev/fuse';
const PASSPHRASE = 'an ordinary user installs sealfs and mounts a vault\n';
/** A file the user writes through the mount, read again through the later mounts. */
const NOTE = 'written by an ordinary user through the mount\n';
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const TARBALL = `sealfs-${VERSION}.tgz`;

/** Why this suite cannot run here, or undefined. */
function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (to create the unprivileged user)';
  const fuse = fuseProblem();
  if (fuse) return fuse;
  for (const tool of ['useradd', 'usermod', 'runuser', 'setfacl', 'rclone', 'unshare', 'script', 'man', 'zsh']) {
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

/** The first fenced code block of the README after the line `start` (a heading, or a paragraph's first line). */
function readmeBlock(start: string): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const at = readme.split('\n').indexOf(start);
  expect(at, `the line ${JSON.stringify(start)} in the README`).toBeGreaterThanOrEqual(0);
  const block = /^```[a-z]*\n([\s\S]*?)^```$/m.exec(readme.split('\n').slice(at + 1).join('\n'))?.[1];
  expect(block, `a code block after ${JSON.stringify(start)}`).toBeDefined();
  return block!;
}

/** The commands of a shell block as a user types them: comments and blank lines left out. */
const commandLines = (block: string) => block.split('\n').map((line) => line.replace(/(^|\s)#.*$/, '').trim()).filter((line) => line !== '');

/**
 * Runs a shell line as `user` on a terminal (script(1) gives it one; bash expands `~`), in
 * the user's home, and types `answer` at every passphrase prompt (Enter …: / Repeat …:) once
 * it is shown, as a user does. The whole process group is killed after `timeoutMs`.
 */
function onTerminalAs(user: User, line: string, answer: string, timeoutMs = 60_000): Promise<Run> {
  const env = [`HOME=${user.home}`, `USER=${user.name}`, `LOGNAME=${user.name}`, 'LANG=C.UTF-8', 'SHELL=/bin/bash', 'TERM=dumb', `PATH=${user.home}/.local/bin:/usr/local/bin:/usr/bin:/bin`];
  const child = spawn('runuser', ['-u', user.name, '--', 'env', '-i', ...env, 'script', '-qefc', line, '/dev/null'], { cwd: user.home, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let answered = 0;
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const prompts = stdout.match(/(?:Enter|Repeat) [^\r\n]*: /g)?.length ?? 0;
      for (; answered < prompts; answered++) child.stdin.write(`${answer}\r`);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, out: Buffer.from(stdout), stderr, timedOut });
    });
  });
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
  /** What puts the machine back as it was (the user's home in passwd, the helper, the fstab line), run last to first. */
  const restore: (() => Promise<void> | void)[] = [];

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
    // As on a desktop, the password database names the home (mount(8) clears HOME for its
    // helpers), and the home has Debian's ~/.profile (useradd -m copies it from /etc/skel).
    execFileSync('usermod', ['--home', user.home, user.name]);
    restore.push(() => void execFileSync('usermod', ['--home', '/nonexistent', user.name]));
    if (existsSync('/etc/skel/.profile')) {
      await copyFile('/etc/skel/.profile', inHome('.profile'));
      await chown(inHome('.profile'), user.uid, user.uid);
    }
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
    const failed: unknown[] = [];
    for (const step of restore.reverse()) await Promise.resolve().then(step).catch((err: unknown) => failed.push(err));
    await rm(root, { recursive: true, force: true });
    if (failed.length > 0) throw new AggregateError(failed, 'could not put the machine back as it was');
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

  it("installs for one user with the README's lines (the .tgz copied into the home), finds it on the PATH of a login, and runs without the clone", async () => {
    // The README's "Build the package" block makes the file its install lines name.
    expect(readmeBlock('**Build the package**, once, from a clone (as yourself; the first line as root):')).toContain(`writes ${TARBALL}`);
    const installLines = commandLines(readmeBlock('**Install for one user** (into `~/.local`; no root needed):'));
    expect(installLines).toEqual([expect.stringContaining(`./${TARBALL}`)]);
    await copyFile(tarball, inHome(TARBALL));
    await chown(inHome(TARBALL), user.uid, user.uid);
    for (const line of installLines) {
      const install = await runAs(user, ['bash', '-c', line], { timeoutMs: 180_000 });
      expect(install.code, `${line}\n${said(install)}`).toBe(0);
      // npm 11 warns about a `prepare` script of an installed package (which never runs there).
      expect(install.stdout + install.stderr).not.toMatch(/install-scripts|allow-scripts/);
    }
    // "Debian's ~/.profile puts ~/.local/bin on the PATH at the next login".
    const login = await runDetached('runuser', ['-u', user.name, '--', 'env', '-i', `HOME=${user.home}`, `USER=${user.name}`, 'PATH=/usr/bin:/bin', 'bash', '-lc', 'command -v sealfs'], process.env, 30_000, { cwd: user.home });
    expect(login.stdout, said(login)).toBe(`${inHome('.local/bin/sealfs')}\n`);
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

  it('follows the README\'s "Using sealfs" lines as written (~ is the home; the passphrase typed at the prompts): init, mount, use, unmount', async () => {
    const lines = commandLines(readmeBlock('## Using sealfs'));
    expect(lines.filter((line) => line.startsWith('sealfs ')).map((line) => line.split(' ')[1])).toEqual(['init', 'mount', 'unmount']);
    // The sync client made ~/Dropbox.
    const dropbox = await runAs(user, ['mkdir', 'Dropbox']);
    expect(dropbox.code, said(dropbox)).toBe(0);
    const typed = PASSPHRASE.trim();
    for (const line of lines) {
      const run = await onTerminalAs(user, line, typed);
      expect(run.code, `${line}\n${said(run)}`).toBe(0);
      if (line.startsWith('sealfs init ')) {
        expect(run.stdout).toMatch(/^[0-9A-Z]{5}(-[0-9A-Z]{5})+\r?$/m);
        expect(await readdir(inHome('Dropbox/vault'))).toContain('sealfs.vault');
      }
      if (line.startsWith('sealfs mount ')) {
        serverPid = Number(/server pid (\d+)/.exec(run.stdout)?.[1]);
        expect(serverPid, run.stdout).toBeGreaterThan(0);
        // "… use ~/Private with any program …"
        const use = await runAs(user, ['sh', '-c', 'printf %s "$0" > Private/readme.txt && cat Private/readme.txt', NOTE]);
        expect(use.stdout, said(use)).toBe(NOTE);
        expect(await readdir(inHome('Dropbox/vault'))).toHaveLength(2);
      }
      if (line.startsWith('sealfs unmount ')) {
        expect((await readMounts()).some((m) => m.mountpoint === inHome('Private'))).toBe(false);
        expect(await waitPidGone(serverPid!, 10_000)).toBe(true);
        serverPid = undefined;
      }
    }
  }, 180_000);

  it('the user inits a vault, mounts it, writes and reads through the mount, scrubs, backs up to a local rclone remote and unmounts', async () => {
    const setup = await runAs(user, ['sh', '-c', `mkdir -p ${vault} ${mnt} && printf %s "$0" > ${pw} && chmod 600 ${pw}`, PASSPHRASE]);
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

    const write = await runAs(user, ['sh', '-c', `printf %s "$0" > ${mnt}/note.txt && cat ${mnt}/note.txt && stat -c %U ${mnt}/note.txt`, NOTE]);
    expect(write.code, said(write)).toBe(0);
    expect(write.stdout).toBe(`${NOTE}${user.name}\n`);
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

  it("installs for every user with the README's line, as root (a fresh prefix for /usr/local)", async () => {
    const lines = commandLines(readmeBlock('**Install for every user** (`/usr/local/bin/sealfs`), as root:'));
    expect(lines).toEqual([`npm install -g --prefix /usr/local ./${TARBALL}`]);
    const install = await runDetached('bash', ['-c', lines[0]!.replaceAll('/usr/local', systemPrefix)], process.env, 180_000, { cwd: root });
    expect(install.code, said(install)).toBe(0);
    const version = await runAs(user, [join(systemPrefix, 'bin', 'sealfs'), '--version']);
    expect(version.code, said(version)).toBe(0);
    expect(version.stdout).toMatch(new RegExp(`^sealfs ${VERSION.replace(/\./g, '\\.')}\\n`));
  }, 240_000);

  it('the installed package brings completion and the man page: bash completion loads and completes, zsh completion loads, `man -l` renders in 80 columns, `man sealfs` finds it', async () => {
    const completion = await runAs(user, ['bash', '-c', 'source <(sealfs completion bash) && complete -p sealfs && COMP_WORDS=(sealfs sta) COMP_CWORD=1 && $(complete -p sealfs | cut -d" " -f3) sealfs sta sealfs && echo "${COMPREPLY[@]}"']);
    expect(completion.code, said(completion)).toBe(0);
    expect(completion.stderr).toBe('');
    expect(completion.stdout).toMatch(/^complete -F \S+ sealfs\nstatus\n$/);
    const zsh = await runAs(user, ['zsh', '-f', '-c', 'autoload -U compinit && compinit -u -D && source <(sealfs completion zsh) && print -r -- $_comps[sealfs]']);
    expect(zsh.code, said(zsh)).toBe(0);
    expect(zsh.stderr).toBe('');
    expect(zsh.stdout).toMatch(/^_\S+\n$/);

    // npm links the page of a global install into PREFIX/share/man/man1.
    const page = inHome('.local/share/man/man1/sealfs.1');
    expect(await realpath(page)).toBe(inHome('.local/lib/node_modules/sealfs/dist/man/sealfs.1'));
    const rendered = await runAs(user, ['env', 'MANWIDTH=80', 'man', '-l', page]);
    expect(rendered.code, said(rendered)).toBe(0);
    expect(rendered.stderr).toBe('');
    expect(rendered.stdout).toMatch(/^SEALFS\(1\) +User Commands +SEALFS\(1\)\n/);
    expect(rendered.stdout).toContain('sealfs init');
    expect(Math.max(...rendered.stdout.split('\n').map((line) => [...line].length))).toBeLessThanOrEqual(80);
    // `man sealfs` (README, "Using sealfs"): man-db derives ~/.local/share/man from ~/.local/bin
    // on the PATH, so the one-user install needs no MANPATH; a MANPATH naming it works too.
    for (const manpath of [[], [`MANPATH=${inHome('.local/share/man')}`]]) {
      const byName = await runAs(user, ['env', 'MANWIDTH=80', ...manpath, 'man', 'sealfs']);
      expect(byName.code, said(byName)).toBe(0);
      expect(byName.stderr).toBe('');
      expect(byName.stdout).toBe(rendered.stdout);
    }
  }, 60_000);

  it('sealfs info shows what the vault file says and that this user has its key; sealfs status lists no mount when none is up', async () => {
    const info = await sealfsAs(['info', vault, '--json']);
    expect(info.code, said(info)).toBe(EXIT.OK);
    expect(JSON.parse(info.stdout)).toEqual(
      expect.objectContaining({ vault: inHome(vault), version: 1, key: 'present', keyFile: expect.stringMatching(new RegExp(`^${inHome('.config/sealfs/')}[0-9a-f-]{36}\\.key$`)) }),
    );
    const text = await sealfsAs(['info', vault]);
    expect(text.code, said(text)).toBe(EXIT.OK);
    expect(text.stdout).toContain(`vault:        ${inHome(vault)}\n`);
    expect(text.stdout).toMatch(/^key: +present/m);
    const status = await sealfsAs(['status']);
    expect(status.code, said(status)).toBe(EXIT.OK);
    expect(status.stdout).toBe('No sealfs mounts of yours.\n');
  });

  it('root installs the mount helper from the installed package; the user mounts a `user` line of /etc/fstab with mount(8) and takes it down with umount; root mounts with mount -t fuse.sealfs', async () => {
    const helper = join(HELPER_DIR, HELPER_NAME);
    // /sbin's helper is the machine's: mount-fstab.test.ts uses it too.
    restore.push(await machineLock('sbin-mount-helper'));
    const previous = await readFile(helper).catch(() => undefined);
    if (previous !== undefined && !previous.toString('utf8').includes('sealfs mount-helper install')) throw new Error(`${helper} exists and was not written by sealfs; not replacing it`);
    restore.push(() => (previous !== undefined ? writeFile(helper, previous, { mode: 0o755 }) : rm(helper, { force: true })));
    const installed = await runDetached(join(systemPrefix, 'bin', 'sealfs'), ['mount-helper', 'install'], process.env, 30_000);
    expect(installed.code, said(installed)).toBe(EXIT.OK);
    expect(readFileSync(helper, 'utf8')).toContain(join(systemPrefix, 'lib/node_modules/sealfs/dist/src/cli/mounthelper.js'));

    // The README's line, for the vault of its "Using sealfs" steps, with the user's home for
    // /home/me; its passphrase file where the line says.
    const lines = commandLines(readmeBlock('**From /etc/fstab as an ordinary user.** A line with the `user` option (root writes it and'));
    expect(lines).toEqual([expect.stringMatching(/^\/home\/me\/Dropbox\/vault +\/home\/me\/Private +fuse\.sealfs +\S*\buser\b/)]);
    const line = lines[0]!.replaceAll('/home/me', user.home);
    const passFile = /passphrase-file=([^,\s]+)/.exec(line)?.[1];
    expect(passFile).toBe(inHome('.config/sealfs/passphrase'));
    const pass = await runAs(user, ['sh', '-c', 'umask 077 && printf %s "$0" > "$1"', PASSPHRASE, passFile!]);
    expect(pass.code, said(pass)).toBe(0);
    const readmeVault = inHome('Dropbox/vault');

    // One line in /etc/fstab (made if missing), under a comment that says whose it is; exactly these lines are taken out again.
    const fstab = '/etc/fstab';
    const before = existsSync(fstab) ? await readFile(fstab, 'utf8') : undefined;
    const added = `${before && !before.endsWith('\n') ? '\n' : ''}# sealfs install test ${root}: removed when the test ends\n${line}\n`;
    restore.push(async () => {
      const now = await readFile(fstab, 'utf8');
      const without = now.replace(added, '');
      if (before === undefined && without === '') await rm(fstab);
      else if (without !== now) await writeFile(fstab, without);
    });
    await appendFile(fstab, added);

    // A non-root mount(8) takes a `user` line of /etc/fstab by its mount point; it runs the
    // helper with its root rights dropped: the mount and its server are the user's, and
    // the key and log are found in the home the password database names.
    const mount = await runAs(user, ['mount', inHome(mnt)]);
    expect(mount.code, said(mount)).toBe(0);
    const entry = (await readMounts()).find((m) => m.mountpoint === inHome(mnt));
    expect(entry?.fstype).toBe('fuse.sealfs');
    expect(entry?.superOptions).toContain(`user_id=${user.uid}`);
    // `user` implies noexec; sealfs mounts are nosuid and nodev.
    expect(entry?.options).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
    const status = await sealfsAs(['status', '--json']);
    expect(status.code, said(status)).toBe(EXIT.OK);
    const mounts = (JSON.parse(status.stdout) as { mounts: { pid: number }[] }).mounts;
    expect(mounts).toEqual([expect.objectContaining({ mountpoint: inHome(mnt), vault: readmeVault, state: 'alive' })]);
    serverPid = mounts[0]!.pid;
    expect(Number(spawnSync('ps', ['-o', 'uid=', '-p', String(serverPid)], { encoding: 'utf8' }).stdout.trim())).toBe(user.uid);
    const listed = await sealfsAs(['status']);
    expect(listed.stdout).toMatch(new RegExp(`^${inHome(mnt)}: mounted\n +vault: +${readmeVault}\n`));
    const read = await runAs(user, ['cat', `${mnt}/readme.txt`]);
    expect(read.stdout, said(read)).toBe(NOTE);

    const umount = await runAs(user, ['umount', inHome(mnt)]);
    expect(umount.code, said(umount)).toBe(0);
    expect((await readMounts()).some((m) => m.mountpoint === inHome(mnt))).toBe(false);
    expect(await waitPidGone(serverPid, 10_000)).toBe(true);
    serverPid = undefined;
    expect((await sealfsAs(['status'])).stdout).toBe('No sealfs mounts of yours.\n');

    // Root, with the installed helper: read-only, so nothing in the user's vault becomes root's.
    const rootMount = await runDetached(
      'mount',
      ['-t', 'fuse.sealfs', inHome(vault), inHome(mnt), '-o', `ro,passphrase-file=${inHome(pw)},keystore=${inHome('.config/sealfs')},log-file=${join(root, 'root-mount.log')}`],
      process.env,
      60_000,
    );
    expect(rootMount.code, said(rootMount)).toBe(0);
    serverPid = Number(/server pid (\d+)/.exec(rootMount.stderr)?.[1]);
    expect(serverPid, said(rootMount)).toBeGreaterThan(0);
    expect((await readMounts()).find((m) => m.mountpoint === inHome(mnt))?.superOptions).toContain('user_id=0');
    expect(await readFile(join(inHome(mnt), 'note.txt'), 'utf8')).toBe(NOTE);
    const rootUmount = await runDetached('umount', [inHome(mnt)], process.env, 30_000);
    expect(rootUmount.code, said(rootUmount)).toBe(0);
    expect(await waitPidGone(serverPid, 10_000)).toBe(true);
    serverPid = undefined;
  }, 480_000);

  it('uninstalls both ways', async () => {
    const uninstallSystem = await runDetached('npm', ['uninstall', '-g', '--prefix', systemPrefix, 'sealfs'], process.env, 120_000, { cwd: root });
    expect(uninstallSystem.code, said(uninstallSystem)).toBe(0);
    expect(spawnSync('test', ['-e', join(systemPrefix, 'bin', 'sealfs')]).status).not.toBe(0);
    expect(spawnSync('test', ['-e', join(systemPrefix, 'lib', 'node_modules', 'sealfs')]).status).not.toBe(0);

    const uninstallUser = await runAs(user, ['npm', 'uninstall', '-g', '--prefix', inHome('.local'), 'sealfs'], { timeoutMs: 120_000 });
    expect(uninstallUser.code, said(uninstallUser)).toBe(0);
    const gone = await runAs(user, ['sh', '-c', 'command -v sealfs; ls .local/lib/node_modules; ls .local/share/man/man1']);
    expect(gone.stdout).toBe('');
  }, 240_000);

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
