import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateMasterKey } from '../src/crypto/keyfile.js';
import { newVaultConfig, writeVaultFile } from '../src/vault/vaultfile.js';
import { openVault } from '../src/vault/vault.js';
import { PlainFs } from '../src/vault/plainfs.js';

let dir: string;
let fs: PlainFs;
const key = generateMasterKey();
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealfs-plainfs-'));
  await writeVaultFile(dir, newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255 }), key);
  fs = new PlainFs(await openVault(dir, key, { backend: 'node' }));
});
afterEach(async () => {
  await fs.releaseAll();
  await rm(dir, { recursive: true, force: true });
});

describe('PlainFs without FUSE', () => {
  it('creates, writes, reads, lists, renames and removes', async () => {
    await fs.mkdir('/docs', 0o755);
    const fh = await fs.create('/docs/a.txt', 0o644);
    await fs.write(fh, 0, enc('hello world'));
    await fs.write(fh, 10000, enc('tail'));
    expect((await fs.getattr('/docs/a.txt')).size).toBe(10004);
    await fs.release(fh);
    expect((await fs.getattr('/docs/a.txt')).size).toBe(10004);
    const rh = await fs.open('/docs/a.txt', constants.O_RDONLY);
    expect(dec(await fs.read(rh, 0, 11))).toBe('hello world');
    expect(dec(await fs.read(rh, 10000, 100))).toBe('tail');
    await fs.release(rh);
    expect(await fs.readdir('/')).toEqual(['docs']);
    await fs.rename('/docs', '/papers');
    expect(await fs.readdir('/papers')).toEqual(['a.txt']);
    await fs.symlink('../x/y', '/papers/link');
    expect(await fs.readlink('/papers/link')).toBe('../x/y');
    await fs.link('/papers/a.txt', '/b.txt');
    expect((await fs.getattr('/b.txt')).size).toBe(10004);
    await fs.mkdir('/' + 'n'.repeat(200), 0o755);
    expect((await fs.readdir('/')).sort()).toEqual(['b.txt', 'n'.repeat(200), 'papers']);
    await fs.rmdir('/' + 'n'.repeat(200));
    await fs.unlink('/papers/link');
    await fs.unlink('/papers/a.txt');
    await fs.rmdir('/papers');
    expect(await fs.readdir('/')).toEqual(['b.txt']);
    const raw = await readdir(dir);
    expect(raw.length).toBe(2);
  });

  it('a write of nothing changes nothing, also past the end (as pwrite(2))', async () => {
    const fh = await fs.create('/z.txt', 0o644);
    await fs.write(fh, 0, enc('abc'));
    expect(await fs.write(fh, 9000, new Uint8Array(0))).toBe(0);
    expect((await fs.fgetattr(fh)).size).toBe(3);
    await fs.release(fh);
    expect((await fs.getattr('/z.txt')).size).toBe(3);
  });
});
