/**
 * Extended attributes and fallocate in process (PlainFs, no FUSE): the frozen vectors read
 * with sealfs's own code (test/vectors/xattr.json, FORMAT.md §14.2), then set/get/list/remove
 * on files, directories, the root and links, the limits, and what a provider can do to the
 * cipher entries' attributes (copy a sealed value to another file or name, plant names,
 * damage a value); and fallocate's modes on the sealed file (FORMAT.md §14.3).
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateMasterKey } from '../src/crypto/keyfile.js';
import { deriveSubkey } from '../src/crypto/kdf.js';
import { NameCipher } from '../src/vault/names.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { openVault, type Vault } from '../src/vault/vault.js';
import { newVaultConfig, writeVaultFile } from '../src/vault/vaultfile.js';
import { MAX_PLAIN_XATTR_NAME, MAX_PLAIN_XATTR_VALUE, XattrCipher, type XattrOwner } from '../src/vault/xattrs.js';
import type { CipherName } from '../src/crypto/ciphers.js';
import { loadVector, unhex } from './vectors/spec.js';

const enc = (s: string) => new TextEncoder().encode(s);
const code = (p: Promise<unknown>) => p.then(() => 'ok', (err: NodeJS.ErrnoException) => err.code ?? String(err));

interface XattrVectors {
  masterKey: string;
  cases: { cipher: CipherName; ownerKind: 'file' | 'dir'; binding: string; name: string; storedName: string; value: string; storedValue: string }[];
}

describe('FORMAT.md §14.2 vectors, read with sealfs code', () => {
  const vectors = loadVector<XattrVectors>('xattr.json');
  const MK = unhex(vectors.masterKey);
  const names = new NameCipher(deriveSubkey(MK, 'names'), deriveSubkey(MK, 'dirid'));

  it('every stored name and value of the vectors opens to its plaintext; moved values and foreign names do not', () => {
    for (const c of vectors.cases) {
      const xattrs = new XattrCipher(deriveSubkey(MK, 'xattr'), names, c.cipher);
      const owner: XattrOwner = c.ownerKind === 'file' ? { kind: 'file', header: unhex(c.binding) } : { kind: 'dir', dirId: unhex(c.binding) };
      expect(xattrs.cipherName(unhex(c.name))).toBe(c.storedName);
      expect(xattrs.plainName(Buffer.from(c.storedName, 'latin1'))).toEqual(unhex(c.name));
      expect(xattrs.open(owner, unhex(c.name), unhex(c.storedValue))).toEqual(Buffer.from(unhex(c.value)));
      expect(xattrs.open(owner, enc('user.other'), unhex(c.storedValue))).toBeUndefined();
    }
    const xattrs = new XattrCipher(deriveSubkey(MK, 'xattr'), names, 'aes-256-gcm');
    expect(xattrs.plainName(Buffer.from('user.xdg.tags'))).toBeNull(); // not ours: ignored
    expect(xattrs.plainName(Buffer.from('security.selinux'))).toBeNull();
    expect(xattrs.plainName(Buffer.from('user.sealfs.junk'))).toBeUndefined(); // ours by prefix, does not decrypt
    expect(xattrs.plainName(Buffer.from('user.sealfs.' + vectors.cases[0]!.storedName.slice(12).toUpperCase()))).toBeUndefined(); // not canonical
  });
});

let dir: string;
let vault: Vault;
let fs: PlainFs;
let log: string[];
const key = generateMasterKey();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealfs-xattrs-'));
  await writeVaultFile(dir, newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255 }), key);
  vault = await openVault(dir, key, { backend: 'node' });
  log = [];
  fs = new PlainFs(vault, { log: (line) => log.push(line) });
});
afterEach(async () => {
  await fs.releaseAll();
  await rm(dir, { recursive: true, force: true });
});

async function file(path: string, content = 'content'): Promise<void> {
  const fh = await fs.create(path, 0o644);
  await fs.write(fh, 0, enc(content));
  await fs.release(fh);
}

/** The names of the cipher entry's own attributes (Node has no xattr calls: the addon's confined one). */
const cipherXattrs = async (cipherPath: string) => (await vault.io.listxattr(cipherPath)).map((n) => n.toString('latin1'));

