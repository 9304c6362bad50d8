/**
 * Writes the frozen vault vectors test/vectors/names.json and test/vectors/vault.json —
 * ONCE. Like generate.ts, it refuses to run if either file already exists and opens each
 * with `wx`: these vectors pin FORMAT.md Part II (names, directory ids, long names,
 * symlink targets, the vault file), and a change there must be a new format version,
 * never a silent regeneration. How to run it and what each file holds:
 * test/vectors/README.md, section "Vault vectors".
 *
 * It uses sealfs's own code paths (NameCipher, DirectoryDecoder.cipherNameFor,
 * longNameHash, writeVaultFile) and checks that each name decrypts back before writing.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { deriveSubkey, SUBKEY_INFO } from '../../src/crypto/kdf.js';
import { DirectoryDecoder } from '../../src/vault/directory.js';
import { fromBase32, toBase32 } from '../../src/vault/encoding.js';
import { longNameHash } from '../../src/vault/longnames.js';
import { NameCipher, ROOT_DIR_ID, type EntryKind } from '../../src/vault/names.js';
import { readVaultFile, verifyVaultFile, writeVaultFile, type VaultConfig } from '../../src/vault/vaultfile.js';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const MASTER_KEY = Uint8Array.from({ length: 32 }, (_, i) => i); // 00 01 … 1f
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const utf8 = (text: string) => new TextEncoder().encode(text);

const NK = deriveSubkey(MASTER_KEY, 'names');
const DK = deriveSubkey(MASTER_KEY, 'dirid');
const names = new NameCipher(NK, DK);
const LIMITS = [255, 64] as const;
const decoders = new Map(LIMITS.map((l) => [l, new DirectoryDecoder(names, l)]));

/** Directories of the vector tree, by plaintext path; each id derived from its parent's (§10.1). */
const DIRS: string[][] = [[], ['Documents'], ['Documents', 'Taxes'], ['Documents', 'Taxes', '2026'], ['日本語']];
const ids = new Map<string, Uint8Array>();
const pathOf = (parts: string[]) => '/' + parts.join('/');
function idOf(parts: string[]): Uint8Array {
  const key = pathOf(parts);
  let id = ids.get(key);
  if (!id) {
    id = parts.length === 0 ? ROOT_DIR_ID : names.deriveDirId(idOf(parts.slice(0, -1)), parts[parts.length - 1]!);
    ids.set(key, id);
  }
  return id;
}

const NAME_255_ASCII = 'x'.repeat(251) + '.txt';
const NAME_255_KANA = 'あ'.repeat(85); // 3 bytes each
/** Entries of the vector tree: [directory, name, kind]. */
const ENTRIES: [string[], string, EntryKind][] = [
  [[], 'hello.txt', 'file'],
  [[], 'a', 'file'],
  [[], '.bashrc', 'file'],
  [[], 'r\u00e9sum\u00e9.pdf', 'file'], // NFC
  [[], 're\u0301sume\u0301.pdf', 'file'], // NFD: another name, no normalisation
  [[], '日本語.txt', 'file'],
  [[], '🎉🐧.png', 'file'],
  [[], 'Ünïcödé name with spaces (1).txt', 'file'],
  [[], '\ufeffbom.txt', 'file'], // a leading U+FEFF is part of the name
  [[], NAME_255_ASCII, 'file'],
  [[], NAME_255_KANA, 'file'],
  [[], 'Documents', 'dir'],
  [[], '日本語', 'dir'],
  [[], '🎉', 'dir'],
  [[], 'link-to-hosts', 'symlink'],
  [['Documents'], 'hello.txt', 'file'], // same name, other directory: another E
  [['Documents'], 'report 2026.docx', 'file'],
  [['Documents'], 'Taxes', 'dir'],
  [['Documents', 'Taxes'], '2026', 'dir'],
  [['Documents', 'Taxes'], 'receipt.pdf', 'file'],
  [['Documents', 'Taxes', '2026'], 'résumé.pdf', 'file'],
  [['日本語'], 'ファイル.txt', 'file'],
];

function stored(parent: Uint8Array, name: string, ownId: Uint8Array | undefined) {
  const out: Record<string, unknown> = {};
  for (const limit of LIMITS) {
    const { cipherName, sidecar } = decoders.get(limit)!.cipherNameFor(parent, name, ownId);
    out[String(limit)] = sidecar ? { name: cipherName, sidecar: sidecar.name, sidecarContent: sidecar.content } : { name: cipherName };
  }
  return out;
}

