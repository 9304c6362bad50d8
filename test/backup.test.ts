/**
 * `sealfs backup|restore|repair` with the real rclone: a local-path remote and an
 * `rclone serve webdav` on 127.0.0.1 (the "different provider"), started and stopped here.
 * The CLI runs in process, except a few runs of the built executable, end to end.
 */
import { readFile, mkdir, mkdtemp, readdir, rm, stat, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { formatKeyFile } from '../src/crypto/keyfile.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import {
  cipherRel,
  flipByte,
  listTree,
  keyArgs,
  LONG_DIR,
  makeVaultIn,
  plainFsOf,
  readsBackExactly,
  runCli,
  runCliBinary,
  startWebdav,
  type WebdavServer,
} from './helpers-rclone.js';

const STORED = 65_536 + 28;
const chunkAt = (i: number) => 24 + i * STORED;

let root: string;
let env: NodeJS.ProcessEnv;
let dav: WebdavServer | undefined;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-backup-'));
  await mkdir(join(root, 'tmp'));
  env = {
    ...process.env,
    HOME: join(root, 'home'),
    XDG_CONFIG_HOME: join(root, 'home', '.config'),
    XDG_STATE_HOME: join(root, 'state'),
    TMPDIR: join(root, 'tmp'),
    RCLONE_CONFIG: join(root, 'no-rclone.conf'),
  };
  dav = await startWebdav(join(root, 'provider'), join(root, 'rclone.conf'));
}, 180_000);

afterAll(async () => {
  await dav?.stop();
  if (root) await rm(root, { recursive: true, force: true });
}, 30_000);

let counter = 0;
const freshVault = () => makeVaultIn(root, counter++);

interface Problem {
  kind: string;
  cipherPath: string;
  plainPath: string | null;
  chunk: number | null;
}

function parse<T>(stdout: string): T {
  const lines = stdout.trim().split('\n');
  expect(lines, stdout).toHaveLength(1);
  return JSON.parse(lines[0]!) as T;
}

