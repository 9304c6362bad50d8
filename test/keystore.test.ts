import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt, scryptSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateMasterKey } from '../src/crypto/keyfile.js';
import { VaultError, type VaultProblem } from '../src/vault/errors.js';
import { changeVaultPassphrase, importKeyIntoKeystore, initVault, readKeyOrRecoveryFile, unlockVault } from '../src/vault/init.js';
import {
  assertKeyLocationAllowed,
  calibrateScrypt,
  changePassphrase,
  defaultKeystoreDir,
  KeyExistsError,
  SCRYPT_MIN_LOG2N,
  keyFilePath,
  storeMasterKey,
  unlockMasterKey,
  type KeyStoreFile,
} from '../src/vault/keystore.js';
import { SYNC_MARKERS } from '../src/vault/syncclients.js';
import { encodeRecoveryKey } from '../src/vault/recovery.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import { toHex } from './helpers.js';

const FAST = 20;
const VAULT_ID = '0b7d6c0e-8f5a-4c39-9a7e-2f0d7c1e5b42';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-keystore-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
async function freshDir(): Promise<string> {
  const dir = join(root, `t${counter++}`);
  await mkdir(dir);
  return dir;
}

async function expectVaultError(promise: Promise<unknown>, kind: VaultProblem): Promise<VaultError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof VaultError && err.kind === kind) return err;
    throw err;
  }
  return expect.fail(`expected VaultError(${kind})`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Hash of a tree: every path, type, mode and content (or link target). */
async function treeHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  async function walk(at: string): Promise<void> {
    const entries = (await readdir(at, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = join(at, entry.name);
      const info = await stat(path).catch(() => undefined);
      hash.update(`${relative(dir, path)}\0${info?.mode}\0${info?.mtimeMs}\0`);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isSymbolicLink()) hash.update(await readlink(path));
      else hash.update(await readFile(path));
    }
  }
  await walk(dir);
  return hash.digest('hex');
}

describe('defaultKeystoreDir', () => {
  const saved = { xdg: process.env.XDG_CONFIG_HOME, home: process.env.HOME };
  afterEach(() => {
    if (saved.xdg === undefined) delete process.env.XDG_CONFIG_HOME;
    else process.env.XDG_CONFIG_HOME = saved.xdg;
    process.env.HOME = saved.home;
  });

  it('is $XDG_CONFIG_HOME/sealfs, else ~/.config/sealfs', () => {
    process.env.XDG_CONFIG_HOME = '/x/config';
    expect(defaultKeystoreDir()).toBe('/x/config/sealfs');
    delete process.env.XDG_CONFIG_HOME;
    process.env.HOME = '/home/alice';
    expect(defaultKeystoreDir()).toBe('/home/alice/.config/sealfs');
    process.env.XDG_CONFIG_HOME = 'relative/ignored';
    expect(defaultKeystoreDir()).toBe('/home/alice/.config/sealfs');
  });

  it('reads a given environment instead of the process one (the CLI passes its own)', () => {
    process.env.XDG_CONFIG_HOME = '/x/config';
    expect(defaultKeystoreDir({ XDG_CONFIG_HOME: '/y/config', HOME: '/home/bob' })).toBe('/y/config/sealfs');
    expect(defaultKeystoreDir({ HOME: '/home/bob' })).toBe('/home/bob/.config/sealfs');
  });
});