function entry(dir: string[], name: string, kind: EntryKind) {
  const parent = idOf(dir);
  const ownId = kind === 'dir' ? idOf([...dir, name]) : undefined;
  const E = names.encrypt(parent, name, ownId);
  const back = names.decrypt(parent, E, kind);
  expect(back?.name).toBe(name);
  if (ownId) expect(hex(back!.dirId!)).toBe(hex(ownId));
  const payload = ownId ? Buffer.concat([ownId, utf8(name)]) : utf8(name);
  return {
    directory: pathOf(dir),
    parentId: hex(parent),
    name,
    nameUtf8: hex(utf8(name)),
    kind,
    ...(ownId ? { dirId: hex(ownId) } : {}),
    payload: hex(payload),
    encrypted: E,
    encryptedLength: E.length,
    stored: stored(parent, name, ownId),
  };
}

/** The longest name that stays short under each limit, and one byte more (§10.3). */
function thresholds() {
  const out: unknown[] = [];
  for (const limit of LIMITS) {
    for (const kind of ['file', 'dir'] as const) {
      const fits = (n: number) => {
        const name = 'n'.repeat(n);
        return names.encrypt(ROOT_DIR_ID, name, kind === 'dir' ? idOf([name]) : undefined).length <= limit;
      };
      let n = 1;
      while (fits(n + 1)) n++;
      for (const bytes of [n, n + 1]) {
        const name = 'n'.repeat(bytes);
        const ownId = kind === 'dir' ? names.deriveDirId(ROOT_DIR_ID, name) : undefined;
        const E = names.encrypt(ROOT_DIR_ID, name, ownId);
        const { cipherName, sidecar } = decoders.get(limit)!.cipherNameFor(ROOT_DIR_ID, name, ownId);
        expect(!!sidecar).toBe(E.length > limit);
        if (sidecar) expect(cipherName).toBe(longNameHash(E) + '.sfl');
        out.push({
          maxNameLength: limit,
          directory: '/',
          parentId: hex(ROOT_DIR_ID),
          kind,
          name,
          nameBytes: bytes,
          ...(ownId ? { dirId: hex(ownId) } : {}),
          encrypted: E,
          encryptedLength: E.length,
          long: E.length > limit,
          storedName: cipherName,
          ...(sidecar ? { hash: longNameHash(E), sidecar: sidecar.name, sidecarContent: sidecar.content } : {}),
        });
      }
    }
  }
  return out;
}

const TARGETS = ['../x/y', '/etc/hosts', 'hello.txt', 'r\u00e9sum\u00e9.pdf', '日本語/ファイル.txt', '🐧', '\ufeffbom', '../'.repeat(60) + 'deep/target'];

/** Conflict copies a sync client makes from a stored name (§10.5), and what they decrypt to. */
function conflicts() {
  const out: unknown[] = [];
  const hello = names.encrypt(ROOT_DIR_ID, 'hello.txt');
  const patterns = [
    ' (conflicted copy 2026-11-22)', // Dropbox
    " (Alice's conflicted copy 2026-11-22)", // Dropbox, with the user
    '-HOSTNAME', // OneDrive
    ' (1)', // Google Drive
    '.sync-conflict-20261122-101010-ABCDEFG', // Syncthing
    ' (conflicted copy 2026-11-22 101010)', // Nextcloud
    ' (Alice)', // Box
  ];
  for (const p of patterns) out.push({ storedName: hello + p, directory: '/', parentId: hex(ROOT_DIR_ID), kind: 'file', prefix: hello, rest: p, name: 'hello.txt' });
  const docsId = idOf(['Documents']);
  const docs = names.encrypt(ROOT_DIR_ID, 'Documents', docsId);
  out.push({ storedName: docs + ' (1)', directory: '/', parentId: hex(ROOT_DIR_ID), kind: 'dir', prefix: docs, rest: ' (1)', name: 'Documents', dirId: hex(docsId) });
  const longE = names.encrypt(ROOT_DIR_ID, NAME_255_ASCII);
  const h = longNameHash(longE);
  for (const p of [' (conflicted copy 2026-11-22)', '.sync-conflict-20261122-101010-ABCDEFG', ' (1)']) {
    out.push({ storedName: `${h}${p}.sfl`, directory: '/', parentId: hex(ROOT_DIR_ID), kind: 'file', prefix: h, rest: `${p}.sfl`, sidecar: `${h}.sfn`, sidecarContent: longE + '\n', name: NAME_255_ASCII });
  }
  return out;
}