describe('backup, scrub, repair (real rclone)', { timeout: 90_000 }, () => {
  it.each(['local', 'webdav'] as const)(
    '%s remote: damage → scrub reports exactly it → repair fixes it from the backup → clean, every file as written',
    async (kind) => {
      const v = await freshVault();
      const remote = kind === 'local' ? join(root, `backup-${counter}`) : `dav:repair-${counter}`;
      const rc = kind === 'local' ? [] : ['--rclone-config', dav!.configFile];
      const backup = await runCli(['backup', v.cipherDir, remote, ...rc], env);
      expect(backup.stderr).toMatch(/^backup: copied \d+ files \([\d.]+ [kMG]?B\) to .*, 0 already up to date, in [\d.]+ s\n$/);
      expect(backup.code).toBe(EXIT.OK);
      if (kind === 'local') expect(await listTree(remote)).toEqual(await listTree(v.cipherDir));

      // Damage the primary: bit flips, a cut at a chunk boundary, a lost directory identity
      // (the long-named directory's sidecar), the vault file, a symlink target.
      const rels = {
        big: await cipherRel(v, '/docs/big.bin'),
        report: await cipherRel(v, '/docs/report.pdf'),
        longDir: await cipherRel(v, `/${LONG_DIR}`),
        link: await cipherRel(v, '/link-to-report'),
      };
      const sidecar = rels.longDir.replace(/\.sfl$/, '.sfn');
      const at = (r: string) => join(v.cipherDir, r);
      await flipByte(at(rels.big), chunkAt(3) + 12 + 7);
      await truncate(at(rels.report), chunkAt(2));
      const damagedBig = await readFile(at(rels.big));
      await unlink(at(sidecar));
      await unlink(at(VAULT_FILE));
      await unlink(at(rels.link));
      await symlink('bm9wZQ', at(rels.link));

      const scrub = await runCli(['scrub', v.cipherDir, ...keyArgs(v), '--json'], env);
      expect(scrub.code).toBe(EXIT.PROBLEMS);
      const found = parse<{ problems: Problem[] }>(scrub.stdout).problems;
      expect(found.map((p) => [p.kind, p.cipherPath, p.plainPath, p.chunk]).sort()).toEqual(
        [
          ['corrupt-chunk', at(rels.big), '/docs/big.bin', 3],
          ['truncated', at(rels.report), '/docs/report.pdf', 1],
          ['missing-sidecar', at(sidecar), null, null],
          ['missing-vault-file', at(VAULT_FILE), null, null],
          ['bad-symlink-target', at(rels.link), '/link-to-report', null],
        ].sort(),
      );

      const repair = await runCli(['repair', v.cipherDir, '--from', remote, ...rc, ...keyArgs(v), '--json'], env);
      expect(repair.stderr).toBe('');
      expect(repair.code).toBe(EXIT.OK);
      const report = parse<{ repaired: (Problem & { keptAt: string | null })[]; notRepaired: unknown[]; problems: unknown[]; quarantine: string }>(repair.stdout);
      expect(report.notRepaired).toEqual([]);
      expect(report.problems).toEqual([]);
      expect(report.repaired.map((p) => p.kind).sort()).toEqual(['bad-symlink-target', 'corrupt-chunk', 'missing-sidecar', 'missing-vault-file', 'truncated']);
      // The damaged versions are kept aside, outside the cipher directory, never deleted.
      expect(report.quarantine.startsWith(join(root, 'state', 'sealfs', 'quarantine', v.vaultId))).toBe(true);
      const keptBig = report.repaired.find((p) => p.kind === 'corrupt-chunk')!.keptAt!;
      expect(Buffer.compare(await readFile(keptBig), damagedBig)).toBe(0);
      expect((await stat(report.repaired.find((p) => p.kind === 'truncated')!.keptAt!)).size).toBe(chunkAt(2));

      const after = await runCli(['scrub', v.cipherDir, ...keyArgs(v), '--json'], env);
      expect(parse<{ problems: unknown[] }>(after.stdout).problems).toEqual([]);
      expect(after.code).toBe(EXIT.OK);
      expect(await readsBackExactly(v)).toEqual([]);
      expect(await readdir(join(root, 'tmp'))).toEqual([]); // temporary downloads cleaned up
    },
  );

  it('backup --verify downloads the webdav copy and reports exactly the bit flips made there', async () => {
    const v = await freshVault();
    const remote = `dav:verify-${counter}`;
    const rc = ['--rclone-config', dav!.configFile];
    const first = await runCli(['backup', v.cipherDir, remote, ...rc, ...keyArgs(v), '--verify', '--json'], env);
    expect(first.code).toBe(EXIT.OK);
    const clean = parse<{ files: number; verify: { files: number; problems: unknown[] } }>(first.stdout);
    expect(clean.files).toBeGreaterThan(10);
    expect(clean.verify).toMatchObject({ files: 10, problems: [] });

    const big = await cipherRel(v, '/docs/big.bin');
    const plus = await cipherRel(v, '/chunk-plus.bin');
    const onServer = (r: string) => join(dav!.root, `verify-${counter}`, r);
    await flipByte(onServer(big), chunkAt(7) + 200);
    await flipByte(onServer(plus), chunkAt(1) + 20);

    const second = await runCli(['backup', v.cipherDir, remote, ...rc, ...keyArgs(v), '--verify', '--json'], env);
    expect(second.code).toBe(EXIT.PROBLEMS);
    const out = parse<{ files: number; verify: { problems: Problem[] } }>(second.stdout);
    expect(out.files).toBe(0); // nothing changed locally
    expect(out.verify.problems.map((p) => [p.kind, p.cipherPath, p.plainPath, p.chunk]).sort()).toEqual(
      [
        ['corrupt-chunk', `${remote}/${big}`, '/docs/big.bin', 7],
        ['corrupt-chunk', `${remote}/${plus}`, '/chunk-plus.bin', 1],
      ].sort(),
    );
    const human = await runCli(['backup', v.cipherDir, remote, ...rc, ...keyArgs(v), '--verify'], env);
    expect(human.code).toBe(EXIT.PROBLEMS);
    expect(human.stdout).toContain(`${remote}/${big}`);
    expect(human.stderr).toMatch(/2 problems/);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });

  it('without --mirror a backup never deletes remote files; --mirror does', async () => {
    const v = await freshVault();
    const remote = join(root, `mirror-${counter}`);
    expect((await runCli(['backup', v.cipherDir, remote], env)).code).toBe(EXIT.OK);
    const report = await cipherRel(v, '/docs/report.pdf');
    const fs = await plainFsOf(v);
    await fs.unlink('/docs/report.pdf');
    await fs.unlink('/one.txt');

    const quiet = await runCliBinary(['backup', v.cipherDir, remote, '--quiet'], env);
    expect([quiet.code, quiet.stdout, quiet.stderr]).toEqual([EXIT.OK, '', '']);
    const copy = await runCli(['backup', v.cipherDir, remote, '--json'], env);
    expect(copy.code).toBe(EXIT.OK);
    expect(parse<{ deletes: number; mirror: boolean }>(copy.stdout)).toMatchObject({ deletes: 0, mirror: false });
    expect((await stat(join(remote, report))).isFile()).toBe(true);

    const mirror = await runCli(['backup', v.cipherDir, remote, '--mirror', '--json'], env);
    expect(mirror.code).toBe(EXIT.OK);
    expect(parse<{ deletes: number }>(mirror.stdout).deletes).toBe(2);
    await expect(stat(join(remote, report))).rejects.toThrow(/ENOENT/);
    expect(await listTree(remote)).toEqual(await listTree(v.cipherDir));
  });

  it('refuses (exit 8) when a key store or key file lies inside the cipher directory, and sends nothing', async () => {
    const v = await freshVault();
    const remote = join(root, `refused-${counter}`);
    const inside = await runCli(['backup', v.cipherDir, remote, '--keystore', join(v.cipherDir, 'keys')], env);
    expect(inside.code).toBe(EXIT.UNSAFE);
    expect(inside.stderr).toMatch(/key store folder is inside the cipher directory/);

    const [keyName] = await readdir(v.keystoreDir);
    await writeFile(join(v.cipherDir, 'innocent-looking.json'), await readFile(join(v.keystoreDir, keyName!)));
    const storeFile = await runCli(['backup', v.cipherDir, remote, '--keystore', v.keystoreDir], env);
    expect(storeFile.code).toBe(EXIT.UNSAFE);
    expect(storeFile.stderr).toMatch(/innocent-looking\.json: a sealfs key store file/);
    await unlink(join(v.cipherDir, 'innocent-looking.json'));

    await mkdir(join(v.cipherDir, '.stversions'));
    await writeFile(join(v.cipherDir, '.stversions', 'master.key'), formatKeyFile(v.masterKey));
    const keyFile = await runCli(['backup', v.cipherDir, remote, '--keystore', v.keystoreDir], env);
    expect(keyFile.code).toBe(EXIT.UNSAFE);
    expect(keyFile.stderr).toMatch(/master\.key: a sealfs key file/);
    await expect(stat(remote)).rejects.toThrow(/ENOENT/);
  });

  it('rclone missing from PATH, an unknown remote and an unreachable one: exit 10 with one readable line', async () => {
    const v = await freshVault();
    for (const run of [runCli, runCliBinary]) {
      const noRclone = await run(['backup', v.cipherDir, join(root, 'never')], { ...env, PATH: join(root, 'empty-path') });
      expect(noRclone.code).toBe(EXIT.REMOTE);
      expect(noRclone.stderr).toMatch(/^sealfs: rclone is not installed or not on PATH .*apt install rclone.*\n$/);
    }

    const unknown = await runCli(['backup', v.cipherDir, 'nosuchremote:vault'], env);
    expect(unknown.code).toBe(EXIT.REMOTE);
    expect(unknown.stderr).toMatch(/^sealfs: rclone copy failed: .*nosuchremote.*didn't find section in config file\n$/);

    const conf = join(root, 'dead.conf');
    await writeFile(conf, `[dead]\ntype = webdav\nurl = http://127.0.0.1:1\nvendor = rclone\n`);
    const dead = await runCli(['backup', v.cipherDir, 'dead:vault', '--rclone-config', conf], { ...env, RCLONE_RETRIES: '1', RCLONE_LOW_LEVEL_RETRIES: '1' });
    expect(dead.code).toBe(EXIT.REMOTE);
    expect(dead.stderr.trim().split('\n')).toHaveLength(1);
    expect(dead.stderr).toMatch(/connection refused/);
  });

  it('restore rebuilds a whole vault from the webdav backup into a new folder and verifies it', async () => {
    const v = await freshVault();
    const remote = `dav:restore-${counter}`;
    const rc = ['--rclone-config', dav!.configFile];
    expect((await runCli(['backup', v.cipherDir, remote, ...rc], env)).code).toBe(EXIT.OK);

    const target = join(root, `restored-${counter}`);
    const restored = await runCli(['restore', remote, target, ...rc, ...keyArgs(v), '--json'], env);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(EXIT.OK);
    expect(parse<{ verify: { files: number; problems: unknown[] } }>(restored.stdout).verify).toMatchObject({ files: 10, problems: [] });
    expect(await listTree(target)).toEqual(await listTree(v.cipherDir));
    expect(await readsBackExactly({ ...v, cipherDir: target })).toEqual([]);

    // Into an existing folder that holds only a sync client's marker.
    const marked = join(root, `marked-${counter}`);
    await mkdir(join(marked, '.stfolder'), { recursive: true });
    const intoMarked = await runCli(['restore', remote, marked, ...rc, ...keyArgs(v)], env);
    expect(intoMarked.code).toBe(EXIT.OK);
    expect(intoMarked.stderr).toMatch(/^restore: copied \d+ files .*\nverify: 10 files .* no problems\n$/);
    expect(await readsBackExactly({ ...v, cipherDir: marked })).toEqual([]);

    // Never over an existing vault or into a non-empty folder; a remote without a vault is refused.
    const again = await runCli(['restore', remote, target, ...rc, ...keyArgs(v)], env);
    expect(again.code).toBe(EXIT.IO);
    expect(again.stderr).toMatch(/not an empty folder/);
    const empty = join(root, `empty-remote-${counter}`);
    await mkdir(empty);
    const none = await runCli(['restore', empty, join(root, `restored-none-${counter}`), ...keyArgs(v)], env);
    expect(none.code).toBe(EXIT.VAULT);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });
});
