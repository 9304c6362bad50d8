/**
 * The frozen vault test/vectors/vault-v1/ (written once by test/vectors/vault.generate.ts,
 * never regenerated) read by today's built CLI without FUSE: `sealfs ls --json` of every
 * directory and `sealfs cat` of every file match its expected plaintext tree, and `sealfs
 * scrub --json` finds it clean. The frozen damaged copy test/vectors/vault-v1-damaged/ pins
 * scrub's whole JSON report (only the temporary cipher folder's path is normalised).
 * The same vault is mounted by test/mount-vault-v1.test.ts.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { CLI } from './build.js';
import {
  copyKeystore,
  copyVault,
  loadExpected,
  normaliseScrub,
  VAULT_V1,
  VAULT_V1_DAMAGED,
  type PlainEntry,
  type VaultV1,
  type VaultV1Damaged,
} from './vectors/frozenvault.js';

const expected = await loadExpected<VaultV1>(VAULT_V1);
const damaged = await loadExpected<VaultV1Damaged>(VAULT_V1_DAMAGED);

let root: string;
let keystore: string;
let passFile: string;

/** `sealfs ARGS` (no terminal, 60 s at most), in this file's own HOME and state folders; stdout also as bytes. */
function sealfs(args: readonly string[]): Promise<{ code: number | null; stdout: string; out: Buffer; stderr: string }> {
  const env = { ...process.env, HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'config'), XDG_STATE_HOME: join(root, 'state') };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { env, encoding: 'buffer', timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      if (err && typeof code !== 'number') reject(err);
      else resolve({ code: code as number, stdout: stdout.toString('utf8'), out: stdout, stderr: stderr.toString('utf8') });
    });
  });
}
const keyArgs = () => ['--keystore', keystore, '--passphrase-file', passFile];

/** A fresh working copy of a frozen cipher folder (hard links made again, git-safe modes). */
let copies = 0;
async function workingCopy(vaultDir: string, hardLinks: VaultV1['hardLinks']): Promise<string> {
  const dir = join(root, `cipher-${copies++}`);
  await copyVault(vaultDir, dir, hardLinks);
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-vault-v1-'));
  keystore = join(root, 'keystore');
  passFile = join(root, 'pass');
  await copyKeystore(VAULT_V1, keystore);
  await writeFile(passFile, `${expected.passphrase}\n`, { mode: 0o600 });
}, 180_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

const parentOf = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';
const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);

describe('frozen vault v1, offline', { timeout: 120_000 }, () => {
  it('sealfs ls --json lists every directory as the expected tree says', async () => {
    const cipher = await workingCopy(VAULT_V1, expected.hardLinks);
    const dirs = ['/', ...expected.tree.filter((e) => e.type === 'dir').map((e) => e.path)];
    for (const dir of dirs) {
      const r = await sealfs(['ls', cipher, dir, '--json', ...keyArgs()]);
      expect(r.code, `${dir}: ${r.stderr}`).toBe(EXIT.OK);
      expect(r.stderr).toBe('');
      const listed = (JSON.parse(r.stdout) as { name: string; type: string; size: number; mode: number; target?: string }[]).map(
        ({ name, type, size, mode, target }) => ({ name, type, size, mode: mode.toString(8), ...(target !== undefined ? { target } : {}) }),
      );
      const children = expected.tree
        .filter((e) => parentOf(e.path) === dir)
        .map((e: PlainEntry) => ({ name: nameOf(e.path), type: e.type, size: e.type === 'dir' ? undefined : e.size, mode: e.mode, ...(e.target !== undefined ? { target: e.target } : {}) }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      // A directory's size is the cipher directory's (file-system dependent): not compared.
      expect(listed.map((e) => (e.type === 'dir' ? { ...e, size: undefined } : e)), dir).toEqual(children);
    }
  });

  it('sealfs cat gives every file exactly (SHA-256 of the expected plaintext)', async () => {
    const cipher = await workingCopy(VAULT_V1, expected.hardLinks);
    const files = expected.tree.filter((e) => e.type === 'file');
    expect(files.length).toBeGreaterThan(15);
    for (const file of files) {
      const r = await sealfs(['cat', cipher, file.path, ...keyArgs()]);
      expect(r.code, `${file.path}: ${r.stderr}`).toBe(EXIT.OK);
      const bytes = r.out;
      expect({ path: file.path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }).toEqual({
        path: file.path,
        size: file.size,
        sha256: file.sha256,
      });
    }
  });

  it('sealfs scrub --json finds it clean, and its report is the frozen one', async () => {
    const cipher = await workingCopy(VAULT_V1, expected.hardLinks);
    const r = await sealfs(['scrub', cipher, '--json', ...keyArgs()]);
    expect(r.code, r.stderr).toBe(EXIT.OK);
    expect(normaliseScrub(r.stdout, cipher)).toEqual(expected.scrub);
    expect(expected.scrub.problems).toEqual([]);
  });

  it('sealfs scrub --json of the frozen damaged copy gives exactly the frozen report (exit 9)', async () => {
    const cipher = await workingCopy(VAULT_V1_DAMAGED, damaged.hardLinks);
    const r = await sealfs(['scrub', cipher, '--json', ...keyArgs()]);
    expect(r.code, r.stderr).toBe(EXIT.PROBLEMS);
    expect(normaliseScrub(r.stdout, cipher)).toEqual(damaged.scrub);
    // Every recorded damage has its problem, and every problem is at a damaged path.
    const at = new Set(damaged.scrub.problems.map((p) => p.cipherPath));
    expect([...at].sort()).toEqual(damaged.damage.map((d) => `<cipher>/${d.cipherPath}`).sort());
  });
});
