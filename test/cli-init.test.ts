/**
 * The CLI as a user runs it: init, key export/import, passwd. Most runs are in process
 * (runCli, with no terminal, so a missing option can never hang on a prompt); a few run the
 * built executable (dist/src/cli/main.js, test/build.ts) detached, end to end, and the
 * prompt itself is tested through a pseudo-terminal (python3's pty module) when python3 is
 * available.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readKeyFile } from '../src/crypto/keyfile.js';
import { EXIT } from '../src/cli/exit.js';
import { encodeRecoveryKey } from '../src/vault/recovery.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import { CLI } from './build.js';
import { runBuiltCli, runInProcess, type CliRun } from './helpers-cli.js';

const RECOVERY = /^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){10}$/;
const PASS1 = 'Tr0ub4dor&3-first-passphrase';
const PASS2 = 'correct horse battery staple second';
const PASS3 = 'a third passphrase for passwd';
const FAST = ['--kdf-target-ms', '20'];

let root: string;
/** Everything any run printed, to check no passphrase ever shows. */
const transcript: string[] = [];

/** Runs sealfs in process; `binary` runs the built executable instead, as a detached process. */
async function run(args: string[], env: NodeJS.ProcessEnv = {}, binary = false): Promise<CliRun> {
  const fullEnv = { ...process.env, HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'home', '.config'), ...env };
  const result = binary ? await runBuiltCli(args, fullEnv, 30_000) : await runInProcess(args, fullEnv);
  transcript.push(result.stdout, result.stderr);
  return result;
}

const runBinary = (args: string[], env: NodeJS.ProcessEnv = {}) => run(args, env, true);

let counter = 0;
async function fresh(): Promise<string> {
  const dir = join(root, `c${counter++}`);
  await mkdir(dir);
  return dir;
}

