/**
 * `sealfs scrub`: every kind of damage the format lets a key holder find is reported once,
 * with its kind, cipher path, plaintext path (when known) and chunk, and nothing else is;
 * the CLI's JSON shape, exit codes and `--changed` state.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, lstat, mkdir, mkdtemp, readFile, rename, rm, stat, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { loadScrubState, scrubStatePath } from '../src/tools/scrubstate.js';
import { scrubVault, type ScrubProblem } from '../src/tools/scrub.js';
import { openVault } from '../src/vault/vault.js';
import { ROOT_DIR_ID } from '../src/vault/names.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import { bytesOf, cipherRel, flipByte, listTree, LONG_DIR, makeVaultIn, keyArgs, plainFsOf, runCli, runCliBinary, TREE, writePlain } from './helpers-rclone.js';

const STORED = 65_536 + 28;
const chunkAt = (i: number) => 24 + i * STORED;

let root: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-scrub-'));
  env = { ...process.env, HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'home', '.config'), XDG_STATE_HOME: join(root, 'state') };
}, 180_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

let counter = 0;
const freshVault = () => makeVaultIn(root, counter++);
const summary = (ps: readonly ScrubProblem[]) => ps.map((p) => `${p.kind} ${p.rel}${p.chunk !== null ? ` #${p.chunk}` : ''}`).sort();

describe('scrub engine', { timeout: 60_000 }, () => {
  it('a clean vault has no problems; every file and every ciphertext byte is read', async () => {
    const v = await freshVault();
    const result = await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey });
    expect(result.problems).toEqual([]);
    expect(result.files).toBe(TREE.length);
    let bytes = 0;
    for (const { path } of TREE) bytes += (await stat(join(v.cipherDir, await cipherRel(v, path)))).size;
    expect(result.bytes).toBe(bytes);
    expect(result.clean).toHaveLength(TREE.length);
  });

  it('reports exactly each damage, once, and nothing else (sync-client files and conflict copies are fine)', async () => {
    const v = await freshVault();
    const vault = await openVault(v.cipherDir, v.masterKey);
    const rel = async (p: string) => cipherRel(vault, p);
    const big = await rel('/docs/big.bin');
    const report = await rel('/docs/report.pdf');
    const plus = await rel('/chunk-plus.bin');
    const one = await rel('/one.txt');
    const exact = await rel('/chunk-exact.bin');
    const empty = await rel('/empty.txt');
    const docs = await rel('/docs');
    const longDir = await rel(`/${LONG_DIR}`);
    const longFile = await rel('/docs/a file with a long name that also needs a sidecar of its own.txt');
    const link = await rel('/link-to-report');
    const minus = await rel('/chunk-minus.bin');
    const at = (r: string) => join(v.cipherDir, r);
    const sidecarOf = (r: string) => r.replace(/\.sfl$/, '.sfn');

    // Contents
    await flipByte(at(big), chunkAt(5) + 12 + 100);
    await truncate(at(report), chunkAt(3)); // at a chunk boundary: chunks 0..2 remain
    await truncate(at(plus), chunkAt(1) + 10); // inside the last chunk's nonce
    await flipByte(at(one), 0); // magic
    await truncate(at(exact), 24); // bare header
    // Names and control files
    await unlink(at(sidecarOf(longDir))); // the long-named directory's name (and id) is lost
    await writeFile(at(sidecarOf(longFile)), 'a'.repeat(140) + '\n');
    const orphan = `${docs}/${'b'.repeat(26)}.sfn`;
    await writeFile(at(orphan), 'whatever\n');
    const bogus = 'mzxw6ytboi2dgnbvgy3tqojqgeztgnbvgy3tqojq';
    await copyFile(at(minus), at(bogus));
    const moved = `${docs}/${empty}`;
    await rename(at(empty), at(moved)); // a name moved into another directory no longer decrypts
    await unlink(at(link));
    await symlink('bm90LWEtdGFyZ2V0', at(link));
    spawnSync('mkfifo', [at(`${docs}/fifo`)]);
    // Two directories named "y" with different ids (one renamed from "x" elsewhere), and a file and a directory both named "z"
    const fs = await plainFsOf(v);
    await fs.mkdir('/x', 0o755);
    await fs.rename('/x', '/y');
    const freshY = vault.tree.decoder.cipherNameFor(ROOT_DIR_ID, 'y', vault.names.deriveDirId(ROOT_DIR_ID, 'y')).cipherName;
    await mkdir(at(freshY));
    await writePlain(fs, '/z', bytesOf(10, 9));
    const dirZ = vault.tree.decoder.cipherNameFor(ROOT_DIR_ID, 'z', vault.names.deriveDirId(ROOT_DIR_ID, 'z')).cipherName;
    await mkdir(at(dirZ));
    const fileZ = await cipherRel(fs.vault, '/z');
    const yRels = [await cipherRel(fs.vault, '/y'), freshY].sort();
    const vaultFile = await readFile(at(VAULT_FILE), 'utf8');
    await writeFile(at(VAULT_FILE), vaultFile.replace('"maxNameLength":64', '"maxNameLength":65'));
    // Not problems: sync-client files and a conflict copy
    await mkdir(at('.stfolder'));
    await mkdir(at('.stversions'));
    await writeFile(at('.stversions/junk'), 'x');
    await writeFile(at(`${docs}/desktop.ini`), 'x');
    await copyFile(at(minus), at(`${minus}.sync-conflict-20261122-101010-ABCDEFG`));

    const result = await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey });
    const zClash = [fileZ, dirZ].sort()[1]!; // the second in cipher-name order is the duplicate
    expect(summary(result.problems)).toEqual(
      [
        `corrupt-chunk ${big} #5`,
        `truncated ${report} #2`,
        `bad-size ${plus} #1`,
        `bad-header ${one}`,
        `truncated ${exact}`,
        `missing-sidecar ${sidecarOf(longDir)}`,
        `bad-sidecar ${sidecarOf(longFile)}`,
        `orphan-sidecar ${orphan}`,
        `undecryptable-name ${bogus}`,
        `undecryptable-name ${moved}`,
        `bad-symlink-target ${link}`,
        `unexpected-type ${docs}/fifo`,
        `bad-vault-file ${VAULT_FILE}`,
        `conflicting-identity ${yRels[1]}`,
        `duplicate-name ${zClash}`,
      ].sort(),
    );
    const byRel = new Map(result.problems.map((p) => [p.rel, p]));
    expect(byRel.get(big)!.plainPath).toBe('/docs/big.bin');
    expect(byRel.get(big)!.cipherPath).toBe(at(big));
    expect(byRel.get(report)!.detail).toMatch(/truncated/);
    expect(byRel.get(bogus)!.plainPath).toBeNull();
    expect(byRel.get(yRels[1]!)!.plainPath).toBe('/y (duplicate 2)');
    // The lost directory name: its subtree cannot be named, but its contents were verified.
    expect(byRel.get(sidecarOf(longDir))!.detail).toMatch(/2 files, 1 directory\)/);
    expect(result.files).toBe(TREE.length + 3); // + the bogus copy, the conflict copy and /z
  });

  it('is read-only (nothing in the cipher directory changes) and reports no false damage beside a busy writer', async () => {
    const v = await freshVault();
    const snapshot = async () => {
      const out: string[] = [];
      for (const r of await listTree(v.cipherDir)) {
        const st = await lstat(join(v.cipherDir, r), { bigint: true });
        out.push(`${r} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${st.ino}`);
      }
      return out;
    };
    const before = await snapshot();
    expect((await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey })).problems).toEqual([]);
    expect(await snapshot()).toEqual(before);

    // A writer rewriting a multi-chunk file while scrub reads it (as through a mount).
    const fs = await plainFsOf(v);
    let writing = true;
    const writer = (async () => {
      for (let round = 0; writing; round++) {
        const fh = await fs.open('/docs/big.bin', 2);
        await fs.write(fh, (round * 70_001) % 900_000, bytesOf(150_000, round));
        await fs.release(fh);
      }
    })();
    try {
      for (let i = 0; i < 5; i++) {
        const result = await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey, concurrency: 1 });
        expect(result.problems).toEqual([]);
      }
    } finally {
      writing = false;
      await writer;
    }
  });

  it('reports a missing vault file', async () => {
    const v = await freshVault();
    await unlink(join(v.cipherDir, VAULT_FILE));
    const result = await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey });
    expect(summary(result.problems)).toEqual([`missing-vault-file ${VAULT_FILE}`]);
  });

  it('with skipUnchanged reads only files that changed since they verified clean', async () => {
    const v = await freshVault();
    const first = await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey });
    const second = await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey, skipUnchanged: new Set(first.clean) });
    expect([second.files, second.skipped, second.bytes]).toEqual([0, TREE.length, 0]);
    const fs = await plainFsOf(v);
    const fh = await fs.open('/docs/report.pdf', 2);
    await fs.write(fh, 10, bytesOf(5, 3));
    await fs.release(fh);
    const third = await scrubVault({ cipherDir: v.cipherDir, masterKey: v.masterKey, skipUnchanged: new Set(second.clean) });
    expect([third.files, third.skipped]).toEqual([1, TREE.length - 1]);
    expect(third.problems).toEqual([]);
  });
});

describe('sealfs scrub (CLI)', { timeout: 60_000 }, () => {
  it('--json prints one object {files, bytes, skipped, problems}; a clean vault exits 0 and is quiet without --json (built executable)', async () => {
    const v = await freshVault();
    const json = await runCliBinary(['scrub', v.cipherDir, ...keyArgs(v), '--json'], env);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(EXIT.OK);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    const out = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(Object.keys(out).sort()).toEqual(['bytes', 'files', 'problems', 'skipped']);
    expect(out).toMatchObject({ files: TREE.length, skipped: 0, problems: [] });
    expect(out.bytes).toBeGreaterThan(3_500_000);

    const quiet = await runCliBinary(['scrub', v.cipherDir, ...keyArgs(v)], env);
    expect([quiet.code, quiet.stdout, quiet.stderr]).toEqual([EXIT.OK, '', '']);
    expect(await runCli(['scrub', v.cipherDir, ...keyArgs(v)], env)).toEqual(quiet);
  });

  it('exits 9 with each problem as {kind, cipherPath, plainPath, chunk}; prints them readably without --json', async () => {
    const v = await freshVault();
    const big = await cipherRel(v, '/docs/big.bin');
    await flipByte(join(v.cipherDir, big), chunkAt(16) + 30);
    const json = await runCli(['scrub', v.cipherDir, ...keyArgs(v), '--json'], env);
    expect(json.code).toBe(EXIT.PROBLEMS);
    const out = JSON.parse(json.stdout) as { problems: Record<string, unknown>[] };
    expect(out.problems).toEqual([
      { kind: 'corrupt-chunk', cipherPath: join(v.cipherDir, big), plainPath: '/docs/big.bin', chunk: 16, detail: expect.stringMatching(/chunk 16/) },
    ]);
    const text = await runCli(['scrub', v.cipherDir, ...keyArgs(v)], env);
    expect(text.code).toBe(EXIT.PROBLEMS);
    expect(text.stdout).toContain('corrupt-chunk chunk 16: /docs/big.bin');
    expect(text.stdout).toContain(join(v.cipherDir, big));
    expect(text.stderr).toMatch(/1 problem/);
  });

  it('usage errors exit 2; a missing folder 3; a wrong passphrase 5', async () => {
    const v = await freshVault();
    expect((await runCli(['scrub'], env)).code).toBe(EXIT.USAGE);
    expect((await runCli(['scrub', v.cipherDir, '--bogus'], env)).code).toBe(EXIT.USAGE);
    expect((await runCli(['scrub', join(root, 'nowhere'), ...keyArgs(v)], env)).code).toBe(EXIT.IO);
    const wrong = join(root, 'wrong-pass');
    await writeFile(wrong, 'not the passphrase\n');
    expect((await runCli(['scrub', v.cipherDir, '--keystore', v.keystoreDir, '--passphrase-file', wrong], env)).code).toBe(EXIT.KEY);
  });

  it('--changed re-reads only changed files; the state lives outside the vault; a lost vault file is still reported', async () => {
    const v = await freshVault();
    const run = async (...extra: string[]) => {
      const r = await runCli(['scrub', v.cipherDir, ...keyArgs(v), '--json', ...extra], env);
      return { code: r.code, ...(JSON.parse(r.stdout) as { files: number; skipped: number; problems: { kind: string }[] }) };
    };
    expect(await run('--changed')).toMatchObject({ code: 0, files: TREE.length, skipped: 0 });
    expect(await run('--changed')).toMatchObject({ code: 0, files: 0, skipped: TREE.length });
    const fs = await plainFsOf(v);
    const fh = await fs.open('/docs/big.bin', 2);
    await fs.write(fh, 1_048_579, bytesOf(100, 4)); // append
    await fs.release(fh);
    expect(await run('--changed')).toMatchObject({ code: 0, files: 1, skipped: TREE.length - 1 });
    const statePath = scrubStatePath(v.vaultId, join(root, 'state', 'sealfs'));
    expect((await stat(statePath)).mode & 0o777).toBe(0o600);
    expect((await loadScrubState(v.vaultId, join(root, 'state', 'sealfs'))).size).toBe(TREE.length);
    // A full scrub is the default and reads everything again.
    expect(await run()).toMatchObject({ code: 0, files: TREE.length, skipped: 0 });

    await unlink(join(v.cipherDir, VAULT_FILE));
    const lost = await run();
    expect(lost.code).toBe(EXIT.PROBLEMS);
    expect(lost.problems.map((p) => p.kind)).toEqual(['missing-vault-file']);
  });
});
