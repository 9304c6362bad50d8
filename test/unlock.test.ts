/**
 * src/vault/unlock.ts: one retry rule for every command that unlocks (3 tries at a prompt,
 * one from a file or a command), and unlocking when the vault file is lost or damaged.
 */
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VaultError } from '../src/vault/errors.js';
import { initVault, unlockVault } from '../src/vault/init.js';
import { readVaultFile, VAULT_FILE } from '../src/vault/vaultfile.js';
import { lockVault, openVault } from '../src/vault/vault.js';
import {
  PROMPT_ATTEMPTS,
  unlockForMaintenance,
  unlockForRepair,
  unlockForRestore,
  unlockVaultAt,
  unlockVaultId,
  withPassphrase,
  type PassphraseAsker,
} from '../src/vault/unlock.js';
import { toHex } from './helpers.js';

let root: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-unlock-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function vault(passphrase = 'right') {
  const dir = join(root, `v${counter++}`);
  await mkdir(dir);
  const cipherDir = join(dir, 'cipher');
  const keystoreDir = join(dir, 'ks');
  const result = await initVault({ cipherDir, keystoreDir, passphrase, cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255, kdfTargetMs: 5 });
  return { dir, cipherDir, keystoreDir, masterKey: toHex(result.masterKey), vaultId: result.config.vaultId };
}

/** Answers from a list, counting questions and retry notices. */
function answers(list: string[], interactive: boolean) {
  const log = { asked: 0, told: 0 };
  const asker: PassphraseAsker = {
    ask: async () => list[log.asked++] ?? 'ran out',
    interactive,
    onWrong: () => void log.told++,
  };
  return { asker, log };
}

async function kindOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (err) {
    if (err instanceof VaultError) return err.kind;
    throw err;
  }
}

describe('the passphrase retry rule', () => {
  it(`at a prompt, a wrong passphrase may be retyped: ${PROMPT_ATTEMPTS} tries in all`, async () => {
    expect(PROMPT_ATTEMPTS).toBe(3);
    const v = await vault();
    const third = answers(['wrong', 'also wrong', 'right'], true);
    const unlocked = await unlockVaultAt(v.cipherDir, v.keystoreDir, third.asker);
    expect(toHex(unlocked.masterKey)).toBe(v.masterKey);
    expect(third.log).toEqual({ asked: 3, told: 2 });

    const never = answers(['a', 'b', 'c', 'right'], true);
    expect(await kindOf(unlockVaultAt(v.cipherDir, v.keystoreDir, never.asker))).toBe('wrong-passphrase');
    expect(never.log).toEqual({ asked: 3, told: 2 });
  });

  it('a passphrase from a file or a command gets one try', async () => {
    const v = await vault();
    const once = answers(['wrong', 'right'], false);
    expect(await kindOf(unlockVaultAt(v.cipherDir, v.keystoreDir, once.asker))).toBe('wrong-passphrase');
    expect(once.log).toEqual({ asked: 1, told: 0 });
    const byId = answers(['wrong', 'right'], false);
    expect(await kindOf(unlockVaultId(v.vaultId, v.keystoreDir, byId.asker))).toBe('wrong-passphrase');
    expect(byId.log.asked).toBe(1);
  });

  it('retries only a wrong passphrase, never another error', async () => {
    let calls = 0;
    const fail = (kind: 'no-key' | 'wrong-passphrase') => async () => {
      calls++;
      throw new VaultError(kind, kind);
    };
    const { asker } = answers([], true);
    expect(await kindOf(withPassphrase(asker, fail('no-key')))).toBe('no-key');
    expect(calls).toBe(1);
    calls = 0;
    expect(await kindOf(withPassphrase(asker, fail('wrong-passphrase')))).toBe('wrong-passphrase');
    expect(calls).toBe(PROMPT_ATTEMPTS);
  });

  it('asks for nothing when the vault or its key is missing', async () => {
    const v = await vault();
    const none = answers(['right'], true);
    expect(await kindOf(unlockVaultAt(join(v.dir, 'nowhere'), v.keystoreDir, none.asker))).toBe('not-a-vault');
    expect(await kindOf(unlockVaultAt(v.cipherDir, join(v.dir, 'empty-ks'), none.asker))).toBe('no-key');
    expect(none.log.asked).toBe(0);
  });
  it('an edited vault id is reported as an edited vault file (exit 6), not as a missing key, when the key store knows the folder', async () => {
    const v = await vault();
    const path = join(v.cipherDir, VAULT_FILE);
    const text = await readFile(path, 'utf8');
    const otherId = v.vaultId.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    await writeFile(path, text.replace(v.vaultId, otherId));
    const asked = answers(['right'], false);
    const err = await unlockVaultAt(v.cipherDir, v.keystoreDir, asked.asker).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultError);
    expect((err as VaultError).kind).toBe('vault-tampered');
    expect((err as VaultError).message).toMatch(new RegExp(`holds this folder's key as vault ${v.vaultId}: the vault file was edited or replaced`));
    expect(asked.log.asked).toBe(0);
  });
});