/** Names that must not decrypt where they are (§10.2). */
function rejected() {
  const hello = names.encrypt(ROOT_DIR_ID, 'hello.txt');
  const docs = hex(idOf(['Documents']));
  const root = hex(ROOT_DIR_ID);
  // Same bytes, non-canonical text: E('a') is 17 bytes = 136 bits in 28 characters, so the
  // last character carries 1 bit of data and 4 unused bits; flip its lowest (unused) bit.
  const a = names.encrypt(ROOT_DIR_ID, 'a');
  expect(a.length).toBe(28);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const nonCanonical = a.slice(0, -1) + alphabet[alphabet.indexOf(a[a.length - 1]!) ^ 1];
  const out = [
    { storedName: hello, parentId: docs, kind: 'file', reason: 'root entry moved into /Documents (AD differs)' },
    { storedName: hello.toUpperCase(), parentId: root, kind: 'file', reason: 'upper case is not canonical base32' },
    { storedName: nonCanonical, parentId: root, kind: 'file', reason: 'non-zero unused bits in the last character (same bytes, not canonical)' },
    { storedName: hello.slice(0, -2), parentId: root, kind: 'file', reason: '38 characters (38 mod 8 = 6): no byte string encodes to this length' },
    { storedName: toBase32(fromBase32(hello)!.slice(0, -1)), parentId: root, kind: 'file', reason: 'last byte dropped (canonical base32): does not authenticate' },
    { storedName: 'a'.repeat(hello.length), parentId: root, kind: 'file', reason: 'base32 junk' },
    { storedName: names.encrypt(ROOT_DIR_ID, 'Documents', idOf(['Documents'])), parentId: docs, kind: 'dir', reason: '/Documents moved into itself (AD differs)' },
  ];
  for (const v of out) expect(names.decrypt(Buffer.from(v.parentId, 'hex'), v.storedName, v.kind as EntryKind)).toBeUndefined();
  return out;
}

async function vaultFiles() {
  const configs: VaultConfig[] = [
    { format: 'sealfs-vault', version: 1, vaultId: '3b241101-e2bb-4255-8caf-4136c566a962', cipher: 'aes-256-gcm', chunkSize: 65536, nameScheme: 'aes-siv-base32', maxNameLength: 255 },
    { format: 'sealfs-vault', version: 1, vaultId: '00000000-0000-4000-8000-000000000001', cipher: 'chacha20-poly1305', chunkSize: 4096, nameScheme: 'aes-siv-base32', maxNameLength: 64 },
  ];
  const out: unknown[] = [];
  for (const config of configs) {
    const dir = await mkdtemp(join(tmpdir(), 'sealfs-vectors-'));
    try {
      await writeVaultFile(dir, config, MASTER_KEY);
      const file = await readFile(join(dir, 'sealfs.vault'), 'utf8');
      const read = await readVaultFile(dir);
      expect(verifyVaultFile(read, MASTER_KEY, dir)).toEqual(config);
      const [body, macLine] = file.split('\n');
      out.push({ config, body, macLine, mac: macLine!.slice('hmac-sha256:'.length), file });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return out;
}

async function build(): Promise<Map<string, unknown>> {
  const files = new Map<string, unknown>();
  for (const parts of DIRS) idOf(parts);
  files.set('names.json', {
    description:
      'Names of FORMAT.md §10: directory ids (§10.1), encrypted names (§10.2), long names (§10.3), conflict copies (§10.5), symlink targets (§10.6). All binary values are lower-case hex.',
    formatVersion: 1,
    masterKey: hex(MASTER_KEY),
    nameKey: { info: SUBKEY_INFO.names, length: 64, hex: hex(NK) },
    dirIdKey: { info: SUBKEY_INFO.dirid, length: 32, hex: hex(DK) },
    directories: DIRS.map((parts) => ({
      path: pathOf(parts),
      ...(parts.length ? { parentId: hex(idOf(parts.slice(0, -1))), name: parts[parts.length - 1] } : {}),
      id: hex(idOf(parts)),
    })),
    entries: ENTRIES.map(([dir, name, kind]) => entry(dir, name, kind)),
    longNameThresholds: thresholds(),
    conflictCopies: conflicts(),
    rejected: rejected(),
    symlinkTargets: {
      associatedData: 'sealfs v1 symlink',
      cases: TARGETS.map((target) => {
        const stored = names.encryptSymlinkTarget(target);
        expect(names.decryptSymlinkTarget(stored)).toBe(target);
        return { target, targetUtf8: hex(utf8(target)), stored };
      }),
    },
  });
  files.set('vault.json', {
    description: 'Vault files of FORMAT.md §11, written by writeVaultFile with fixed configs. mac = HMAC-SHA256(VK, body).',
    formatVersion: 1,
    masterKey: hex(MASTER_KEY),
    configKey: { info: SUBKEY_INFO.config, length: 32, hex: hex(deriveSubkey(MASTER_KEY, 'config')) },
    cases: await vaultFiles(),
  });
  return files;
}

it.skipIf(process.env.SEALFS_WRITE_VECTORS !== '1')('writes the frozen vault vectors (refuses to overwrite)', async () => {
  const files = await build();
  const existing = [...files.keys()].filter((name) => existsSync(DIR + name));
  if (existing.length > 0) {
    throw new Error(`refusing to overwrite existing vector files: ${existing.join(', ')} — vectors are frozen; see test/vectors/README.md`);
  }
  for (const [name, content] of files) writeFileSync(DIR + name, `${JSON.stringify(content, null, 2)}\n`, { flag: 'wx' });
});
