/**
 * The mount helper's translation of mount(8)'s command line (src/cli/mountopts.ts) and
 * `sealfs autostart` (src/cli/autostart.ts; the built command, whose unit names its own
 * main.js): which options reach
 * `sealfs mount` and which are refused, unit names as `systemd-escape --path` makes them,
 * Exec= quoting, and enable/list/disable on a temporary config folder without systemd.
 * And the README's nightly scrub+backup service: written by its snippet with the real paths,
 * verified by systemd-analyze, its scrub step run. The real mounts through mount(8), fstab
 * lines and the generated unit's ExecStart/ExecStop are in mount-fstab.test.ts.
 */
import { realpathSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapePath, execArg, keyringLookup, unitName, UNIT_MARKER, userUnitDir } from '../src/cli/autostart.js';
import { EXIT } from '../src/cli/exit.js';
import { helperCommand, helperScript, splitOptions } from '../src/cli/mountopts.js';
import { runBuiltCli } from './helpers-cli.js';
import { CLI, REPO } from './build.js';
import { runDetached } from '../bench/lib/proc.js';

describe('mount.fuse.sealfs command line', () => {
  const base = ['/v', '/m'];
  const sealfsArgs = (...args: string[]) => helperCommand([...base, ...args]).argv;

  it('turns sealfs options into `sealfs mount` flags and leaves mount(8)/kernel options out', () => {
    expect(sealfsArgs('-o', 'rw,nosuid,nodev,exec,user,_netdev,nofail,noatime,passphrase-file=/p,keystore=/k')).toEqual(['mount', '/v', '/m', '--passphrase-file', '/p', '--keystore', '/k']);
    expect(sealfsArgs('-o', 'ro,allow_other,extpass=cat /p,others-mode=750,cache_time=0.5')).toEqual([
      'mount', '/v', '/m', '--read-only', '--allow-other', '--extpass', 'cat /p', '--others-mode', '750', '--cache-time', '0.5',
    ]);
    // What systemd and fstab add (mount(8) strips most of it, but a direct call may carry it).
    expect(sealfsArgs('-o', 'noauto,x-systemd.automount,x-systemd.idle-timeout=60,comment=x,user=alice,defaults')).toEqual(['mount', '/v', '/m']);
    // The last of ro/rw wins, as in mount(8).
    expect(sealfsArgs('-o', 'ro', '-o', 'rw')).toEqual(['mount', '/v', '/m']);
    expect(sealfsArgs('-r')).toEqual(['mount', '/v', '/m', '--read-only']);
  });

  it('takes the flags and the -t mount(8) passes, and does nothing for -f (fake)', () => {
    expect(sealfsArgs('-n', '-v', '-t', 'fuse.sealfs', '-opassphrase-file=/p')).toEqual(['mount', '/v', '/m', '--passphrase-file', '/p']);
    expect(helperCommand([...base, '-f', '-o', 'passphrase-file=/p']).argv).toBeUndefined();
    expect(() => helperCommand([...base, '-t', 'fuse.sshfs'])).toThrow(/fuse\.sealfs, not fuse\.sshfs/);
  });

  it('keeps commas inside double quotes (fstab: extpass="cmd a,b")', () => {
    expect(splitOptions('ro,extpass="printf a,b",keystore=/k')).toEqual(['ro', 'extpass=printf a,b', 'keystore=/k']);
    expect(() => splitOptions('extpass="x')).toThrow(/unbalanced double quote/);
  });

  it('refuses an unknown option by name (usage), unless -s (sloppy) makes it a warning', () => {
    for (const bad of ['bogus', 'uid=1000', 'allow_root', 'passphrase=secret', 'allow_other=1']) {
      let caught: unknown;
      try {
        helperCommand([...base, '-o', bad]);
      } catch (err) {
        caught = err;
      }
      expect((caught as Error).message, bad).toContain(`unknown mount option "${bad}"`);
      expect((caught as Error).message).toMatch(/passphrase-file=…/);
      expect((caught as { exitCode: number }).exitCode).toBe(EXIT.USAGE);
    }
    const sloppy = helperCommand([...base, '-s', '-o', 'bogus,ro']);
    expect(sloppy.argv).toEqual(['mount', '/v', '/m', '--read-only']);
    expect(sloppy.warnings).toEqual(['ignoring the unknown mount option "bogus"']);
  });

  it('applies noexec (which `user` implies) unless a later exec lifts it, and needs values and both paths', () => {
    expect(sealfsArgs('-o', 'rw,noexec,nosuid,nodev,user,passphrase-file=/p')).toEqual(['mount', '/v', '/m', '--noexec', '--passphrase-file', '/p']);
    expect(sealfsArgs('-o', 'noexec,exec')).toEqual(['mount', '/v', '/m']);
    expect(helperCommand([...base, '-o', 'noexec']).warnings).toEqual([]);
    expect(() => helperCommand([...base, '-o', 'passphrase-file'])).toThrow(/passphrase-file needs a value/);
    expect(() => helperCommand(['/v'])).toThrow(/usage: mount\.fuse\.sealfs CIPHERDIR MOUNTPOINT/);
    expect(() => helperCommand([...base, '-N', '1'])).toThrow(/namespace/);
  });

  it('installs a helper script that runs node and the helper by absolute, quoted paths', () => {
    expect(helperScript('/usr/bin/node', "/opt/it's/mounthelper.js")).toBe(
      "#!/bin/sh\n# Written by `sealfs mount-helper install`: mount(8) runs it for fuse.sealfs mounts.\nexec '/usr/bin/node' '/opt/it'\\''s/mounthelper.js' \"$@\"\n",
    );
  });
});

