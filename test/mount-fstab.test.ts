/**
 * Mounting the way Linux users mount, for real: util-linux mount(8) running the
 * /sbin/mount.fuse.sealfs helper that `sealfs mount-helper install` writes (for
 * `mount -t fuse.sealfs` and for fstab lines, read from a temporary fstab with `mount -T`),
 * `umount` taking the mount down, and the systemd user unit of `sealfs autostart enable`:
 * its ExecStart parsed out of the file and run as systemd runs it (mounts and returns, the
 * PIDFile names the server), its ExecStop unmounting; with a passphrase file, and with the
 * passphrase in a real Secret Service (gnome-keyring on a private D-Bus session). The
 * README's fstab line and .mount unit are taken from the README and run with this test's paths.
 *
 * Needs root (mount(8) looks for helpers in /sbin only; the helper that was there before is
 * put back afterwards). systemd itself does not run here: `systemd-analyze verify` checks
 * the unit file, and this file plays the service manager's part.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { readMounts } from '../src/fs/mountinfo.js';
import { shellQuote, unitName } from '../src/cli/autostart.js';
import { HELPER_DIR, HELPER_NAME } from '../src/cli/mountopts.js';
import { endProcess, forceUnmount, machineLock } from '../bench/lib/proc.js';
import { alive, FUSE_PROBLEM, isMounted, serversFor, useMountHarness, waitFor, type TestVault } from './mount-helpers.js';
import { REPO } from './build.js';

const IS_ROOT = process.getuid?.() === 0;
const SKIP = FUSE_PROBLEM ?? (IS_ROOT ? undefined : 'needs root (mount(8) runs helpers from /sbin only)');
if (SKIP) console.warn(`mount-fstab: skipped: ${SKIP}`);

const HELPER = join(HELPER_DIR, HELPER_NAME);
const onPath = (name: string) => ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((dir) => existsSync(join(dir, name)));
const KEYRING_PROBLEM = ['dbus-run-session', 'gnome-keyring-daemon', 'secret-tool'].filter((p) => !onPath(p)).map((p) => `${p} is missing`)[0];
if (!SKIP && KEYRING_PROBLEM) console.warn(`mount-fstab: keyring test skipped: ${KEYRING_PROBLEM} (scripts/setup.sh installs gnome-keyring and libsecret-tools)`);

/** The environment a systemd user manager gives its services (no XDG_* overrides, the default PATH). */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * A command line of an Exec= setting, split as systemd does for what `sealfs autostart`
 * writes: words separated by spaces, double-quoted words with C escapes (\\ and \"), `%%`
 * for `%` and `$$` for `$`. Any other specifier or variable fails the test: the unit must
 * not depend on systemd expanding something this test does not.
 */
function splitExec(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    let word = '';
    const quoted = line[i] === '"';
    if (quoted) i++;
    for (; i < line.length; i++) {
      const ch = line[i]!;
      if (quoted && ch === '"') {
        i++;
        break;
      }
      if (!quoted && ch === ' ') break;
      if (ch === '\\') {
        const next = line[++i]!;
        if (next !== '\\' && next !== '"') throw new Error(`unexpected escape \\${next} in ${line}`);
        word += next;
      } else if (ch === '%' || ch === '$') {
        if (line[i + 1] !== ch) throw new Error(`unexpected ${ch} expansion in ${line}`);
        word += ch;
        i++;
      } else word += ch;
    }
    words.push(word);
  }
  return words;
}

/** A setting of a unit file (the last one wins, as in systemd). */
function setting(unit: string, name: string): string {
  const values = [...unit.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1]!);
  expect(values.length, `${name}= in the unit`).toBeGreaterThan(0);
  return values.at(-1)!;
}