describe('key store', () => {
  it('stores and unlocks (round trip)', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const masterKey = generateMasterKey();
    const path = await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'vault'), masterKey, passphrase: 'pässwörd', kdfTargetMs: FAST });
    expect(path).toBe(join(keystoreDir, `${VAULT_ID}.key`));
    const unlocked = await unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'pässwörd' });
    expect(toHex(unlocked)).toBe(toHex(masterKey));
    // The passphrase is NFC-normalised: a decomposed ä unlocks as well.
    const decomposed = 'pässwörd'.normalize('NFD');
    expect(decomposed).not.toBe('pässwörd');
    expect(toHex(await unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: decomposed }))).toBe(toHex(masterKey));
    // A lazy passphrase source works the same.
    expect(toHex(await unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: async () => 'pässwörd' }))).toBe(toHex(masterKey));
  });

  it('refuses a wrong passphrase', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'vault'), masterKey: generateMasterKey(), passphrase: 'right', kdfTargetMs: FAST });
    const err = await expectVaultError(unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'wrong' }), 'wrong-passphrase');
    expect(err.message).toBe('wrong passphrase');
  });

  it('says how to restore a missing key, naming the vault folder (quoted for the shell) and the key store', async () => {
    const dir = await freshDir();
    const err = await expectVaultError(unlockMasterKey({ keystoreDir: dir, vaultId: VAULT_ID, passphrase: 'x', cipherDir: join(dir, 'my vault') }), 'no-key');
    expect(err.message).toBe(`no key for vault ${VAULT_ID} in ${dir}; restore it from the recovery key with \`sealfs key import '${join(dir, 'my vault')}' --keystore ${dir}\``);
  });

  it('never asks for the passphrase when there is no key', async () => {
    const dir = await freshDir();
    let asked = false;
    await expectVaultError(
      unlockMasterKey({
        keystoreDir: dir,
        vaultId: VAULT_ID,
        passphrase: async () => {
          asked = true;
          return 'x';
        },
      }),
      'no-key',
    );
    expect(asked).toBe(false);
  });

  it('writes the key file with mode 0600 in a 0700 folder, and no temporary files', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'deep', 'ks');
    const path = await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'vault'), masterKey: generateMasterKey(), passphrase: 'p', kdfTargetMs: FAST });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(keystoreDir)).mode & 0o777).toBe(0o700);
    expect(await readdir(keystoreDir)).toEqual([`${VAULT_ID}.key`]);
  });

  it('records format, vault id, cipher dir, scrypt parameters and the wrapped key', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const cipherDir = join(dir, 'vault');
    const path = await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir, masterKey: generateMasterKey(), passphrase: 'p', kdfTargetMs: FAST });
    const file = JSON.parse(await readFile(path, 'utf8')) as KeyStoreFile;
    expect(file.format).toBe('sealfs-keystore');
    expect(file.version).toBe(1);
    expect(file.vaultId).toBe(VAULT_ID);
    expect(file.cipherDir).toBe(cipherDir);
    expect(file.kdf.name).toBe('scrypt');
    expect(Buffer.from(file.kdf.salt, 'base64')).toHaveLength(16);
    expect(file.wrappedKey.cipher).toBe('aes-256-gcm');
    expect(Buffer.from(file.wrappedKey.nonce, 'base64')).toHaveLength(12);
    expect(Buffer.from(file.wrappedKey.ciphertext, 'base64')).toHaveLength(32);
    expect(Buffer.from(file.wrappedKey.tag, 'base64')).toHaveLength(16);
  });

  it('refuses to overwrite a key file unless asked to', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const base = { keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'vault'), kdfTargetMs: FAST };
    const first = generateMasterKey();
    await storeMasterKey({ ...base, masterKey: first, passphrase: 'one' });
    let asked = false;
    const ask = async () => {
      asked = true;
      return 'two';
    };
    await expect(storeMasterKey({ ...base, masterKey: generateMasterKey(), passphrase: ask })).rejects.toBeInstanceOf(KeyExistsError);
    expect(asked).toBe(false);
    expect(toHex(await unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'one' }))).toBe(toHex(first));
    const second = generateMasterKey();
    await storeMasterKey({ ...base, masterKey: second, passphrase: 'two', replace: true });
    expect(toHex(await unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'two' }))).toBe(toHex(second));
    expect(await readdir(keystoreDir)).toEqual([`${VAULT_ID}.key`]);
  });

  it('never lets a vault id name another path', async () => {
    const dir = await freshDir();
    for (const vaultId of ['../evil', 'a/b', '', VAULT_ID.toUpperCase(), `${VAULT_ID}/..`]) {
      expect(() => keyFilePath(dir, vaultId)).toThrow(VaultError);
      await expectVaultError(unlockMasterKey({ keystoreDir: dir, vaultId, passphrase: 'x' }), 'vault-tampered');
    }
  });

  it('treats a damaged key file as no key, with a way out', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const path = await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'vault'), masterKey: generateMasterKey(), passphrase: 'p', kdfTargetMs: FAST });
    const good = JSON.parse(await readFile(path, 'utf8')) as KeyStoreFile;
    const cases: [string, unknown][] = [
      ['not json', 'garbage{'],
      ['other vault', { ...good, vaultId: '11111111-2222-4333-8444-555555555555' }],
      ['bad N', { ...good, kdf: { ...good.kdf, N: 1000 } }],
      ['huge N', { ...good, kdf: { ...good.kdf, N: 2 ** 30 } }],
      ['other kdf', { ...good, kdf: { ...good.kdf, name: 'pbkdf2' } }],
      ['short tag', { ...good, wrappedKey: { ...good.wrappedKey, tag: 'AAAA' } }],
    ];
    for (const [, content] of cases) {
      await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
      const err = await expectVaultError(unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'p' }), 'no-key');
      expect(err.message).toContain('sealfs key import');
    }
    // A flipped bit in the wrapped key reads as a wrong passphrase: GCM cannot tell them apart.
    const ct = Buffer.from(good.wrappedKey.ciphertext, 'base64');
    ct[0]! ^= 1;
    await writeFile(path, JSON.stringify({ ...good, wrappedKey: { ...good.wrappedKey, ciphertext: ct.toString('base64') } }));
    await expectVaultError(unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'p' }), 'wrong-passphrase');
  });
});