describe('unlocking for maintenance, restore and repair', () => {
  it('a lost or edited vault file: the key store entry stored for the folder unlocks it', async () => {
    const v = await vault();
    const path = join(v.cipherDir, VAULT_FILE);
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('"chunkSize":4096', '"chunkSize":8192'));
    const edited = await unlockForMaintenance(v.cipherDir, v.keystoreDir, answers(['right'], false).asker);
    expect([toHex(edited.masterKey), edited.vaultId]).toEqual([v.masterKey, v.vaultId]);
    await unlink(path);
    const lost = await unlockForMaintenance(v.cipherDir, v.keystoreDir, answers(['right'], false).asker);
    expect([toHex(lost.masterKey), lost.vaultId]).toEqual([v.masterKey, v.vaultId]);
    const err = await unlockForMaintenance(v.cipherDir, join(v.dir, 'other-ks'), answers(['right'], false).asker).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultError);
    expect((err as VaultError).kind).toBe('not-a-vault');
    expect((err as VaultError).message).toContain(`sealfs repair ${v.cipherDir} --from REMOTE`);
  });

  it("restore: the backup's vault file names the key; without one in the key store the restore goes on unverified", async () => {
    const v = await vault();
    const stored = await readVaultFile(v.cipherDir);
    const withKey = await unlockForRestore(stored, 'remote:x', v.keystoreDir, answers(['right'], false).asker);
    expect([withKey.vaultId, toHex(withKey.masterKey!)]).toEqual([v.vaultId, v.masterKey]);
    const noKey = await unlockForRestore(stored, 'remote:x', join(v.dir, 'other-ks'), answers(['right'], false).asker);
    expect(noKey).toEqual({ vaultId: v.vaultId });
    expect(await kindOf(unlockForRestore(stored, 'remote:x', v.keystoreDir, answers(['wrong'], false).asker))).toBe('wrong-passphrase');
  });

  it("repair: with the local vault file lost and no key store entry for the folder, the backup's vault file must verify", async () => {
    const v = await vault();
    const stored = await readVaultFile(v.cipherDir);
    await unlink(join(v.cipherDir, VAULT_FILE));
    // A key store entry that no longer names this folder: only the backup's vault file can tell the key.
    const keystoreDir = join(v.dir, 'moved-ks');
    await mkdir(keystoreDir);
    const keyFile = JSON.parse(await readFile(join(v.keystoreDir, `${v.vaultId}.key`), 'utf8')) as Record<string, unknown>;
    await writeFile(join(keystoreDir, `${v.vaultId}.key`), JSON.stringify({ ...keyFile, cipherDir: '/somewhere/else' }));
    let fetched = 0;
    const backup = (file: typeof stored | undefined) => ({ where: 'remote:x', vaultFile: async () => (fetched++, file) });
    const unlocked = await unlockForRepair(v.cipherDir, keystoreDir, answers(['right'], false).asker, backup(stored));
    expect([toHex(unlocked.masterKey), unlocked.vaultId, fetched]).toEqual([v.masterKey, v.vaultId, 1]);
    expect(await kindOf(unlockForRepair(v.cipherDir, keystoreDir, answers(['right'], false).asker, backup(undefined)))).toBe('not-a-vault');
    const forged = { ...stored, mac: '0'.repeat(64) };
    expect(await kindOf(unlockForRepair(v.cipherDir, keystoreDir, answers(['right'], false).asker, backup(forged)))).toBe('vault-tampered');
  });
});

describe('locking', () => {
  it('lockVault zeroes the content, name and directory-id keys; the master key is zeroed by its holder', async () => {
    const v = await vault();
    const { masterKey } = await unlockVault({ cipherDir: v.cipherDir, keystoreDir: v.keystoreDir, passphrase: 'right' });
    const opened = await openVault(v.cipherDir, masterKey, { backend: 'node' });
    masterKey.fill(0);
    const root = new Uint8Array(16);
    const before = opened.names.encrypt(root, 'name');
    const dirIdBefore = toHex(opened.names.deriveDirId(root, 'dir'));
    expect(opened.content.contentKey.some((b) => b !== 0)).toBe(true);
    lockVault(opened);
    expect(opened.content.contentKey.every((b) => b === 0)).toBe(true);
    // Both name keys are gone: the same inputs give other outputs (all-zero keys).
    expect(opened.names.encrypt(root, 'name')).not.toBe(before);
    expect(toHex(opened.names.deriveDirId(root, 'dir'))).not.toBe(dirIdBefore);
  });
});