describe.skipIf(SKIP)('mount(8), fstab and autostart units', () => {
  const h = useMountHarness('fstab');
  let previousHelper: Buffer | undefined;
  /** Mount points and pid files of this test: taken down and ended after it, whatever happened. */
  const mountpoints = new Set<string>();
  const pidFiles = new Set<string>();

  /** /sbin's helper is the machine's: the install test uses it too (bench/lib/proc.ts machineLock). */
  let unlock: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    unlock = await machineLock('sbin-mount-helper');
    previousHelper = await readFile(HELPER).catch(() => undefined);
    // The helper script is written by the command under test (it refuses a file it did not write).
    if (previousHelper !== undefined && !previousHelper.toString('utf8').includes('sealfs mount-helper install')) {
      throw new Error(`${HELPER} exists and was not written by sealfs; not replacing it`);
    }
    const r = await h.sealfs(['mount-helper', 'install']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(HELPER, 'utf8')).toContain(join(h.cli, '..', 'mounthelper.js'));
  }, 360_000);

  afterAll(async () => {
    if (!unlock) return;
    if (previousHelper !== undefined) await writeFile(HELPER, previousHelper, { mode: 0o755 });
    else await rm(HELPER, { force: true });
    await unlock();
  });

  afterEach(async () => {
    for (const mnt of mountpoints) await forceUnmount(mnt, 15_000);
    mountpoints.clear();
    for (const file of pidFiles) {
      const pid = Number.parseInt((await readFile(file, 'utf8').catch(() => '')).trim(), 10);
      if (!(pid > 0) || !alive(pid)) continue;
      await waitFor(`server ${pid} to end`, () => !alive(pid), 5000).catch(() => undefined);
      if (alive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(h.cli)) await endProcess(pid, 5000);
    }
    pidFiles.clear();
  }, 90_000);

  /** A vault whose mount point has a space in its name (fstab writes it \040, units escape it). */
  async function vault(): Promise<TestVault & { spaced: string }> {
    const v = await h.vault();
    const spaced = join(v.dir, 'My Drive');
    await mkdir(spaced);
    mountpoints.add(v.mnt).add(spaced);
    pidFiles.add(v.pidFile);
    return { ...v, spaced };
  }

  const sealfsOptions = (v: TestVault) => `keystore=${v.keystore},pid-file=${v.pidFile},log-file=${v.logFile}`;

  /** The kernel's per-mount flags of a mount point (field 6 of /proc/self/mountinfo). */
  async function mountFlags(mnt: string): Promise<string[]> {
    const escaped = mnt.replace(/ /g, '\\040');
    const line = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === escaped);
    expect(line, `${mnt} in mountinfo`).toBeDefined();
    return line!.split(' ')[5]!.split(',');
  }

  /** The server of a mount: the pid its pid file names, still serving. */
  async function serverOf(v: TestVault): Promise<number> {
    const pid = Number.parseInt((await readFile(v.pidFile, 'utf8')).trim(), 10);
    expect(alive(pid)).toBe(true);
    return pid;
  }

  async function umountOk(mnt: string, pid: number): Promise<void> {
    const u = await h.spawn('umount', [mnt]);
    expect(u.code, u.stderr).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    await waitFor(`server ${pid} to end after umount`, () => !alive(pid), 15_000);
  }

  it('mount -t fuse.sealfs … -o passphrase-file=…,ro,noexec mounts read-only and noexec; umount takes it down and ends the server', async () => {
    const v = await vault();
    const m = await h.spawn('mount', ['-t', 'fuse.sealfs', v.cipher, v.mnt, '-o', `passphrase-file=${v.pass},${sealfsOptions(v)},ro,nodev,nosuid,noexec`]);
    expect(m.code, m.stderr).toBe(0);
    expect((await readMounts()).find((r) => r.mountpoint === v.mnt)?.fstype).toBe('fuse.sealfs');
    // The kernel's per-mount options: read-only, no devices, no setuid, no programs run.
    expect(await mountFlags(v.mnt)).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    await expect(writeFile(join(v.mnt, 'x'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await umountOk(v.mnt, await serverOf(v));
  });

  it('an fstab line (noauto, x-systemd.automount, _netdev, user; extpass with \\040; a mount point with a space) mounts with `mount MOUNTPOINT`', async () => {
    const v = await vault();
    const fstab = join(v.dir, 'fstab');
    const esc = (path: string) => path.replace(/ /g, '\\040');
    const options = `noauto,x-systemd.automount,x-systemd.idle-timeout=600,_netdev,nofail,user,exec,extpass=cat\\040${esc(v.pass)},${sealfsOptions(v)}`;
    await writeFile(fstab, `# a comment\n${esc(v.cipher)} ${esc(v.spaced)} fuse.sealfs ${options} 0 0\n`);
    mountpoints.add(v.spaced);

    const m = await h.spawn('mount', ['-T', fstab, v.spaced]);
    expect(m.code, m.stderr).toBe(0);
    expect(await isMounted(v.spaced)).toBe(true);
    // `user` implies noexec; the later `exec` lifts it, as mount(8) reads options: a script runs.
    expect(await mountFlags(v.spaced)).not.toContain('noexec');
    await writeFile(join(v.spaced, 'run.sh'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
    expect((await h.spawn(join(v.spaced, 'run.sh'), [])).stdout).toBe('ran\n');
    const secret = randomBytes(8).toString('hex');
    await writeFile(join(v.spaced, 'note.txt'), secret);
    expect(await readFile(join(v.spaced, 'note.txt'), 'utf8')).toBe(secret);
    expect(await readdir(v.cipher)).not.toContain('note.txt');
    await umountOk(v.spaced, await serverOf(v));

    // By its source too, and `-o ro` on the command line is added to the line's options.
    const again = await h.spawn('mount', ['-T', fstab, '-o', 'ro', v.cipher]);
    expect(again.code, again.stderr).toBe(0);
    expect(await readFile(join(v.spaced, 'note.txt'), 'utf8')).toBe(secret);
    await expect(writeFile(join(v.spaced, 'other'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await umountOk(v.spaced, await serverOf(v));
  });

  it('mount -t fuse.sealfs without a passphrase option asks at the terminal', async () => {
    const v = await vault();
    const mount = ['mount', '-t', 'fuse.sealfs', v.cipher, v.mnt, '-o', sealfsOptions(v)].map(shellQuote).join(' ');
    const r = await h.spawn('sh', ['-c', `(sleep 1; printf '%s\\r' "$PASSPHRASE"; sleep 3) | script -qec "$MOUNT" /dev/null`], {
      env: { ...h.env(), PASSPHRASE: v.passphrase, MOUNT: mount },
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`Enter passphrase for ${v.cipher}: `);
    await umountOk(v.mnt, await serverOf(v));
  });

  it('refuses an unknown option by name, and passes on the exit code of a wrong passphrase; nothing is mounted', async () => {
    const v = await vault();
    const bad = await h.spawn('mount', ['-t', 'fuse.sealfs', v.cipher, v.mnt, '-o', `passphrase-file=${v.pass},${sealfsOptions(v)},uid=1000`]);
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toContain('mount.fuse.sealfs: unknown mount option "uid=1000"');
    const wrong = join(v.dir, 'wrong');
    await writeFile(wrong, 'not the passphrase\n');
    const denied = await h.spawn('mount', ['-t', 'fuse.sealfs', v.cipher, v.mnt, '-o', `passphrase-file=${wrong},${sealfsOptions(v)}`]);
    expect(denied.code).toBe(EXIT.KEY);
    expect(denied.stderr).toContain('wrong passphrase');
    expect(await isMounted(v.mnt)).toBe(false);
  });

  /**
   * The README's examples (section "Mount from fstab / at login") with this test's paths in
   * place of /srv/vault, /srv/private, /root/.sealfs-pass and /root/.config/sealfs.
   */
  async function readmeExample(v: TestVault, pick: (blocks: string[]) => string | undefined): Promise<string> {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    const section = readme.split(/^### Mount from fstab \/ at login$/m)[1]?.split(/^### /m)[0] ?? '';
    const block = pick([...section.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]!));
    expect(block, 'the example in the README').toBeDefined();
    return block!.replaceAll('/srv/vault', v.cipher).replaceAll('/srv/private', v.mnt).replaceAll('/root/.sealfs-pass', v.pass).replaceAll('/root/.config/sealfs', v.keystore);
  }

  /** The one server serving v's vault (found in /proc: the README's examples write no pid file). */
  async function theServer(v: TestVault): Promise<number> {
    const pids = await serversFor(h.cli, v.cipher);
    expect(pids).toHaveLength(1);
    return pids[0]!;
  }

  it("the README's fstab line mounts with `mount MOUNTPOINT` and `umount` takes it down", async () => {
    const v = await vault();
    const line = await readmeExample(v, (blocks) => blocks.find((b) => / fuse\.sealfs /.test(b) && !b.includes('mount -t')));
    const fstab = join(v.dir, 'fstab');
    await writeFile(fstab, line);
    const m = await h.spawn('mount', ['-T', fstab, v.mnt]);
    expect(m.code, m.stderr).toBe(0);
    await writeFile(join(v.mnt, 'hello.txt'), 'hello');
    expect(await readFile(join(v.mnt, 'hello.txt'), 'utf8')).toBe('hello');
    await umountOk(v.mnt, await theServer(v));
  });

  it("the README's .mount unit verifies, and systemd's mount and umount commands for it work", async () => {
    const v = await vault();
    const text = await readmeExample(v, (blocks) => blocks.find((b) => b.includes('[Mount]')));
    const escaped = await h.spawn('systemd-escape', ['--path', '--suffix=mount', v.mnt]);
    const path = join(v.dir, escaped.stdout.trim());
    await writeFile(path, text);
    const verify = await h.spawn('systemd-analyze', ['verify', path]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stderr).toBe('');
    // What systemd runs for a mount unit: mount WHAT WHERE -t TYPE -o OPTIONS; then umount -c WHERE.
    const mount = await h.spawn('mount', [setting(text, 'What'), setting(text, 'Where'), '-t', setting(text, 'Type'), '-o', setting(text, 'Options')]);
    expect(mount.code, mount.stderr).toBe(0);
    expect(await isMounted(v.mnt)).toBe(true);
    const pid = await theServer(v);
    const u = await h.spawn('umount', ['-c', setting(text, 'Where')]);
    expect(u.code, u.stderr).toBe(0);
    expect(await isMounted(v.mnt)).toBe(false);
    await waitFor(`server ${pid} to end after umount`, () => !alive(pid), 15_000);
  });

  /** `sealfs autostart enable` into this test's config folder; returns the unit file's text. */
  async function enable(v: TestVault & { spaced: string }, passphrase: string[]): Promise<{ unit: string; stderr: string }> {
    const r = await h.sealfs(['autostart', 'enable', v.cipher, v.spaced, '--keystore', v.keystore, ...passphrase]);
    expect(r.code, r.stderr).toBe(0);
    const path = join(h.env().XDG_CONFIG_HOME!, 'systemd', 'user', unitName(v.spaced));
    // The unit's name is the one systemd's own escaping gives the mount point.
    const escaped = await h.spawn('systemd-escape', ['--path', '--suffix=service', v.spaced]);
    expect(`sealfs-${escaped.stdout.trim()}`).toBe(unitName(v.spaced));
    const unit = await readFile(path, 'utf8');
    const runtime = join(h.root, 'runtime');
    await mkdir(runtime, { recursive: true, mode: 0o700 });
    const verify = await h.spawn('systemd-analyze', ['--user', 'verify', path], { env: { ...h.env(), XDG_RUNTIME_DIR: runtime } });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stderr).toBe('');
    return { unit, stderr: r.stderr };
  }

  /** Runs the unit's ExecStart as systemd does (Type=forking: it returns once mounted), checks PIDFile, then ExecStop. */
  async function startAndStop(v: TestVault & { spaced: string }, unit: string, run: (argv: string[]) => Promise<{ code: number | null; stderr: string }>): Promise<void> {
    expect(setting(unit, 'Type')).toBe('forking');
    const pidFile = setting(unit, 'PIDFile').replace(/%%/g, '%');
    pidFiles.add(pidFile);
    const start = await run(splitExec(setting(unit, 'ExecStart')));
    expect(start.code, start.stderr).toBe(0);
    expect(await isMounted(v.spaced)).toBe(true);
    const pid = Number.parseInt((await readFile(pidFile, 'utf8')).trim(), 10);
    expect(alive(pid)).toBe(true);
    // The server shows as `sealfs: VAULT on MOUNTPOINT` (its process title).
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).toMatch(new RegExp(`^sealfs: .+ on ${v.spaced.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    await writeFile(join(v.spaced, 'a.txt'), 'autostart');

    const stopArgv = splitExec(setting(unit, 'ExecStop'));
    const stop = await h.spawn(stopArgv[0]!, stopArgv.slice(1), { env: { HOME: h.env().HOME, PATH: SYSTEMD_PATH } });
    expect(stop.code, stop.stderr).toBe(0);
    expect(await isMounted(v.spaced)).toBe(false);
    await waitFor(`server ${pid} to end after ExecStop`, () => !alive(pid), 15_000);
  }

  it('autostart with a passphrase file: the unit verifies, its ExecStart mounts and ExecStop unmounts', async () => {
    const v = await vault();
    const { unit } = await enable(v, ['--passphrase-file', v.pass]);
    await startAndStop(v, unit, (argv) => h.spawn(argv[0]!, argv.slice(1), { env: { HOME: h.env().HOME, PATH: SYSTEMD_PATH } }));
  });

  it.skipIf(KEYRING_PROBLEM)('autostart with the keyring: the printed secret-tool command stores the passphrase, ExecStart reads it from gnome-keyring', async () => {
    const v = await vault();
    const { unit, stderr } = await enable(v, ['--keyring']);
    const store = /^ {2}(\S*secret-tool store .*)$/m.exec(stderr)?.[1];
    expect(store, stderr).toBeDefined();
    const runtime = join(h.root, 'keyring-runtime');
    await mkdir(runtime, { recursive: true, mode: 0o700 });
    const env = { HOME: h.env().HOME, PATH: SYSTEMD_PATH, XDG_RUNTIME_DIR: runtime, XDG_DATA_HOME: join(h.root, 'keyring-data'), STORE: store!, PASS: v.pass };
    // A login session's keyring: started and unlocked, the passphrase stored as the user
    // would (the printed command, passphrase on stdin), then the service started.
    const script = 'printf %s keyring-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null && sh -c "$STORE" < "$PASS" && exec "$@"';
    await startAndStop(v, unit, (argv) => h.spawn('dbus-run-session', ['--', 'sh', '-c', script, 'sh', ...argv], { env }));
  });

  it.skipIf(KEYRING_PROBLEM)('autostart enable --keyring in a terminal asks the passphrase, asks again when it is wrong, and stores the right one', async () => {
    const v = await vault();
    const runtime = join(h.root, 'keyring-runtime-2');
    await mkdir(runtime, { recursive: true, mode: 0o700 });
    const vaultId = JSON.parse((await readFile(join(v.cipher, 'sealfs.vault'), 'utf8')).split('\n')[0]!).vaultId as string;
    const enable = [process.execPath, h.cli, 'autostart', 'enable', v.cipher, v.spaced, '--keyring', '--keystore', v.keystore].map(shellQuote).join(' ');
    // `script` gives the command a terminal; each answer is typed once its prompt is up.
    const script =
      'printf %s keyring-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null && ' +
      `(sleep 1; printf 'wrong one\\r'; sleep 2; printf '%s\\r' "$PASSPHRASE"; sleep 4) | script -qec "$ENABLE" /dev/null && ` +
      'echo "keyring: [$(secret-tool lookup application sealfs vault "$VAULT_ID")]"';
    const env = { ...h.env(), XDG_RUNTIME_DIR: runtime, XDG_DATA_HOME: join(h.root, 'keyring-data-2'), PASSPHRASE: v.passphrase, ENABLE: enable, VAULT_ID: vaultId };
    const r = await h.spawn('dbus-run-session', ['--', 'sh', '-c', script], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Wrong passphrase, try again.');
    expect(r.stdout).toContain('Stored the passphrase in the keyring.');
    expect(r.stdout).toContain(`keyring: [${v.passphrase}]`);
  }, 60_000);
});