describe('scrypt calibration', () => {
  it('chooses N (a power of two, r = 8, p = 1) so one derivation takes at least the target', async () => {
    const target = 30;
    const calibration = await calibrateScrypt(target);
    expect(calibration.ms).toBeGreaterThanOrEqual(target);
    expect(Number.isInteger(Math.log2(calibration.N))).toBe(true);
    expect(calibration.N).toBeGreaterThanOrEqual(2 ** 14);
    expect(calibration.r).toBe(8);
    expect(calibration.p).toBe(1);
  });

  it('records parameters that reproduce the wrapping key on their own', async () => {
    const target = 30;
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const masterKey = generateMasterKey();
    const path = await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'v'), masterKey, passphrase: 'calibrated', kdfTargetMs: target });
    const file = JSON.parse(await readFile(path, 'utf8')) as KeyStoreFile;
    expect(file.kdf.calibrationMs).toBeGreaterThanOrEqual(target);
    expect(Number.isInteger(Math.log2(file.kdf.N))).toBe(true);
    expect([file.kdf.r, file.kdf.p]).toEqual([8, 1]);

    // Independently of sealfs: scrypt with the recorded parameters, then AES-256-GCM with the documented AAD.
    const { N, r, p, salt } = file.kdf;
    const start = performance.now();
    const wrappingKey = await new Promise<Buffer>((resolve, reject) =>
      scrypt('calibrated', Buffer.from(salt, 'base64'), 32, { N, r, p, maxmem: 256 * N * r }, (err, key) => (err ? reject(err) : resolve(key))),
    );
    const ms = performance.now() - start;
    // Same parameters, same cost (loosely: timing on a busy machine only gets slower, but be generous).
    expect(ms).toBeGreaterThanOrEqual(target / 4);
    const gcm = createDecipheriv('aes-256-gcm', wrappingKey, Buffer.from(file.wrappedKey.nonce, 'base64'));
    gcm.setAAD(Buffer.from(`sealfs keystore v1 ${VAULT_ID}`, 'utf8'));
    gcm.setAuthTag(Buffer.from(file.wrappedKey.tag, 'base64'));
    const unwrapped = Buffer.concat([gcm.update(Buffer.from(file.wrappedKey.ciphertext, 'base64')), gcm.final()]);
    expect(toHex(unwrapped)).toBe(toHex(masterKey));
  });
});

/**
 * A key file for `masterKey` under `passphrase` with any scrypt setting, made the way §12
 * says (as someone who can write the key store could make one), not through sealfs.
 */
