/**
 * Every message a user can cause without a mount, pinned with its exit code, run through
 * the built executable as a user runs it (issue 13 §5): each names the path and says what to
 * do, in words, never a raw errno code. (Messages about live mounts: mount-messages.test.ts;
 * prompts on a terminal: cli-prompts.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { shellQuote } from '../src/vault/paths.js';
import { useMountHarness, type Run } from './mount-helpers.js';

const h = useMountHarness('messages');

/** Everything the runs of this file printed on stderr, checked at the end for raw errno codes. */
const said: string[] = [];

async function sealfs(args: readonly string[], input?: string): Promise<Run> {
  const run = await h.sealfs(args, input === undefined ? {} : { input });
  said.push(run.stderr);
  return run;
}

/** One line on stderr, `sealfs: …`, and the exit code. */
function expectRefused(run: Run, code: number, line: RegExp): void {
  expect(run.code, run.stderr).toBe(code);
  expect(run.stderr).toMatch(/^sealfs: /);
  expect(run.stderr.trim().split('\n').filter((l) => l.startsWith('sealfs:'))).toHaveLength(1);
  expect(run.stderr).toMatch(line);
}

describe('the vault folder and the mount point', () => {
  it('a missing vault folder is said to be missing (exit 6), with the command that creates one, quoted', async () => {
    const v = await h.vault();
    const missing = join(h.root, 'no such vault');
    for (const args of [['mount', missing, v.mnt], ['ls', missing], ['key', 'export', missing]]) {
      const run = await sealfs([...args, '--keystore', v.keystore, '--passphrase-file', v.pass]);
      expectRefused(run, EXIT.VAULT, new RegExp(`${missing} does not exist: there is no vault there \\(check the path; \`sealfs init '${missing}'\` creates a new vault\\)`));
      expect(run.stderr).not.toContain('not a sealfs vault');
    }
    const plain = join(h.root, 'plain');
    await mkdir(plain);
    expectRefused(await sealfs(['ls', plain, '--keystore', v.keystore, '--passphrase-file', v.pass]), EXIT.VAULT, /plain is not a sealfs vault \(it has no sealfs.vault\); check the path/);
  });

  it('swapped arguments are named as swapped (exit 2), with the right order to paste', async () => {
    const v = await h.vault();
    const run = await sealfs(['mount', v.mnt, v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass]);
    expectRefused(run, EXIT.USAGE, new RegExp(`${v.cipher} is a vault folder and ${v.mnt} is not: the two are swapped; the vault comes first: sealfs mount ${v.cipher} ${v.mnt}$`, 'm'));
  });

  it('the vault folder as its own mount point, or inside the mount point, is named as such (exit 7), not "not empty"', async () => {
    const v = await h.vault();
    const same = await sealfs(['mount', v.cipher, v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass]);
    expectRefused(same, EXIT.MOUNT, /the vault folder and the mount point are the same folder .*; mount the vault on another, empty folder/);
    const around = await sealfs(['mount', v.cipher, v.dir, '--keystore', v.keystore, '--passphrase-file', v.pass]);
    expectRefused(around, EXIT.MOUNT, new RegExp(`the vault folder ${v.cipher} is inside the mount point ${v.dir}; choose a mount point outside the vault folder`));
    await mkdir(join(v.cipher, 'sub'));
    const inside = await sealfs(['mount', v.cipher, join(v.cipher, 'sub'), '--keystore', v.keystore, '--passphrase-file', v.pass]);
    expectRefused(inside, EXIT.MOUNT, /the mount point .*sub is inside the vault folder/);
    for (const run of [same, around, inside]) expect(run.stderr).not.toContain('not empty');
  });

  it('--log-file or --pid-file in a missing folder is refused (exit 3) and the folder is not created', async () => {
    const v = await h.vault();
    for (const option of ['--log-file', '--pid-file']) {
      const folder = join(h.root, `missing ${option.slice(2)}`);
      const run = await sealfs(['mount', v.cipher, v.mnt, '--keystore', v.keystore, '--passphrase-file', v.pass, option, join(folder, 'file')]);
      expectRefused(run, EXIT.IO, new RegExp(`${option} .*: the folder ${folder} does not exist; create it first \\(mkdir -p '${folder}'\\)`));
      await expect(stat(folder)).rejects.toMatchObject({ code: 'ENOENT' });
    }
  });
});

describe('unmount of what is not a mount', () => {
  it('a missing path, a vault folder and a plain folder each say what they are (exit 7)', async () => {
    const v = await h.vault();
    const missing = join(h.root, 'not here');
    expectRefused(await sealfs(['unmount', missing]), EXIT.MOUNT, new RegExp(`${missing} does not exist, so nothing is mounted there \\(check the path; `));
    expectRefused(
      await sealfs(['unmount', v.cipher]),
      EXIT.MOUNT,
      new RegExp(`${v.cipher} is a vault folder, not a mount point: give the folder where it is mounted \\(this vault is not mounted now\\)`),
    );
    expectRefused(await sealfs(['unmount', v.mnt]), EXIT.MOUNT, new RegExp(`${v.mnt} is not mounted, so there is nothing to unmount`));
  });

  it('another file system is named by its type, without a wrong article ("a ext4")', async () => {
    const run = await sealfs(['unmount', '/proc']);
    expectRefused(run, EXIT.MOUNT, /^sealfs: \/proc is not a sealfs mount \(a file system of type proc is mounted there\); not touching it$/m);
  });
});