async function passFile(dir: string, name: string, passphrase: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${passphrase}\n`, { mode: 0o600 });
  return path;
}

async function treeHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  async function walk(at: string): Promise<void> {
    for (const entry of (await readdir(at, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(at, entry.name);
      const info = await stat(path);
      hash.update(`${relative(dir, path)}\0${info.mode}\0${info.mtimeMs}\0`);
      if (entry.isDirectory()) await walk(path);
      else hash.update(await readFile(path));
    }
  }
  await walk(dir);
  return hash.digest('hex');
}

/** A vault made with PASS1 in `dir/vault`, key store `dir/ks` (by the built executable when `binary`). */
async function makeVault(dir: string, binary = false): Promise<{ cipherDir: string; keystore: string; pw: string; recovery: string; init: CliRun }> {
  const cipherDir = join(dir, 'vault');
  const keystore = join(dir, 'ks');
  const pw = await passFile(dir, 'pw', PASS1);
  const init = await run(['init', cipherDir, '--keystore', keystore, '--passphrase-file', pw, ...FAST], {}, binary);
  expect(init.stderr).not.toMatch(/error/i);
  expect(init.code).toBe(EXIT.OK);
  return { cipherDir, keystore, pw, recovery: init.stdout.trim(), init };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-cli-init-'));
  await mkdir(join(root, 'home'));
  await stat(CLI);
}, 180_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('sealfs init / key / passwd', { timeout: 60_000 }, () => {
  it('init prints the recovery key once on stdout, everything else on stderr; key export prints the same (built executable)', async () => {
    const dir = await fresh();
    const { cipherDir, keystore, pw, recovery, init } = await makeVault(dir, true);
    expect(init.stdout).toMatch(/^[0-9A-Z-]+\n$/);
    expect(recovery).toMatch(RECOVERY);
    const [keyName] = await readdir(keystore);
    expect(keyName).toMatch(/^[0-9a-f-]{36}\.key$/);
    expect(init.stderr).toContain(join(keystore, keyName!));
    expect(init.stderr).toMatch(/write it on paper/i);
    expect(await readdir(cipherDir)).toEqual([VAULT_FILE]);
    expect((await stat(join(keystore, keyName!))).mode & 0o777).toBe(0o600);

    const exported = await runBinary(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', pw]);
    expect(exported.code).toBe(EXIT.OK);
    expect(exported.stdout.trim()).toBe(recovery);
  });

  it('key import rebuilds a lost key store from the recovery key, under a new passphrase', async () => {
    const dir = await fresh();
    const { cipherDir, recovery } = await makeVault(dir);
    const newStore = join(dir, 'new-ks');
    const pw2 = await passFile(dir, 'pw2', PASS2);
    const typed = join(dir, 'paper.txt');
    await writeFile(typed, `${recovery.toLowerCase().replace(/-/g, ' ')}\n`);
    const imported = await run(['key', 'import', cipherDir, '--keystore', newStore, '--recovery-key-file', typed, '--passphrase-file', pw2, ...FAST]);
    expect(imported.stderr).not.toMatch(/sealfs: (?!warning)/);
    expect(imported.code).toBe(EXIT.OK);
    const unlocked = await run(['key', 'export', cipherDir, '--keystore', newStore, '--passphrase-file', pw2]);
    expect(unlocked.code).toBe(EXIT.OK);
    expect(unlocked.stdout.trim()).toBe(recovery);

    // Not again without --replace…
    const again = await run(['key', 'import', cipherDir, '--keystore', newStore, '--recovery-key-file', typed, '--passphrase-file', pw2, ...FAST]);
    expect(again.code).toBe(EXIT.IO);
    expect(again.stderr).toContain('--replace');
    const replaced = await run(['key', 'import', cipherDir, '--keystore', newStore, '--recovery-key-file', typed, '--passphrase-file', pw2, '--replace', ...FAST]);
    expect(replaced.code).toBe(EXIT.OK);
  });

  it('key import refuses a recovery key of another vault, and a mistyped one', async () => {
    const dir = await fresh();
    const { cipherDir, recovery } = await makeVault(dir);
    const other = await makeVault(await fresh());
    const newStore = join(dir, 'new-ks');
    const paper = join(dir, 'other.txt');
    await writeFile(paper, other.recovery);
    const wrong = await run(['key', 'import', cipherDir, '--keystore', newStore, '--recovery-key-file', paper, '--passphrase-file', join(dir, 'pw'), ...FAST]);
    expect(wrong.code).toBe(EXIT.KEY);
    expect(wrong.stderr).toContain(`this recovery key does not belong to the vault at ${cipherDir}`);
    const typo = recovery.slice(0, 20) + (recovery[20] === '7' ? '8' : '7') + recovery.slice(21);
    await writeFile(paper, typo);
    const mistyped = await run(['key', 'import', cipherDir, '--keystore', newStore, '--recovery-key-file', paper, '--passphrase-file', join(dir, 'pw'), ...FAST]);
    expect(mistyped.code).toBe(EXIT.KEY);
    expect(mistyped.stderr).toContain('checksum mismatch');
    expect(mistyped.stderr).toContain('group 4, character 3');
    await expect(stat(newStore)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('init --import-key-file takes a `sealfs keygen` key file, or a recovery key', async () => {
    const dir = await fresh();
    const keyFile = join(dir, 'my.key');
    expect((await run(['keygen', '--out', keyFile])).code).toBe(EXIT.OK);
    const pw = await passFile(dir, 'pw', PASS1);
    const keystore = join(dir, 'ks');
    const init = await run(['init', join(dir, 'v1'), '--keystore', keystore, '--passphrase-file', pw, '--import-key-file', keyFile, ...FAST]);
    expect(init.code).toBe(EXIT.OK);
    const recovery = encodeRecoveryKey(await readKeyFile(keyFile));
    expect(init.stdout.trim()).toBe(recovery);
    const exported = await run(['key', 'export', join(dir, 'v1'), '--keystore', keystore, '--passphrase-file', pw]);
    expect(exported.stdout.trim()).toBe(recovery);

    await writeFile(join(dir, 'paper.txt'), recovery);
    const fromPaper = await run(['init', join(dir, 'v2'), '--keystore', keystore, '--passphrase-file', pw, '--import-key-file', join(dir, 'paper.txt'), ...FAST]);
    expect(fromPaper.code).toBe(EXIT.OK);
    expect(fromPaper.stdout.trim()).toBe(recovery);
    expect(await readdir(keystore)).toHaveLength(2);
  });

  it('a wrong passphrase exits 5, in process and from the built executable', async () => {
    const dir = await fresh();
    const { cipherDir, keystore } = await makeVault(dir);
    const bad = await passFile(dir, 'bad', 'not the passphrase');
    for (const result of [
      await run(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', bad]),
      await runBinary(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', bad]),
    ]) {
      expect(result.code).toBe(EXIT.KEY);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe('sealfs: wrong passphrase\n');
    }
  });

  it('init refuses a non-empty folder (exit 3) and an existing vault, writing nothing', async () => {
    const dir = await fresh();
    const cipherDir = join(dir, 'photos');
    await mkdir(cipherDir);
    await writeFile(join(cipherDir, 'holiday.jpg'), 'jpeg');
    const pw = await passFile(dir, 'pw', PASS1);
    const keystore = join(dir, 'ks');
    const result = await run(['init', cipherDir, '--keystore', keystore, '--passphrase-file', pw, ...FAST]);
    expect(result.code).toBe(EXIT.IO);
    expect(result.stderr).toContain('not empty');
    expect(await readdir(cipherDir)).toEqual(['holiday.jpg']);
    await expect(stat(keystore)).rejects.toMatchObject({ code: 'ENOENT' });

    const { cipherDir: vault, keystore: ks2 } = await makeVault(await fresh());
    const again = await run(['init', vault, '--keystore', ks2, '--passphrase-file', pw, ...FAST]);
    expect(again.code).toBe(EXIT.IO);
    expect(again.stderr).toContain('already a sealfs vault');
    expect(await readdir(ks2)).toHaveLength(1);
  });

  it('a key store inside the cipher directory is refused with exit 8', async () => {
    const dir = await fresh();
    const cipherDir = join(dir, 'vault');
    const pw = await passFile(dir, 'pw', PASS1);
    const result = await run(['init', cipherDir, '--keystore', join(cipherDir, '.sealfs-keys'), '--passphrase-file', pw, ...FAST]);
    expect(result.code).toBe(EXIT.UNSAFE);
    expect(result.stderr).toContain('inside the cipher directory');
    await expect(stat(cipherDir)).rejects.toMatchObject({ code: 'ENOENT' });

    const { cipherDir: vault, recovery } = await makeVault(await fresh());
    await writeFile(join(dir, 'paper.txt'), recovery);
    const before = await treeHash(vault);
    const imported = await run(['key', 'import', vault, '--keystore', join(vault, 'keys'), '--recovery-key-file', join(dir, 'paper.txt'), '--passphrase-file', pw, ...FAST]);
    expect(imported.code).toBe(EXIT.UNSAFE);
    expect(await treeHash(vault)).toBe(before);
  });

  it('uses $XDG_CONFIG_HOME/sealfs when --keystore is not given, and warns about a synced key store', async () => {
    const dir = await fresh();
    const pw = await passFile(dir, 'pw', PASS1);
    const xdg = join(dir, 'config');
    const result = await run(['init', join(dir, 'v'), '--passphrase-file', pw, ...FAST], { XDG_CONFIG_HOME: xdg });
    expect(result.code).toBe(EXIT.OK);
    expect(await readdir(join(xdg, 'sealfs'))).toHaveLength(1);
    expect((await stat(join(xdg, 'sealfs'))).mode & 0o777).toBe(0o700);

    const dropbox = join(dir, 'Dropbox');
    await mkdir(dropbox);
    const synced = await run(['init', join(dropbox, 'vault'), '--keystore', join(dropbox, 'keys'), '--passphrase-file', pw, ...FAST]);
    expect(synced.code).toBe(EXIT.OK);
    expect(synced.stderr).toMatch(/sealfs: warning: .*Dropbox/);
  });

  it('passwd changes the passphrase and leaves the vault folder byte-identical', async () => {
    const dir = await fresh();
    const { cipherDir, keystore, pw, recovery } = await makeVault(dir);
    const pw3 = await passFile(dir, 'pw3', PASS3);
    const before = await treeHash(cipherDir);
    const changed = await run(['passwd', cipherDir, '--keystore', keystore, '--passphrase-file', pw, '--new-passphrase-file', pw3, ...FAST]);
    expect(changed.code).toBe(EXIT.OK);
    expect(await treeHash(cipherDir)).toBe(before);
    expect((await run(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', pw])).code).toBe(EXIT.KEY);
    const exported = await run(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', pw3]);
    expect(exported.stdout.trim()).toBe(recovery);
    const wrongOld = await run(['passwd', cipherDir, '--keystore', keystore, '--passphrase-file', pw, '--new-passphrase-file', pw3, ...FAST]);
    expect(wrongOld.code).toBe(EXIT.KEY);
  });

  it('--extpass runs a command for the passphrase; its failure is explained', async () => {
    const dir = await fresh();
    const { cipherDir, keystore, pw, recovery } = await makeVault(dir);
    const ok = await run(['key', 'export', cipherDir, '--keystore', keystore, '--extpass', `cat '${pw}'`]);
    expect(ok.code).toBe(EXIT.OK);
    expect(ok.stdout.trim()).toBe(recovery);
    const failed = await run(['key', 'export', cipherDir, '--keystore', keystore, '--extpass', 'exit 3']);
    expect(failed.code).toBe(EXIT.KEY);
    expect(failed.stderr).toContain('--extpass command exited with status 3');
    const both = await run(['key', 'export', cipherDir, '--keystore', keystore, '--extpass', 'true', '--passphrase-file', pw]);
    expect(both.code).toBe(EXIT.USAGE);
  });

  it('warns about a weak new passphrase (init, passwd, key import; file or --extpass) on stderr, and goes on', async () => {
    const dir = await fresh();
    const warning = /^sealfs: warning: weak passphrase: (.*)$/m;
    const short = await passFile(dir, 'short', 'hunter2');
    const repetitive = await passFile(dir, 'rep', 'abababababababab');
    const cipherDir = join(dir, 'vault');
    const keystore = join(dir, 'ks');
    const init = await run(['init', cipherDir, '--keystore', keystore, '--passphrase-file', short, ...FAST]);
    expect(init.code).toBe(EXIT.OK);
    expect(warning.exec(init.stderr)?.[1]).toContain('shorter than 12 characters');
    expect(init.stderr).not.toContain('hunter2');
    const passwd = await run(['passwd', cipherDir, '--keystore', keystore, '--passphrase-file', short, '--new-passphrase-file', repetitive, ...FAST]);
    expect(passwd.code).toBe(EXIT.OK);
    expect(warning.exec(passwd.stderr)?.[1]).toContain('fewer than 6 different characters');
    const viaCommand = await run(['passwd', cipherDir, '--keystore', keystore, '--extpass', `cat '${repetitive}'`, '--new-passphrase-file', short, ...FAST]);
    expect(viaCommand.code).toBe(EXIT.OK);
    expect(viaCommand.stderr).toMatch(warning);
    const imported = await run(['key', 'import', cipherDir, '--keystore', keystore, '--replace', '--recovery-key-file', await passFile(dir, 'rk', init.stdout.trim()), '--extpass', `cat '${short}'`, ...FAST]);
    expect(imported.code).toBe(EXIT.OK);
    expect(imported.stderr).toMatch(warning);
    // Unlocking with a weak passphrase is not warned about (it is not being chosen), nor is a good new one.
    const exported = await run(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', short]);
    expect(exported.code).toBe(EXIT.OK);
    expect(exported.stderr).not.toMatch(warning);
    const good = await run(['passwd', cipherDir, '--keystore', keystore, '--passphrase-file', short, '--new-passphrase-file', await passFile(dir, 'good', PASS3), ...FAST]);
    expect(good.code).toBe(EXIT.OK);
    expect(good.stderr).not.toMatch(warning);
  });

  it('without a terminal and without options, says how to give the passphrase (exit 2)', async () => {
    const dir = await fresh();
    const { cipherDir, keystore } = await makeVault(dir);
    // The built executable, detached: no controlling terminal, stdin not a terminal.
    const result = await runBinary(['key', 'export', cipherDir, '--keystore', keystore]);
    expect(result.code).toBe(EXIT.USAGE);
    expect(result.stderr).toBe(
      'sealfs: no passphrase: there is no terminal to ask at; use --passphrase-file FILE (--passphrase-file /dev/stdin reads it from a pipe) or --extpass CMD\n',
    );
    expect(await run(['key', 'export', cipherDir, '--keystore', keystore])).toEqual(result);
    const init = await run(['init', join(dir, 'v2'), '--keystore', keystore, ...FAST]);
    expect(init.code).toBe(EXIT.USAGE);
    await expect(stat(join(dir, 'v2'))).rejects.toMatchObject({ code: 'ENOENT' });
    const empty = await passFile(dir, 'empty', '');
    const refused = await run(['init', join(dir, 'v3'), '--keystore', keystore, '--passphrase-file', empty, ...FAST]);
    expect(refused.code).toBe(EXIT.KEY);
    expect(refused.stderr).toContain('empty passphrase');
  });

  it('explains a folder that is not a vault (6) and a vault without a key (5) before asking for a passphrase', async () => {
    const dir = await fresh();
    const notVault = await run(['key', 'export', dir, '--keystore', join(dir, 'ks')]);
    expect(notVault.code).toBe(EXIT.VAULT);
    expect(notVault.stderr).toContain('not a sealfs vault');
    const { cipherDir } = await makeVault(dir);
    const noKey = await run(['key', 'export', cipherDir, '--keystore', join(dir, 'empty-ks')]);
    expect(noKey.code).toBe(EXIT.KEY);
    expect(noKey.stderr).toContain(`restore it from the recovery key with \`sealfs key import ${cipherDir} --keystore ${join(dir, 'empty-ks')}\``);
  });

  it('never shows a passphrase: not in any output, not in any key file', async () => {
    expect(transcript.length).toBeGreaterThan(20);
    for (const text of transcript) {
      for (const secret of [PASS1, PASS2, PASS3]) expect(text).not.toContain(secret);
    }
    const keyFiles: string[] = [];
    async function collect(at: string): Promise<void> {
      for (const entry of await readdir(at, { withFileTypes: true })) {
        const path = join(at, entry.name);
        if (entry.isDirectory()) await collect(path);
        else if (entry.name.endsWith('.key')) keyFiles.push(path);
      }
    }
    await collect(root);
    expect(keyFiles.length).toBeGreaterThan(5);
    for (const path of keyFiles) {
      const text = await readFile(path, 'utf8');
      for (const secret of [PASS1, PASS2, PASS3]) {
        expect(text).not.toContain(secret);
        expect(text).not.toContain(Buffer.from(secret).toString('base64'));
        expect(text).not.toContain(Buffer.from(secret).toString('hex'));
      }
    }
  });
});