describe('PlainFs extended attributes', () => {
  it('set, get, list and remove on a file, a directory and the root; XATTR_CREATE and XATTR_REPLACE; ENODATA', async () => {
    await file('/f');
    await fs.mkdir('/d', 0o755);
    for (const path of ['/f', '/d', '/']) {
      expect(await fs.listxattr(path)).toEqual([]);
      await fs.setxattr(path, enc('user.xdg.tags'), enc(`red ${path}`), 'set');
      await fs.setxattr(path, Uint8Array.from([...enc('user.'), 0xff]), Uint8Array.of(0, 1, 2), 'set');
      expect(Buffer.from(await fs.getxattr(path, enc('user.xdg.tags'))).toString()).toBe(`red ${path}`);
      expect(await fs.getxattr(path, Uint8Array.from([...enc('user.'), 0xff]))).toEqual(Buffer.from([0, 1, 2]));
      expect((await fs.listxattr(path)).map((n) => Buffer.from(n).toString('latin1')).sort()).toEqual(['user.xdg.tags', 'user.\xff']);
      expect(await code(fs.setxattr(path, enc('user.xdg.tags'), enc('x'), 'create'))).toBe('EEXIST');
      expect(await code(fs.setxattr(path, enc('user.absent'), enc('x'), 'replace'))).toBe('ENODATA');
      await fs.setxattr(path, enc('user.xdg.tags'), enc('blue'), 'replace');
      expect(Buffer.from(await fs.getxattr(path, enc('user.xdg.tags'))).toString()).toBe('blue');
      await fs.setxattr(path, enc('user.empty'), new Uint8Array(0), 'create');
      expect(await fs.getxattr(path, enc('user.empty'))).toHaveLength(0);
      await fs.removexattr(path, enc('user.xdg.tags'));
      expect(await code(fs.getxattr(path, enc('user.xdg.tags')))).toBe('ENODATA');
      expect(await code(fs.removexattr(path, enc('user.xdg.tags')))).toBe('ENODATA');
    }
    // Stored under encrypted names with sealed values: nothing of the plaintext.
    const cipherFile = (await vault.tree.resolve('/f')).cipherPath;
    const stored = await cipherXattrs(cipherFile);
    expect(stored).toHaveLength(2);
    for (const name of stored) expect(name).toMatch(/^user\.sealfs\.[a-z2-7]+$/);
    expect(stored.join()).not.toMatch(/xdg|tags|empty/);
  });

  it('links have none (EPERM to set or remove, ENODATA to read); other namespaces are EOPNOTSUPP to set, ENODATA to read', async () => {
    await file('/f');
    await fs.symlink('f', '/l');
    expect(await code(fs.setxattr('/l', enc('user.a'), enc('1'), 'set'))).toBe('EPERM');
    expect(await code(fs.removexattr('/l', enc('user.a')))).toBe('EPERM');
    expect(await code(fs.getxattr('/l', enc('user.a')))).toBe('ENODATA');
    expect(await fs.listxattr('/l')).toEqual([]);
    for (const name of ['security.selinux', 'trusted.overlay.opaque', 'system.posix_acl_access', 'system.posix_acl_default']) {
      expect(await code(fs.setxattr('/f', enc(name), enc('1'), 'set')), name).toBe('EOPNOTSUPP');
      expect(await code(fs.removexattr('/f', enc(name))), name).toBe('EOPNOTSUPP');
      expect(await code(fs.getxattr('/f', enc(name))), name).toBe('ENODATA');
    }
    expect(await code(fs.setxattr('/f', enc('user.'), enc('1'), 'set'))).toBe('EINVAL');
  });

  it('limits: names up to 135 bytes (longer: ERANGE), values up to 65,506 bytes (longer: E2BIG)', async () => {
    await file('/f');
    const longest = enc('user.' + 'n'.repeat(MAX_PLAIN_XATTR_NAME - 5));
    expect(MAX_PLAIN_XATTR_NAME).toBe(135);
    expect(MAX_PLAIN_XATTR_VALUE).toBe(65_506);
    await fs.setxattr('/f', longest, enc('v'), 'set');
    expect(Buffer.from(await fs.getxattr('/f', longest)).toString()).toBe('v');
    const tooLong = enc('user.' + 'n'.repeat(MAX_PLAIN_XATTR_NAME - 4));
    expect(await code(fs.setxattr('/f', tooLong, enc('v'), 'set'))).toBe('ERANGE');
    expect(await code(fs.getxattr('/f', tooLong))).toBe('ENODATA');
    expect(await code(fs.setxattr('/f', enc('user.big'), new Uint8Array(MAX_PLAIN_XATTR_VALUE + 1), 'set'))).toBe('E2BIG');
  });

  it('hard links share the attributes; renaming a file or a directory keeps them', async () => {
    await file('/f');
    await fs.mkdir('/d', 0o755);
    await fs.setxattr('/f', enc('user.a'), enc('file'), 'set');
    await fs.setxattr('/d', enc('user.a'), enc('dir'), 'set');
    await fs.link('/f', '/g');
    expect(Buffer.from(await fs.getxattr('/g', enc('user.a'))).toString()).toBe('file');
    await fs.rename('/f', '/d/moved');
    await fs.rename('/d', '/e');
    expect(Buffer.from(await fs.getxattr('/e/moved', enc('user.a'))).toString()).toBe('file');
    expect(Buffer.from(await fs.getxattr('/e', enc('user.a'))).toString()).toBe('dir');
  });

  it('a sealed value copied to another file, directory or name fails with EIO (logged); foreign names are not listed; planted or damaged ones are skipped (logged once) or EIO', async () => {
    await file('/a');
    await file('/b');
    await fs.mkdir('/d', 0o755);
    await fs.setxattr('/a', enc('user.secret'), enc('of a'), 'set');
    await fs.setxattr('/a', enc('user.other'), enc('x'), 'set');
    const [a, b, d] = await Promise.all(['/a', '/b', '/d'].map(async (p) => (await vault.tree.resolve(p)).cipherPath));
    const storedName = vault.xattrs.cipherName(enc('user.secret'));
    const storedValue = await vault.io.getxattr(a!, storedName);
    // The provider copies the sealed value to another file and to a directory, under the same name.
    await vault.io.setxattr(b!, storedName, storedValue, 'set');
    await vault.io.setxattr(d!, storedName, storedValue, 'set');
    expect(await code(fs.getxattr('/b', enc('user.secret')))).toBe('EIO');
    expect(await code(fs.getxattr('/d', enc('user.secret')))).toBe('EIO');
    // ... and to another name of the same file.
    await vault.io.setxattr(a!, vault.xattrs.cipherName(enc('user.other')), storedValue, 'set');
    expect(await code(fs.getxattr('/a', enc('user.other')))).toBe('EIO');
    expect(log.filter((line) => line.startsWith('integrity:') && line.includes('does not authenticate'))).toHaveLength(3);
    // A damaged value.
    const damaged = Buffer.from(storedValue);
    damaged[damaged.length - 1]! ^= 1;
    await vault.io.setxattr(a!, storedName, damaged, 'set');
    expect(await code(fs.getxattr('/a', enc('user.secret')))).toBe('EIO');
    // Foreign names (a sync client's, the system's) are not shown; planted ones of ours are skipped and logged once.
    await vault.io.setxattr(b!, 'user.com.dropbox.attrs', enc('foreign'), 'set');
    await vault.io.setxattr(b!, 'user.sealfs.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', enc('planted'), 'set');
    await vault.io.setxattr(b!, 'user.sealfs.NOT-BASE32', enc('planted'), 'set');
    log.length = 0;
    expect((await fs.listxattr('/b')).map((n) => Buffer.from(n).toString())).toEqual(['user.secret']);
    expect(await fs.listxattr('/b')).toHaveLength(1);
    expect(log.filter((line) => line.includes('does not decrypt'))).toHaveLength(2);
    expect(log.join('\n')).not.toContain('planted');
    // A file whose header is damaged has no readable attributes.
    const bytes = await readFile(b!);
    await writeFile(b!, Buffer.concat([Buffer.from('XXXX'), bytes.subarray(4)]));
    expect(await code(fs.getxattr('/b', enc('user.secret')))).toBe('EIO');
  });

  it('refuses to write on a read-only vault', async () => {
    await file('/f');
    const ro = new PlainFs(vault, { readOnly: true });
    expect(await code(ro.setxattr('/f', enc('user.a'), enc('1'), 'set'))).toBe('EROFS');
    expect(await code(ro.removexattr('/f', enc('user.a')))).toBe('EROFS');
  });
});