function keyFileWith(good: KeyStoreFile, masterKey: Uint8Array, passphrase: string, N: number, r: number): KeyStoreFile {
  const salt = randomBytes(16);
  const wrappingKey = scryptSync(passphrase, salt, 32, { N, r, p: 1, maxmem: 64 * 1024 * 1024 });
  const nonce = randomBytes(12);
  const gcm = createCipheriv('aes-256-gcm', wrappingKey, nonce);
  gcm.setAAD(Buffer.from(`sealfs keystore v1 ${good.vaultId}`, 'utf8'));
  const ciphertext = Buffer.concat([gcm.update(masterKey), gcm.final()]);
  return {
    ...good,
    kdf: { name: 'scrypt', N, r, p: 1, salt: salt.toString('base64') },
    wrappedKey: { cipher: 'aes-256-gcm', nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: gcm.getAuthTag().toString('base64') },
  };
}

describe('the KDF floor: N ≥ 2^14 with r ≥ 8', () => {
  it('is where calibration starts, however small the target', async () => {
    expect(SCRYPT_MIN_LOG2N).toBe(14);
    expect((await calibrateScrypt(0.001)).N).toBe(2 ** 14);
  });

  it('a key file below it is refused when read, before the passphrase is asked, even though it unwraps', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const masterKey = generateMasterKey();
    const path = await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'v'), masterKey, passphrase: 'p', kdfTargetMs: FAST });
    const good = JSON.parse(await readFile(path, 'utf8')) as KeyStoreFile;
    expect(good.kdf.N).toBeGreaterThanOrEqual(2 ** 14);
    // Downgrades as whoever can write the key store would plant them: the same key, the same
    // passphrase, cheaper scrypt (each file unwraps with the passphrase, as the check shows).
    for (const [N, r] of [
      [2 ** 10, 8],
      [2 ** 13, 8],
      [2 ** 14, 4],
      [2 ** 15, 1],
    ] as const) {
      const weak = keyFileWith(good, masterKey, 'p', N, r);
      const wrappingKey = scryptSync('p', Buffer.from(weak.kdf.salt, 'base64'), 32, { N, r, p: 1, maxmem: 64 * 1024 * 1024 });
      const gcm = createDecipheriv('aes-256-gcm', wrappingKey, Buffer.from(weak.wrappedKey.nonce, 'base64'));
      gcm.setAAD(Buffer.from(`sealfs keystore v1 ${VAULT_ID}`, 'utf8'));
      gcm.setAuthTag(Buffer.from(weak.wrappedKey.tag, 'base64'));
      expect(toHex(Buffer.concat([gcm.update(Buffer.from(weak.wrappedKey.ciphertext, 'base64')), gcm.final()]))).toBe(toHex(masterKey));

      await writeFile(path, JSON.stringify(weak));
      let asked = false;
      const passphrase = async () => {
        asked = true;
        return 'p';
      };
      const err = await expectVaultError(unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase }), 'no-key');
      expect(err.message).toContain(`(N = 2^${Math.log2(N)}, r = ${r}) is below the floor (N ≥ 2^14, r ≥ 8)`);
      expect(err.message).toContain(path);
      expect(err.message.split('\n')).toHaveLength(1);
      expect(asked).toBe(false);
      // passwd reads the same way: it cannot carry a weak file forward either.
      await expectVaultError(changePassphrase({ keystoreDir, vaultId: VAULT_ID, oldPassphrase: 'p', newPassphrase: 'q', kdfTargetMs: FAST }), 'no-key');
    }
    // At the floor it unlocks.
    await writeFile(path, JSON.stringify(keyFileWith(good, masterKey, 'p', 2 ** 14, 8)));
    expect(toHex(await unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'p' }))).toBe(toHex(masterKey));
  });
});