describe('autostart unit text', () => {
  it('names units as systemd-escape --path does (outputs of systemd 252 for these paths)', () => {
    expect(escapePath('/home/u/My Drive')).toBe('home-u-My\\x20Drive');
    expect(escapePath('/home/u/.hidden/x-y')).toBe('home-u-.hidden-x\\x2dy');
    expect(escapePath('/')).toBe('-');
    expect(escapePath('/a//b/')).toBe('a-b');
    expect(escapePath('/tmp/ü%$x')).toBe('tmp-\\xc3\\xbc\\x25\\x24x');
    expect(escapePath('/.a')).toBe('\\x2ea');
    expect(unitName('/home/u/My Drive')).toBe('sealfs-home-u-My\\x20Drive.service');
  });

  it('quotes Exec= arguments: backslash, quote, % (specifier) and $ (variable) escaped', () => {
    expect(execArg('/a b')).toBe('"/a b"');
    expect(execArg('say "hi" \\ 100% $HOME')).toBe('"say \\"hi\\" \\\\ 100%% $$HOME"');
    expect(() => execArg('a\nb')).toThrow(/control character/);
  });

  it('looks the passphrase up by the vault id only (a tampered id never reaches the shell)', () => {
    expect(keyringLookup('/usr/bin/secret-tool', '0f8fad5b-d9cb-469f-a165-70867728950e')).toBe('/usr/bin/secret-tool lookup application sealfs vault 0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(() => keyringLookup('secret-tool', 'x; rm -rf ~')).toThrow(/invalid vault id/);
  });

  it('puts units where systemctl --user looks: $XDG_CONFIG_HOME/systemd/user, else ~/.config/systemd/user', () => {
    expect(userUnitDir({ XDG_CONFIG_HOME: '/c', HOME: '/h' })).toBe('/c/systemd/user');
    expect(userUnitDir({ XDG_CONFIG_HOME: 'relative', HOME: '/h' })).toBe('/h/.config/systemd/user');
  });
});

describe('sealfs autostart enable/list/disable (no systemd --user here)', () => {
  let root: string;
  let env: NodeJS.ProcessEnv;
  let vault: string;
  let mnt: string;
  let pass: string;
  let keystore: string;
  let units: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sealfs-autostart-'));
    vault = join(root, 'vault');
    mnt = join(root, 'My Drive');
    pass = join(root, 'pass');
    keystore = join(root, 'keys');
    const bin = join(root, 'bin');
    await mkdir(mnt);
    await mkdir(bin);
    // A secret-tool on PATH (never run here: without a terminal the store command is printed).
    await writeFile(join(bin, 'secret-tool'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    await writeFile(pass, 'autostart test passphrase\n', { mode: 0o600 });
    env = { HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'config'), XDG_STATE_HOME: join(root, 'state'), PATH: bin };
    units = join(root, 'config', 'systemd', 'user');
    const init = await runBuiltCli(['init', vault, '--keystore', keystore, '--passphrase-file', pass, '--kdf-target-ms', '20'], env);
    expect(init.code, init.stderr).toBe(0);
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('writes the unit of a passphrase-file autostart and says what to run without systemd --user', async () => {
    const r = await runBuiltCli(['autostart', 'enable', vault, mnt, '--passphrase-file', pass, '--keystore', keystore], env);
    expect(r.code, r.stderr).toBe(0);
    const path = join(units, 'sealfs-' + escapePath(mnt) + '.service');
    const text = await readFile(path, 'utf8');
    expect(text.startsWith(UNIT_MARKER)).toBe(true);
    expect(text).toMatch(/^Type=forking$/m);
    expect(text).toContain(`ExecStart="${process.execPath}" `);
    expect(text).toContain(`"mount" "${vault}" "${mnt}" "--keystore" "${keystore}" "--passphrase-file" "${pass}" "--pid-file" "${join(root, 'state', 'sealfs')}/autostart-`);
    expect(text).toMatch(new RegExp(`^ExecStop=.*"unmount" "${mnt}"$`, 'm'));
    expect(r.stderr).toContain(`systemctl --user daemon-reload && systemctl --user enable 'sealfs-${escapePath(mnt)}.service'`);
    expect((await stat(path)).mode & 0o777).toBe(0o644);

    const list = await runBuiltCli(['autostart', 'list'], env);
    expect(list.stdout).toBe(`sealfs-${escapePath(mnt)}.service\t${vault} on ${mnt}\n`);
  });

  it('with --keyring, reads the passphrase with secret-tool and prints the store command when there is no terminal', async () => {
    const r = await runBuiltCli(['autostart', 'enable', vault, mnt, '--keyring', '--keystore', keystore], env);
    expect(r.code, r.stderr).toBe(0);
    const text = await readFile(join(units, unitName(mnt)), 'utf8');
    const vaultId = JSON.parse((await readFile(join(vault, 'sealfs.vault'), 'utf8')).split('\n')[0]!).vaultId as string;
    expect(text).toContain(`"--extpass" "${join(root, 'bin', 'secret-tool')} lookup application sealfs vault ${vaultId}"`);
    expect(r.stderr).toContain(`${join(root, 'bin', 'secret-tool')} store '--label=sealfs vault ${vaultId} (${vault})' application sealfs vault ${vaultId}`);
  });

  it('refuses without a passphrase source, for a folder that is no vault, with a passphrase file that does not unlock it, and over a unit it did not write', async () => {
    const none = await runBuiltCli(['autostart', 'enable', vault, mnt], env);
    expect(none.code).toBe(EXIT.USAGE);
    expect(none.stderr).toMatch(/--keyring .* or --passphrase-file FILE/);
    const notVault = await runBuiltCli(['autostart', 'enable', mnt, vault, '--passphrase-file', pass], env);
    expect(notVault.code).toBe(EXIT.VAULT);
    // The passphrase file is tried now, not first at login.
    const wrong = join(root, 'wrong');
    await writeFile(wrong, 'not the passphrase\n', { mode: 0o600 });
    const denied = await runBuiltCli(['autostart', 'enable', vault, mnt, '--passphrase-file', wrong, '--keystore', keystore], env);
    expect(denied.code).toBe(EXIT.KEY);
    expect(denied.stderr).toContain('wrong passphrase');
    const noKey = await runBuiltCli(['autostart', 'enable', vault, mnt, '--passphrase-file', pass, '--keystore', join(root, 'empty-keystore')], env);
    expect(noKey.code).toBe(EXIT.KEY);
    expect(await readFile(join(units, unitName(mnt)), 'utf8'), 'the unit of the previous enable, untouched').toContain('"--extpass"');
    const other = join(root, 'other');
    await mkdir(other);
    await writeFile(join(units, unitName(other)), '[Service]\nExecStart=/bin/true\n');
    const foreign = await runBuiltCli(['autostart', 'enable', vault, other, '--passphrase-file', pass, '--keystore', keystore], env);
    expect(foreign.code).toBe(EXIT.IO);
    expect(foreign.stderr).toContain('was not written by sealfs');
    expect(await readFile(join(units, unitName(other)), 'utf8')).toBe('[Service]\nExecStart=/bin/true\n');
    const keep = await runBuiltCli(['autostart', 'disable', other], env);
    expect(keep.code).toBe(EXIT.IO);
    await rm(join(units, unitName(other)));
  });

  it('disable removes the unit; a second disable says there is none', async () => {
    const r = await runBuiltCli(['autostart', 'disable', mnt], env);
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(units)).toEqual([]);
    const again = await runBuiltCli(['autostart', 'disable', mnt], env);
    expect(again.code).toBe(EXIT.USAGE);
    expect(again.stderr).toContain(`no autostart for ${mnt}`);
  });
});

describe("the README's nightly scrub+backup service", () => {
  let root: string;
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('is written with the real paths of node and the sealfs command, verifies, and its scrub step runs', async () => {
    root = await mkdtemp(join(tmpdir(), 'sealfs-nightly-'));
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    const snippet = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((block) => block.includes('sealfs-nightly.service <<'));
    expect(snippet, 'README: the ```sh block that writes sealfs-nightly.service').toBeDefined();
    // `sealfs` on PATH as npm installs it: a symlink to main.js.
    const home = join(root, 'home');
    const bin = join(root, 'bin');
    await mkdir(bin, { recursive: true });
    await symlink(CLI, join(bin, 'sealfs'));
    await symlink(process.execPath, join(bin, 'node'));
    const env = { HOME: home, PATH: `${bin}:/usr/bin:/bin` };
    const wrote = await runDetached('bash', ['-euc', snippet!], env);
    expect(wrote.code, wrote.stderr).toBe(0);
    const unitPath = join(home, '.config', 'systemd', 'user', 'sealfs-nightly.service');
    const unit = await readFile(unitPath, 'utf8');
    const starts = [...unit.matchAll(/^ExecStart=(.*)$/gm)].map((m) => m[1]!.split(' '));
    expect(starts.map((argv) => argv.slice(0, 3))).toEqual([
      [realpathSync(process.execPath), realpathSync(CLI), 'scrub'],
      [realpathSync(process.execPath), realpathSync(CLI), 'backup'],
    ]);
    const runtime = join(root, 'runtime');
    await mkdir(runtime, { mode: 0o700 });
    const verify = await runDetached('systemd-analyze', ['--user', 'verify', unitPath], { ...env, XDG_RUNTIME_DIR: runtime });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stderr).toBe('');

    // The scrub step, %h expanded as systemd does, on the vault and passphrase file it names.
    const scrub = starts[0]!.map((arg) => arg.replace(/^%h/, home));
    await mkdir(join(home, '.config', 'sealfs'), { recursive: true });
    await writeFile(scrub[scrub.indexOf('--passphrase-file') + 1]!, 'nightly test passphrase\n', { mode: 0o600 });
    await mkdir(join(scrub[3]!, '..'), { recursive: true });
    const init = await runBuiltCli(['init', scrub[3]!, '--passphrase-file', scrub[scrub.indexOf('--passphrase-file') + 1]!, '--kdf-target-ms', '20'], env);
    expect(init.code, init.stderr).toBe(0);
    const ran = await runDetached(scrub[0]!, scrub.slice(1), env);
    expect(ran.code, ran.stderr).toBe(0);
  });
});