// ---------------------------------------------------------------------------------------
// The prompt, through a pseudo-terminal

const DRIVER = String.raw`
import os, pty, sys, time, select, json
steps = json.loads(os.environ['PTY_STEPS'])
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b''
def pump(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if not r: return False
    try: data = os.read(fd, 4096)
    except OSError: return None
    if not data: return None
    out += data
    return True
for wait_for, send in steps:
    start = len(out)
    end = time.time() + 30
    while wait_for.encode() not in out[start:] and time.time() < end:
        if pump(0.1) is None: break
    time.sleep(0.05)
    os.write(fd, send.encode())
while pump(30): pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(json.dumps({'out': out.decode('utf8', 'replace'), 'code': os.waitstatus_to_exitcode(status)}))
`;

const hasPython = spawnSync('python3', ['-c', 'import pty'], { stdio: 'ignore' }).status === 0;

function runInPty(args: string[], steps: [string, string][]): { out: string; code: number } {
  const result = spawnSync('python3', ['-c', DRIVER, process.execPath, CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PTY_STEPS: JSON.stringify(steps), HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'home', '.config') },
    timeout: 60_000,
  });
  if (result.status !== 0) throw new Error(`pty driver failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as { out: string; code: number };
}

describe.skipIf(!hasPython)('passphrase prompt on a terminal (python3 pty)', { timeout: 60_000 }, () => {
  it('asks twice for a new passphrase, never echoes it, and unlocks with it', async () => {
    const dir = await fresh();
    const cipherDir = join(dir, 'vault');
    const keystore = join(dir, 'ks');
    const secret = 'pty-secret-Ünïcödé';
    const init = runInPty(['init', cipherDir, '--keystore', keystore, ...FAST], [
      ['Enter a new passphrase', `${secret}\r`],
      ['Repeat a new passphrase', `${secret}\r`],
    ]);
    expect(init.code).toBe(EXIT.OK);
    expect(init.out).not.toContain(secret);
    expect(init.out).not.toContain('pty-secret');
    const recovery = /[0-9A-Z]{5}(-[0-9A-Z]{5}){10}/.exec(init.out)?.[0];
    expect(recovery).toMatch(RECOVERY);

    // Backspace edits, an arrow key is ignored, a wrong first try may be retyped.
    const exported = runInPty(['key', 'export', cipherDir, '--keystore', keystore], [
      ['Enter passphrase', 'wrong\r'],
      ['Enter passphrase', `${secret}X\x7f\x1b[A\r`],
    ]);
    expect(exported.code).toBe(EXIT.OK);
    expect(exported.out).toContain('Wrong passphrase, try again.');
    expect(exported.out).toContain(recovery);
    expect(exported.out).not.toContain('pty-secret');
    expect(exported.out).not.toContain('wrong');
  });

  it('a weak new passphrase typed at the prompt is warned about on the terminal, and used', async () => {
    const dir = await fresh();
    const cipherDir = join(dir, 'vault');
    const keystore = join(dir, 'ks');
    const init = runInPty(['init', cipherDir, '--keystore', keystore, ...FAST], [
      ['Enter a new passphrase', 'short1\r'],
      ['Repeat a new passphrase', 'short1\r'],
    ]);
    expect(init.code).toBe(EXIT.OK);
    expect(init.out).toContain('sealfs: warning: weak passphrase: it is shorter than 12 characters');
    expect(init.out).not.toContain('short1');
    const pw = await passFile(dir, 'pw', 'short1');
    expect((await run(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', pw])).code).toBe(EXIT.OK);
  });

  it('passwd, like every command that unlocks, lets a wrong current passphrase be retyped at the prompt', async () => {
    const dir = await fresh();
    const { cipherDir, keystore, recovery } = await makeVault(dir);
    const changed = runInPty(['passwd', cipherDir, '--keystore', keystore, ...FAST], [
      ['Enter current passphrase', 'wrong once\r'],
      ['Enter current passphrase', 'wrong twice\r'],
      ['Enter current passphrase', `${PASS1}\r`],
      ['Enter new passphrase', 'the new passphrase\r'],
      ['Repeat new passphrase', 'the new passphrase\r'],
    ]);
    expect(changed.code).toBe(EXIT.OK);
    expect(changed.out.split('Wrong passphrase, try again.')).toHaveLength(3);
    expect(changed.out).toContain('Passphrase changed');
    const pw = await passFile(dir, 'new-pw', 'the new passphrase');
    const exported = await run(['key', 'export', cipherDir, '--keystore', keystore, '--passphrase-file', pw]);
    expect(exported.stdout.trim()).toBe(recovery);

    const refused = runInPty(['passwd', cipherDir, '--keystore', keystore, ...FAST], [
      ['Enter current passphrase', 'a\r'],
      ['Enter current passphrase', 'b\r'],
      ['Enter current passphrase', 'c\r'],
    ]);
    expect(refused.code).toBe(EXIT.KEY);
    expect(refused.out).toContain('sealfs: wrong passphrase');
  });

  it('Ctrl-C cancels and gives the terminal its echo back', async () => {
    const dir = await fresh();
    const { cipherDir, keystore } = await makeVault(dir);
    const result = spawnSync(
      'python3',
      ['-c', DRIVER, '/bin/sh', '-c', `"${process.execPath}" "${CLI}" key export "${cipherDir}" --keystore "${keystore}"; echo "rc=$?"; stty -a`],
      { encoding: 'utf8', env: { ...process.env, PTY_STEPS: JSON.stringify([['Enter passphrase', 'abc\x03']]) }, timeout: 60_000 },
    );
    const { out } = JSON.parse(result.stdout) as { out: string };
    expect(out).toContain('sealfs: cancelled');
    expect(out).toContain('rc=130');
    expect(out).toMatch(/(^|\s)echo(\s|$)/m);
    expect(out).not.toContain('abc');
  });

  it('import shows the recovery key as typed, in its printed groups, and points at a mistyped character', async () => {
    const dir = await fresh();
    const { cipherDir, recovery } = await makeVault(dir);
    const typo = recovery.slice(0, 6) + (recovery[6] === 'Q' ? 'R' : 'Q') + recovery.slice(7);
    const result = runInPty(['key', 'import', cipherDir, '--keystore', join(dir, 'ks2'), ...FAST], [
      ['Recovery key', `${typo}\r`],
      ['Recovery key', `${recovery.toLowerCase()}\r`],
      ['Enter a new passphrase', 'fresh passphrase\r'],
      ['Repeat a new passphrase', 'fresh passphrase\r'],
    ]);
    expect(result.code).toBe(EXIT.OK);
    expect(result.out).toContain('group 2, character 1');
    // Typed in lower case with dashes, shown as on paper (test/cli-prompts.test.ts looks closer).
    expect(result.out).toContain(`Recovery key: ${typo}`);
    expect(result.out).toContain(`Recovery key: ${recovery}`);
    expect(result.out).not.toContain('fresh passphrase');
  });
});