describe('key location', () => {
  it('refuses a key store inside, or equal to, the cipher directory', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    await mkdir(cipherDir);
    for (const keyLocation of [cipherDir, join(cipherDir, 'keys'), join(cipherDir, 'a', 'b', `${VAULT_ID}.key`), `${cipherDir}/./x/../`]) {
      const err = await expectVaultError(assertKeyLocationAllowed(keyLocation, cipherDir), 'key-location');
      expect(err.message).toContain('inside the cipher directory');
    }
    // Neighbours that merely share a prefix are fine.
    expect(await assertKeyLocationAllowed(`${cipherDir}-keys`, cipherDir)).toEqual([]);
    expect(await assertKeyLocationAllowed(join(dir, '..vault'), cipherDir)).toEqual([]);
  });

  it('sees through symlinks, both ways, and through paths that do not exist yet', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    await mkdir(join(cipherDir, 'sub'), { recursive: true });
    // A link outside pointing into the cipher directory.
    await symlink(join(cipherDir, 'sub'), join(dir, 'innocent'));
    await expectVaultError(assertKeyLocationAllowed(join(dir, 'innocent', 'ks'), cipherDir), 'key-location');
    await expectVaultError(assertKeyLocationAllowed(join(dir, 'innocent', 'not', 'yet', 'there'), cipherDir), 'key-location');
    // The cipher directory given through a link.
    await symlink(cipherDir, join(dir, 'vault-link'));
    await expectVaultError(assertKeyLocationAllowed(join(cipherDir, 'ks'), join(dir, 'vault-link')), 'key-location');
    // A cipher directory that does not exist yet, below a linked folder.
    await mkdir(join(dir, 'real'));
    await symlink(join(dir, 'real'), join(dir, 'alias'));
    await expectVaultError(assertKeyLocationAllowed(join(dir, 'real', 'new-vault', 'ks'), join(dir, 'alias', 'new-vault')), 'key-location');
  });

  it('storeMasterKey refuses it and writes nothing', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    await mkdir(cipherDir);
    await symlink(cipherDir, join(dir, 'link'));
    const keystoreDir = join(dir, 'link', 'ks');
    await expectVaultError(
      storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir, masterKey: generateMasterKey(), passphrase: 'p', kdfTargetMs: FAST }),
      'key-location',
    );
    expect(await readdir(cipherDir)).toEqual([]);
  });

  describe('warns about folders that sync clients manage', () => {
    const savedHome = process.env.HOME;
    afterEach(() => {
      process.env.HOME = savedHome;
    });

    // [service, what to create in the synced folder's root, or a folder name]
    const cases: [string, { file?: string; dir?: string; named?: string; home?: boolean }][] = [
      ['Dropbox', { file: '.dropbox' }],
      ['Dropbox', { dir: '.dropbox.cache' }],
      ['Dropbox', { named: 'Dropbox' }],
      ['Dropbox', { named: 'Dropbox (Contoso)' }],
      ['OneDrive', { file: '.849C9593-D756-4E56-8D6E-42412F2A707B' }],
      ['OneDrive', { named: 'OneDrive' }],
      ['OneDrive', { named: 'OneDrive - Contoso' }],
      ['Google Drive', { dir: '.tmp.drivedownload' }],
      ['Google Drive', { dir: '.tmp.driveupload' }],
      ['Google Drive', { named: 'Google Drive' }],
      ['Google Drive', { named: 'My Drive' }],
      ['Box', { named: 'Box Sync' }],
      ['Box', { named: 'Box', home: true }],
      ['Nextcloud/ownCloud', { file: '.sync_5a3b7c9d1e2f.db' }],
      ['Nextcloud/ownCloud', { file: '._sync_5a3b7c9d1e2f.db' }],
      ['Nextcloud/ownCloud', { file: '.owncloudsync.log' }],
      ['Nextcloud/ownCloud', { file: '.nextcloudsync.log' }],
      ['Syncthing', { dir: '.stfolder' }],
      ['Syncthing', { file: '.stfolder' }],
      ['Resilio Sync', { dir: '.sync' }],
      ['MEGA', { dir: '.debris' }],
    ];

    it('covers every service of the marker table', () => {
      const services = new Set(SYNC_MARKERS.map((m) => m.service));
      expect(new Set(cases.map(([service]) => service))).toEqual(services);
    });

    for (const [service, how] of cases) {
      const label = how.file ? `file ${how.file}` : how.dir ? `folder ${how.dir}` : `folder named "${how.named}"`;
      it(`${service}: ${label}`, async () => {
        const dir = await freshDir();
        let syncRoot = join(dir, 'synced');
        if (how.named) {
          if (how.home) process.env.HOME = dir;
          syncRoot = join(dir, how.named);
        }
        await mkdir(syncRoot);
        if (how.file) await writeFile(join(syncRoot, how.file), '{}');
        if (how.dir) await mkdir(join(syncRoot, how.dir));
        const cipherDir = join(syncRoot, 'vault');
        const warnings = await assertKeyLocationAllowed(join(syncRoot, 'private', 'keys'), cipherDir);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain(service);
        expect(warnings[0]).toContain(syncRoot);
      });
    }

    it('does not warn about look-alikes', async () => {
      const dir = await freshDir();
      process.env.HOME = join(dir, 'home');
      await mkdir(join(dir, 'home', '.dropbox'), { recursive: true }); // the client's settings folder, not a synced folder
      await mkdir(join(dir, 'home', 'work', 'Box'), { recursive: true }); // "Box" away from the home folder
      await writeFile(join(dir, 'home', 'work', '.sync'), ''); // a file, not Resilio's folder
      expect(await assertKeyLocationAllowed(join(dir, 'home', '.config', 'sealfs'), join(dir, 'v'))).toEqual([]);
      expect(await assertKeyLocationAllowed(join(dir, 'home', 'work', 'Box', 'ks'), join(dir, 'v'))).toEqual([]);
    });
  });
});