describe('sealfs mount-helper install|uninstall', () => {
  let root: string;
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('writes the helper script running this build, replaces only its own, and removes it', async () => {
    root = await mkdtemp(join(tmpdir(), 'sealfs-mounthelper-'));
    await chmod(root, 0o755); // readable by the other user below, like /sbin
    const dir = join(root, 'sbin');
    await mkdir(dir, { mode: 0o755 });
    const env = { HOME: join(root, 'home'), PATH: '/usr/bin:/bin' };
    const install = await runBuiltCli(['mount-helper', 'install', '--dir', dir], env);
    expect(install.code, install.stderr).toBe(0);
    const helper = join(dir, 'mount.fuse.sealfs');
    expect(await readFile(helper, 'utf8')).toBe(helperScript(realpathSync(process.execPath), realpathSync(join(CLI, '..', 'mounthelper.js'))));
    expect((await stat(helper)).mode & 0o777).toBe(0o755);
    expect((await runBuiltCli(['mount-helper', 'install', '--dir', dir], env)).code).toBe(0);
    expect(await readdir(dir)).toEqual(['mount.fuse.sealfs']);

    // A user who may not write there is told to use root, in words.
    if (process.getuid?.() === 0) {
      const denied = await runDetached('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'mount-helper', 'uninstall', '--dir', dir], env);
      expect(denied.code).toBe(EXIT.IO);
      expect(denied.stderr).toContain(`${helper}: not allowed to change it; run as root: sudo sealfs mount-helper uninstall`);
    }

    expect((await runBuiltCli(['mount-helper', 'uninstall', '--dir', dir], env)).code).toBe(0);
    expect(await readdir(dir)).toEqual([]);
    await writeFile(helper, '#!/bin/sh\nexec /opt/other/helper "$@"\n', { mode: 0o755 });
    const foreign = await runBuiltCli(['mount-helper', 'install', '--dir', dir], env);
    expect(foreign.code).toBe(EXIT.IO);
    expect(foreign.stderr).toContain('exists and was not written by sealfs');
    expect((await runBuiltCli(['mount-helper', 'uninstall', '--dir', dir], env)).code).toBe(EXIT.IO);
    expect(await readFile(helper, 'utf8')).toBe('#!/bin/sh\nexec /opt/other/helper "$@"\n');
  });
});