describe('passphrases and keys', () => {
  it('an --extpass command that prints nothing and one that fails both exit 5, as does an empty passphrase file', async () => {
    const v = await h.vault();
    const empty = await sealfs(['ls', v.cipher, '--keystore', v.keystore, '--extpass', 'true']);
    expectRefused(empty, EXIT.KEY, /--extpass command printed an empty passphrase/);
    const failed = await sealfs(['ls', v.cipher, '--keystore', v.keystore, '--extpass', 'false']);
    expectRefused(failed, EXIT.KEY, /--extpass command exited with status 1; no passphrase/);
    const emptyFile = join(v.dir, 'empty-pass');
    await writeFile(emptyFile, '\n');
    expectRefused(await sealfs(['ls', v.cipher, '--keystore', v.keystore, '--passphrase-file', emptyFile]), EXIT.KEY, /passphrase file .*empty-pass: empty passphrase/);
  });

  it('a missing passphrase file is said in words (exit 3), not as ENOENT', async () => {
    const v = await h.vault();
    const run = await sealfs(['ls', v.cipher, '--keystore', v.keystore, '--passphrase-file', join(v.dir, 'nope')]);
    expectRefused(run, EXIT.IO, /passphrase file .*nope: does not exist \(check the path\)/);
  });

  it('no terminal: says --passphrase-file /dev/stdin reads a piped passphrase (exit 2), which then works', async () => {
    const v = await h.vault();
    const piped = await sealfs(['ls', v.cipher, '--keystore', v.keystore], `${v.passphrase}\n`);
    expectRefused(piped, EXIT.USAGE, /no terminal to ask at; use --passphrase-file FILE \(--passphrase-file \/dev\/stdin reads it from a pipe\) or --extpass CMD/);
    const viaStdin = await sealfs(['ls', v.cipher, '--keystore', v.keystore, '--passphrase-file', '/dev/stdin'], `${v.passphrase}\n`);
    expect(viaStdin.code, viaStdin.stderr).toBe(EXIT.OK);
  });

  it('no key: the key-import hint names the vault folder and the key store, quoted for the shell (exit 5)', async () => {
    const v = await h.vault();
    const store = join(h.root, 'empty store');
    const run = await sealfs(['ls', v.cipher, '--keystore', store, '--passphrase-file', v.pass]);
    expectRefused(run, EXIT.KEY, new RegExp(`restore it from the recovery key with \`sealfs key import ${v.cipher} --keystore '${store}'\`$`, 'm'));
  });

  it('init over a vault or a non-empty folder exits 3 (would be overwritten), not 6 (not a vault)', async () => {
    const v = await h.vault();
    expectRefused(await sealfs(['init', v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass]), EXIT.IO, /is already a sealfs vault/);
    const full = join(v.dir, 'full');
    await mkdir(full);
    await writeFile(join(full, 'photo.jpg'), 'x');
    expectRefused(await sealfs(['init', full, '--keystore', v.keystore, '--passphrase-file', v.pass]), EXIT.IO, /full is not empty/);
    expect(await readdir(full)).toEqual(['photo.jpg']);
  });

  it('init says how to see the recovery key again, without claiming it is shown only once', async () => {
    const v = await h.vault({ init: false });
    const run = await sealfs(['init', v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass, '--kdf-target-ms', '20']);
    expect(run.code, run.stderr).toBe(EXIT.OK);
    expect(run.stderr).not.toMatch(/once/);
    expect(run.stderr).toContain(`RECOVERY KEY (\`sealfs key export ${v.cipher}\` prints it again, after asking for the passphrase):`);
  });
});

describe('the command line', () => {
  it('every path in a hint to paste is quoted so that a POSIX shell reads it back as one word (shellQuote)', () => {
    expect(shellQuote('/home/alice/Private')).toBe('/home/alice/Private');
    for (const path of ['/home/alice/my drive', "/it's", '/a$b`c`"d"\\e', '/new\nline', '', '/*?[x]', '~/x']) {
      const quoted = shellQuote(path);
      expect(quoted, JSON.stringify(path)).not.toBe(path);
      const echoed = spawnSync('/bin/sh', ['-c', `printf '%s' ${quoted}`], { encoding: 'utf8' });
      expect(echoed.stdout, JSON.stringify(path)).toBe(path);
    }
  });

  it('a missing argument or unknown option points at the command\'s own --help (exit 2)', async () => {
    const missing = await sealfs(['mount', join(h.root, 'x')]);
    expect(missing.code).toBe(EXIT.USAGE);
    expect(missing.stderr).toBe("sealfs: missing required argument 'mountpoint' (see `sealfs mount --help`)\n");
    const unknown = await sealfs(['key', 'export', join(h.root, 'x'), '--frobnicate']);
    expect(unknown.code).toBe(EXIT.USAGE);
    expect(unknown.stderr).toBe("sealfs: unknown option '--frobnicate' (see `sealfs key export --help`)\n");
  });

  it('no message of this file showed a raw errno code', () => {
    expect(said.length).toBeGreaterThan(15);
    for (const text of said) expect(text).not.toMatch(/\bE(NOENT|ACCES|NOTDIR|PERM|EXIST|ISDIR|NOSPC|ROFS|BUSY|LOOP|NOTCONN)\b/);
  });
});
