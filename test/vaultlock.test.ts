/**
 * The vault folder's lock (src/vault/vaultlock.ts, native fsatLockFolder) and the cipher
 * folder's largest file (CipherIo.maxFileSize), in this process: no mount.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxPlainSize, sealedSize } from '../src/crypto/geometry.js';
import { cipherIoFor } from '../src/vault/cipherio.js';
import { lockVaultFolder } from '../src/vault/vaultlock.js';

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-vaultlock-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('lockVaultFolder', () => {
  it('holds the folder once: a second taker, by any path, finds it busy and its holder; released, it is free again', async () => {
    const vault = join(root, 'vault');
    await mkdir(vault);
    const first = await lockVaultFolder(vault);
    expect(first.state).toBe('held');
    await symlink(vault, join(root, 'link'));
    for (const path of [vault, join(root, 'link'), `${vault}/.`]) {
      const second = await lockVaultFolder(path);
      expect(second.state, path).toBe('busy');
      expect(second.state === 'busy' && second.holder).toBe(process.pid);
      expect(second.folder).toEqual(first.folder);
    }
    // Nothing was written for it.
    expect(await readdir(vault)).toEqual([]);
    if (first.state === 'held') first.release();
    const again = await lockVaultFolder(vault);
    expect(again.state).toBe('held');
    if (again.state === 'held') again.release();
  });

  it('is let go by the kernel when the holding process ends', async () => {
    const vault = join(root, 'vault2');
    await mkdir(vault);
    // flock(1) holds it in another process, which ends at once.
    execFileSync('flock', ['--exclusive', '--nonblock', vault, 'true']);
    const lock = await lockVaultFolder(vault);
    expect(lock.state).toBe('held');
    if (lock.state === 'held') lock.release();
  });

  it('refuses a path that is not a folder', async () => {
    await writeFile(join(root, 'file'), 'x');
    await expect(lockVaultFolder(join(root, 'file'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(lockVaultFolder(join(root, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('CipherIo.maxFileSize', () => {
  it("finds the cipher folder's largest file without changing the file, confined as every call", async () => {
    const vault = join(root, 'sizes');
    await mkdir(vault);
    await writeFile(join(vault, 'f'), 'abc');
    for (const direct of [true, false]) {
      const io = cipherIoFor({ directIo: direct }, vault);
      const max = await io.maxFileSize(join(vault, 'f'));
      // Every file system that holds a vault takes at least 4 GiB - 1 (FAT32's limit).
      expect(max).toBeGreaterThanOrEqual(2 ** 32 - 1);
      expect((await io.lstat(join(vault, 'f'))).size).toBe(3);
      // A link or FIFO planted in the file's place is not followed or waited on; a path outside is refused.
      await symlink('/etc/passwd', join(vault, 'link')).catch(() => undefined);
      await expect(io.maxFileSize(join(vault, 'link'))).rejects.toMatchObject({ code: 'ELOOP' });
      execFileSync('mkfifo', [join(vault, `fifo-${direct}`)]);
      await expect(io.maxFileSize(join(vault, `fifo-${direct}`))).rejects.toMatchObject({ code: 'EIO' });
      await expect(io.maxFileSize('/etc/passwd')).rejects.toMatchObject({ code: 'EXDEV' });
    }
  });
});

describe('maxPlainSize', () => {
  it('is the largest plaintext whose sealed file fits, and never past 2^53 - 1', () => {
    const C = 64 * 1024;
    for (const limit of [52, 53, 24 + C + 28, 24 + C + 28 + 28, 24 + C + 28 + 29, 4 * 2 ** 30 - 1, 16 * 2 ** 40 - 4096]) {
      const max = maxPlainSize(limit, C);
      expect(sealedSize(max, C), String(limit)).toBeLessThanOrEqual(limit);
      expect(sealedSize(max + 1, C), String(limit)).toBeGreaterThan(limit);
    }
    const top = maxPlainSize(2 ** 63, C);
    expect(sealedSize(top, C)).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    expect(sealedSize(top + 1, C)).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
  });
});