describe('PlainFs fallocate', () => {
  const C = 4096;
  const sealed = (size: number) => 24 + size + 28 * Math.max(1, Math.ceil(size / C));
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const contents = async (path: string) => {
    const fh = await fs.open(path, constants.O_RDONLY);
    try {
      return Buffer.from(await fs.read(fh, 0, 1 << 24));
    } finally {
      await fs.release(fh);
    }
  };

  it('mode 0 grows the file with zeros; KEEP_SIZE reserves without growing; PUNCH_HOLE and ZERO_RANGE read as zeros and still authenticate', async () => {
    const data = Buffer.alloc(10_000, 7);
    await file('/f', data.toString('latin1'));
    const cipherPath = (await vault.tree.resolve('/f')).cipherPath;
    const fh = await fs.open('/f', constants.O_RDWR);
    // Within the file: nothing changes.
    await fs.fallocate(fh, 0, 5000, { zero: false, keepSize: false });
    expect(sha(await fs.read(fh, 0, 1 << 20))).toBe(sha(data));
    // Past the end: grows to 20,000, zeros after 10,000.
    await fs.fallocate(fh, 15_000, 5000, { zero: false, keepSize: false });
    let model = Buffer.concat([data, Buffer.alloc(10_000)]);
    expect((await fs.fgetattr(fh)).size).toBe(20_000);
    // KEEP_SIZE past the end: the size stays, disk space is reserved in the cipher file.
    const before = (await lstat(cipherPath)).blocks;
    await fs.fallocate(fh, 0, 1 << 20, { zero: false, keepSize: true });
    expect((await fs.fgetattr(fh)).size).toBe(20_000);
    expect((await stat(cipherPath)).size).toBe(sealed(20_000));
    expect((await lstat(cipherPath)).blocks).toBeGreaterThan(before + 1000);
    // PUNCH_HOLE | KEEP_SIZE across chunk boundaries, partly past the end.
    await fs.write(fh, 10_000, Buffer.alloc(10_000, 9));
    model = Buffer.concat([data, Buffer.alloc(10_000, 9)]);
    await fs.fallocate(fh, 3000, 6000, { zero: true, keepSize: true });
    model.fill(0, 3000, 9000);
    await fs.fallocate(fh, 19_000, 5000, { zero: true, keepSize: true });
    model.fill(0, 19_000, 20_000);
    expect((await fs.fgetattr(fh)).size).toBe(20_000);
    // ZERO_RANGE without KEEP_SIZE past the end grows the file.
    await fs.fallocate(fh, 18_000, 7000, { zero: true, keepSize: false });
    model = Buffer.concat([model.subarray(0, 18_000), Buffer.alloc(7000)]);
    await fs.release(fh);
    const got = await contents('/f');
    expect(got.length).toBe(25_000);
    expect(sha(got)).toBe(sha(model));
    expect((await stat(cipherPath)).size).toBe(sealed(25_000));
    // Another reader (a new vault instance) verifies every chunk.
    const other = new PlainFs(await openVault(dir, key, { backend: 'node' }));
    const oh = await other.open('/f', constants.O_RDONLY);
    expect(sha(await other.read(oh, 0, 1 << 20))).toBe(sha(model));
    await other.release(oh);
  });

  it('a read-only handle is EBADF; a zero or negative length is EINVAL', async () => {
    await file('/f');
    const ro = await fs.open('/f', constants.O_RDONLY);
    expect(await code(fs.fallocate(ro, 0, 10, { zero: false, keepSize: false }))).toBe('EBADF');
    await fs.release(ro);
    const rw = await fs.open('/f', constants.O_RDWR);
    expect(await code(fs.fallocate(rw, 0, 0, { zero: false, keepSize: false }))).toBe('EINVAL');
    expect(await code(fs.fallocate(rw, -1, 10, { zero: false, keepSize: false }))).toBe('EINVAL');
    await fs.release(rw);
  });
});
