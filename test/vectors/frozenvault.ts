/**
 * The frozen vaults test/vectors/vault-v1/ and test/vectors/vault-v1-damaged/ (see
 * test/vectors/README.md, "Frozen vaults"): their expected.json files, and how a test puts a
 * working copy of one in a temporary folder. Node built-ins only, no sealfs code: the
 * generator, the mount test and the offline/scrub test all share it.
 *
 * Git stores neither hard links nor file modes beyond the x bit, nor empty directories. So the
 * committed cipher folders hold one name per hard-linked file (expected.json lists the other
 * names), the copy gives every file mode 0644 or 0755 (by its x bit) and every directory
 * 0755, and the vaults have no empty directory.
 */
import { chmod, copyFile, link, mkdir, readdir, readFile, readlink, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VECTORS_DIR = fileURLToPath(new URL('.', import.meta.url));
export const VAULT_V1 = join(VECTORS_DIR, 'vault-v1');
export const VAULT_V1_DAMAGED = join(VECTORS_DIR, 'vault-v1-damaged');

/** A second name of a file: `cipherPath` is to be made a hard link of `sameAs` (both relative to the cipher folder). */
export interface HardLink {
  readonly cipherPath: string;
  readonly sameAs: string;
}

/** One entry of the plaintext tree, as the mount and `sealfs ls` show it. */
export interface PlainEntry {
  /** Absolute plaintext path ('/'-separated, as shown: conflict copies under their display name). */
  readonly path: string;
  readonly type: 'dir' | 'file' | 'symlink';
  /** Permission bits (octal text), as they are after copyVault() (git's 0644/0755 for files). */
  readonly mode: string;
  /** Plaintext size (symlinks: the target's length in bytes). */
  readonly size: number;
  /** Files: SHA-256 of the plaintext, hex. */
  readonly sha256?: string;
  /** Symlinks: the decrypted target. */
  readonly target?: string;
  /** Files: the other plaintext names of the same file (hard links). */
  readonly links?: readonly string[];
}

/** The CLI's `scrub --json` object, cipher paths written as `<cipher>/rel`. */
export interface ScrubReport {
  readonly files: number;
  readonly bytes: number;
  readonly skipped: number;
  readonly problems: readonly { kind: string; cipherPath: string; plainPath: string | null; chunk: number | null; detail: string }[];
}

export interface VaultV1 {
  readonly passphrase: string;
  readonly recoveryKey: string;
  /** The master key, hex (what both the passphrase and the recovery key must give). */
  readonly masterKey: string;
  readonly vaultId: string;
  readonly cipher: string;
  readonly chunkSize: number;
  readonly maxNameLength: number;
  readonly hardLinks: readonly HardLink[];
  readonly tree: readonly PlainEntry[];
  readonly scrub: ScrubReport;
}

export interface VaultV1Damaged {
  readonly hardLinks: readonly HardLink[];
  /** What was done to a copy of vault-v1, and where (in words; the bytes are frozen). */
  readonly damage: readonly { readonly cipherPath: string; readonly what: string }[];
  readonly scrub: ScrubReport;
}

export const EXPECTED = 'expected.json';

export async function loadExpected<T>(vaultDir: string): Promise<T> {
  return JSON.parse(await readFile(join(vaultDir, EXPECTED), 'utf8')) as T;
}

/** Mode a frozen file gets in a copy: git keeps only whether it is executable. */
export const fileModeFor = (executable: boolean) => (executable ? 0o755 : 0o644);
export const DIR_MODE = 0o755;

/**
 * Copies a cipher folder (symlinks as symlinks, never followed), skipping `skip` (relative
 * paths), with the modes of fileModeFor/DIR_MODE. The source is read entry by entry with
 * lstat-typed readdir; anything but a file, directory or symlink is refused.
 */
export async function copyCipherTree(from: string, to: string, skip: ReadonlySet<string> = new Set()): Promise<void> {
  const visit = async (rel: string): Promise<void> => {
    const dest = rel ? join(to, rel) : to;
    await mkdir(dest, { recursive: true });
    for (const entry of await readdir(rel ? join(from, rel) : from, { withFileTypes: true })) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (skip.has(childRel)) continue;
      const src = join(from, childRel);
      if (entry.isDirectory()) await visit(childRel);
      else if (entry.isSymbolicLink()) await symlink(await readlink(src), join(to, childRel));
      else if (entry.isFile()) {
        await copyFile(src, join(to, childRel));
        await chmod(join(to, childRel), fileModeFor(((await stat(src)).mode & 0o111) !== 0));
      } else throw new Error(`${src}: not a file, directory or symlink`);
    }
    await chmod(dest, DIR_MODE);
  };
  await visit('');
}

/** A working copy of a frozen cipher folder at `to`, its hard links made again. */
export async function copyVault(vaultDir: string, to: string, hardLinks: readonly HardLink[]): Promise<void> {
  await copyCipherTree(join(vaultDir, 'cipher'), to);
  for (const l of hardLinks) await link(join(to, l.sameAs), join(to, l.cipherPath));
}

/** The frozen key store (one `<vaultId>.key`), copied to `to` with the modes sealfs gives it (0700, 0600). */
export async function copyKeystore(vaultDir: string, to: string): Promise<void> {
  await copyCipherTree(join(vaultDir, 'keystore'), to);
  await chmod(to, 0o700);
  for (const name of await readdir(to)) await chmod(join(to, name), 0o600);
}

/** `scrub --json` output with the absolute cipher folder written as `<cipher>`, so runs compare. */
export function normaliseScrub(stdout: string, cipherDir: string): ScrubReport {
  const report = JSON.parse(stdout) as ScrubReport;
  const rel = (path: string) => (path === cipherDir ? '<cipher>' : path.startsWith(cipherDir + '/') ? `<cipher>/${path.slice(cipherDir.length + 1)}` : path);
  return { ...report, problems: report.problems.map((p) => ({ ...p, cipherPath: rel(p.cipherPath), detail: p.detail.split(cipherDir).join('<cipher>') })) };
}