describe('vaults', () => {
  const options = { cipher: 'aes-256-gcm', chunkSize: 64 * 1024, maxNameLength: 255, kdfTargetMs: FAST } as const;

  it('init creates a 0700 cipher directory with only the vault file; unlock finds the key', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    const keystoreDir = join(dir, 'ks');
    const result = await initVault({ ...options, cipherDir, keystoreDir, passphrase: 'p' });
    expect((await stat(cipherDir)).mode & 0o777).toBe(0o700);
    expect(await readdir(cipherDir)).toEqual([VAULT_FILE]);
    expect(result.warnings).toEqual([]);
    expect(result.keyPath).toBe(join(keystoreDir, `${result.config.vaultId}.key`));
    expect(await readFile(join(cipherDir, VAULT_FILE), 'utf8')).not.toContain('wrappedKey');
    const unlocked = await unlockVault({ cipherDir, keystoreDir, passphrase: 'p' });
    expect(unlocked.config).toEqual(result.config);
    expect(toHex(unlocked.masterKey)).toBe(toHex(result.masterKey));
    await expectVaultError(unlockVault({ cipherDir, keystoreDir, passphrase: 'q' }), 'wrong-passphrase');
    await expectVaultError(unlockVault({ cipherDir, keystoreDir: join(dir, 'other'), passphrase: 'p' }), 'no-key');
  });

  it('init accepts an existing empty folder, also one a sync client already marked', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    await mkdir(join(cipherDir, '.stfolder'), { recursive: true });
    await writeFile(join(cipherDir, '.stignore'), '');
    const result = await initVault({ ...options, cipherDir, keystoreDir: join(dir, 'ks'), passphrase: 'p' });
    expect((await readdir(cipherDir)).sort()).toEqual(['.stfolder', '.stignore', VAULT_FILE]);
    expect(result.config.cipher).toBe('aes-256-gcm');
  });

  it('init refuses a non-empty folder or an existing vault, before asking for anything or writing', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const nonEmpty = join(dir, 'photos');
    await mkdir(nonEmpty);
    await writeFile(join(nonEmpty, 'cat.jpg'), 'meow');
    let asked = false;
    const passphrase = async () => {
      asked = true;
      return 'p';
    };
    const err = await expectVaultError(initVault({ ...options, cipherDir: nonEmpty, keystoreDir, passphrase }), 'vault-exists');
    expect(err.message).toContain('not empty');
    expect(err.message).toContain('cat.jpg');
    const vault = join(dir, 'vault');
    await initVault({ ...options, cipherDir: vault, keystoreDir, passphrase: 'p' });
    const again = await expectVaultError(initVault({ ...options, cipherDir: vault, keystoreDir, passphrase }), 'vault-exists');
    expect(again.message).toContain('already a sealfs vault');
    expect(asked).toBe(false);
    expect(await readdir(keystoreDir)).toHaveLength(1);
    await expect(initVault({ ...options, cipherDir: join(dir, 'no', 'parent'), keystoreDir, passphrase })).rejects.toMatchObject({ code: 'ENOENT' });
    await writeFile(join(dir, 'file'), '');
    await expectVaultError(initVault({ ...options, cipherDir: join(dir, 'file'), keystoreDir, passphrase }), 'vault-exists');
    expect(asked).toBe(false);
  });

  it('init refuses a key store inside the cipher directory before writing anything', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    await expectVaultError(initVault({ ...options, cipherDir, keystoreDir: join(cipherDir, '.keys'), passphrase: 'p' }), 'key-location');
    expect(await exists(cipherDir)).toBe(false);
    await mkdir(cipherDir);
    await expectVaultError(initVault({ ...options, cipherDir, keystoreDir: cipherDir, passphrase: 'p' }), 'key-location');
    expect(await readdir(cipherDir)).toEqual([]);
  });

  it('init brings your own key', async () => {
    const dir = await freshDir();
    const key = generateMasterKey();
    const result = await initVault({ ...options, cipherDir: join(dir, 'v'), keystoreDir: join(dir, 'ks'), passphrase: 'p', importKey: key });
    expect(toHex(result.masterKey)).toBe(toHex(key));
    const lazy = await initVault({ ...options, cipherDir: join(dir, 'w'), keystoreDir: join(dir, 'ks'), passphrase: 'p', importKey: async () => key });
    expect(toHex(lazy.masterKey)).toBe(toHex(key));
    expect(lazy.config.vaultId).not.toBe(result.config.vaultId);
    await expect(initVault({ ...options, cipherDir: join(dir, 'x'), keystoreDir: join(dir, 'ks'), passphrase: 'p', importKey: new Uint8Array(16) })).rejects.toThrow(
      RangeError,
    );
    expect(await exists(join(dir, 'x'))).toBe(false);
  });

  it('imports a key into a fresh key store only if it belongs to the vault', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    const { masterKey, config } = await initVault({ ...options, cipherDir, keystoreDir: join(dir, 'ks'), passphrase: 'old' });
    const fresh = join(dir, 'fresh');
    const err = await expectVaultError(importKeyIntoKeystore(cipherDir, fresh, generateMasterKey(), 'new', { kdfTargetMs: FAST }), 'bad-recovery-key');
    expect(err.message).toBe(`this recovery key does not belong to the vault at ${cipherDir}`);
    expect(await exists(fresh)).toBe(false);
    const imported = await importKeyIntoKeystore(cipherDir, fresh, masterKey, 'new', { kdfTargetMs: FAST });
    expect(imported.config.vaultId).toBe(config.vaultId);
    expect(toHex((await unlockVault({ cipherDir, keystoreDir: fresh, passphrase: 'new' })).masterKey)).toBe(toHex(masterKey));
    await expect(importKeyIntoKeystore(cipherDir, fresh, masterKey, 'newer', { kdfTargetMs: FAST })).rejects.toBeInstanceOf(KeyExistsError);
    await importKeyIntoKeystore(cipherDir, fresh, masterKey, 'newer', { kdfTargetMs: FAST, replace: true });
    await unlockVault({ cipherDir, keystoreDir: fresh, passphrase: 'newer' });
    await expectVaultError(importKeyIntoKeystore(cipherDir, join(cipherDir, 'ks'), masterKey, 'x', { kdfTargetMs: FAST }), 'key-location');
  });

  it('reads keys to import from recovery-key files and keygen key files', async () => {
    const dir = await freshDir();
    const key = generateMasterKey();
    await writeFile(join(dir, 'recovery.txt'), `${encodeRecoveryKey(key).toLowerCase()}\n`);
    await writeFile(join(dir, 'key.txt'), `sealfs-key-v1:${toHex(key)}\n`);
    await writeFile(join(dir, 'raw'), key);
    await writeFile(join(dir, 'typo.txt'), encodeRecoveryKey(key).replace(/^./, (c) => (c === 'A' ? 'B' : 'A')));
    await writeFile(join(dir, 'bad-key.txt'), 'sealfs-key-v1:1234\n');
    for (const name of ['recovery.txt', 'key.txt', 'raw']) expect(toHex(await readKeyOrRecoveryFile(join(dir, name)))).toBe(toHex(key));
    const typo = await expectVaultError(readKeyOrRecoveryFile(join(dir, 'typo.txt')), 'bad-recovery-key');
    expect(typo.message).toContain('typo.txt');
    expect(typo.message).toContain('group 1, character 1');
    await expectVaultError(readKeyOrRecoveryFile(join(dir, 'bad-key.txt')), 'bad-recovery-key');
  });

  it('passwd changes the passphrase and leaves the cipher directory byte-identical', async () => {
    const dir = await freshDir();
    const cipherDir = join(dir, 'vault');
    const keystoreDir = join(dir, 'ks');
    const { masterKey, keyPath } = await initVault({ ...options, cipherDir, keystoreDir, passphrase: 'old' });
    await mkdir(join(cipherDir, 'somedir'));
    await writeFile(join(cipherDir, 'somedir', 'blob'), randomBytes(1000));
    await chmod(cipherDir, 0o500); // read-only (when not root): a write attempt would fail loudly
    const before = await treeHash(cipherDir);
    const saltBefore = (JSON.parse(await readFile(keyPath, 'utf8')) as KeyStoreFile).kdf.salt;
    try {
      await expectVaultError(changeVaultPassphrase({ cipherDir, keystoreDir, oldPassphrase: 'nope', newPassphrase: 'new', kdfTargetMs: FAST }), 'wrong-passphrase');
      expect(await changeVaultPassphrase({ cipherDir, keystoreDir, oldPassphrase: 'old', newPassphrase: 'new', kdfTargetMs: FAST })).toBe(keyPath);
    } finally {
      await chmod(cipherDir, 0o700);
    }
    expect(await treeHash(cipherDir)).toBe(before);
    expect((JSON.parse(await readFile(keyPath, 'utf8')) as KeyStoreFile).kdf.salt).not.toBe(saltBefore);
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    await expectVaultError(unlockVault({ cipherDir, keystoreDir, passphrase: 'old' }), 'wrong-passphrase');
    expect(toHex((await unlockVault({ cipherDir, keystoreDir, passphrase: 'new' })).masterKey)).toBe(toHex(masterKey));
    expect(await readdir(keystoreDir)).toHaveLength(1);
  });

  it('passwd refuses a key store key that does not belong to the vault', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const a = await initVault({ ...options, cipherDir: join(dir, 'a'), keystoreDir, passphrase: 'p' });
    const b = await initVault({ ...options, cipherDir: join(dir, 'b'), keystoreDir, passphrase: 'p' });
    // Swap b's key file content for a re-wrap of a's key under b's id: unwraps fine, fails the vault MAC.
    await storeMasterKey({ keystoreDir, vaultId: b.config.vaultId, cipherDir: join(dir, 'b'), masterKey: a.masterKey, passphrase: 'p', kdfTargetMs: FAST, replace: true });
    const before = await readFile(b.keyPath, 'utf8');
    await expectVaultError(changeVaultPassphrase({ cipherDir: join(dir, 'b'), keystoreDir, oldPassphrase: 'p', newPassphrase: 'q', kdfTargetMs: FAST }), 'vault-tampered');
    expect(await readFile(b.keyPath, 'utf8')).toBe(before);
  });

  it('changePassphrase works on the key store alone', async () => {
    const dir = await freshDir();
    const keystoreDir = join(dir, 'ks');
    const masterKey = generateMasterKey();
    await storeMasterKey({ keystoreDir, vaultId: VAULT_ID, cipherDir: join(dir, 'v'), masterKey, passphrase: 'a', kdfTargetMs: FAST });
    await changePassphrase({ keystoreDir, vaultId: VAULT_ID, oldPassphrase: 'a', newPassphrase: 'b', kdfTargetMs: FAST });
    await expectVaultError(unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'a' }), 'wrong-passphrase');
    expect(toHex(await unlockMasterKey({ keystoreDir, vaultId: VAULT_ID, passphrase: 'b' }))).toBe(toHex(masterKey));
    expect(await readdir(keystoreDir)).toEqual([`${VAULT_ID}.key`]);
  });
});
