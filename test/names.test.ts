/**
 * sealfs's own code reproduces the frozen vault vectors (test/vectors/names.json,
 * test/vectors/vault.json): directory ids, encrypted names, long names, conflict copies,
 * symlink targets and the vault file.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deriveSubkey } from '../src/crypto/kdf.js';
import { classify, MAX_SIDECAR_BYTES, parseSidecar, sidecarContent, uniqueName, usesSidecar } from '../src/vault/ciphernames.js';
import { DirectoryDecoder } from '../src/vault/directory.js';
import { longNameHash } from '../src/vault/longnames.js';
import { NameCipher, ROOT_DIR_ID, validatePlainName, type EntryKind } from '../src/vault/names.js';
import { NameError } from '../src/vault/errors.js';
import { readVaultFile, verifyVaultFile, writeVaultFile, type VaultConfig } from '../src/vault/vaultfile.js';

const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8')) as T;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const unhex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));

interface Stored {
  name: string;
  sidecar?: string;
  sidecarContent?: string;
}
interface NameVectors {
  masterKey: string;
  nameKey: { hex: string };
  dirIdKey: { hex: string };
  directories: { path: string; parentId?: string; name?: string; id: string }[];
  entries: { directory: string; parentId: string; name: string; nameUtf8: string; kind: EntryKind; dirId?: string; payload: string; encrypted: string; encryptedLength: number; stored: Record<string, Stored> }[];
  longNameThresholds: { maxNameLength: number; parentId: string; kind: EntryKind; name: string; nameBytes: number; dirId?: string; encrypted: string; long: boolean; storedName: string; hash?: string; sidecar?: string; sidecarContent?: string }[];
  conflictCopies: { storedName: string; parentId: string; kind: EntryKind; prefix: string; rest: string; name: string; dirId?: string; sidecar?: string; sidecarContent?: string }[];
  rejected: { storedName: string; parentId: string; kind: EntryKind; reason: string }[];
  symlinkTargets: { cases: { target: string; targetUtf8: string; stored: string }[] };
}
interface VaultVectors {
  masterKey: string;
  configKey: { hex: string };
  cases: { config: VaultConfig; body: string; macLine: string; mac: string; file: string }[];
}

const N = load<NameVectors>('names.json');
const V = load<VaultVectors>('vault.json');
const MK = unhex(N.masterKey);
const names = new NameCipher(deriveSubkey(MK, 'names'), deriveSubkey(MK, 'dirid'));
const decoderFor = (limit: number) => new DirectoryDecoder(names, limit);

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sealfs-names-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('vault vectors reproduced by sealfs', () => {
  it('keys: NK and DK', () => {
    expect(hex(MK)).toBe('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    expect(hex(deriveSubkey(MK, 'names'))).toBe(N.nameKey.hex);
    expect(hex(deriveSubkey(MK, 'dirid'))).toBe(N.dirIdKey.hex);
    expect(hex(deriveSubkey(MK, 'config'))).toBe(V.configKey.hex);
  });

  it('directory ids (root, child, grandchild, great-grandchild, non-ASCII)', () => {
    expect(N.directories[0]).toEqual({ path: '/', id: hex(ROOT_DIR_ID) });
    expect(hex(ROOT_DIR_ID)).toBe('0000000000000000');
    for (const d of N.directories.slice(1)) {
      expect(hex(names.deriveDirId(unhex(d.parentId!), d.name!)), d.path).toBe(d.id);
    }
  });

  it.each(N.entries.map((e) => [`${e.directory} ${JSON.stringify(e.name).slice(0, 40)} (${e.kind})`, e] as const))('entry %s', (_, e) => {
    const parent = unhex(e.parentId);
    const ownId = e.dirId ? unhex(e.dirId) : undefined;
    expect(hex(new TextEncoder().encode(e.name))).toBe(e.nameUtf8);
    expect(names.encrypt(parent, e.name, ownId)).toBe(e.encrypted);
    expect(e.encrypted.length).toBe(e.encryptedLength);
    const back = names.decrypt(parent, e.encrypted, e.kind);
    expect(back?.name).toBe(e.name);
    expect(back?.dirId && hex(back.dirId)).toBe(e.dirId);
    for (const [limit, stored] of Object.entries(e.stored)) {
      const { cipherName, sidecar } = decoderFor(Number(limit)).cipherNameFor(parent, e.name, ownId);
      expect(cipherName).toBe(stored.name);
      expect(sidecar && { name: sidecar.name, content: sidecar.content }).toEqual(stored.sidecar ? { name: stored.sidecar, content: stored.sidecarContent } : undefined);
      if (stored.sidecar) expect(stored.name).toBe(`${longNameHash(e.encrypted)}.sfl`);
    }
  });

  it('NFC and NFD spellings are different names (no normalisation)', () => {
    const [nfc, nfd] = ['r\u00e9sum\u00e9.pdf', 're\u0301sume\u0301.pdf'].map((n) => N.entries.find((e) => e.name === n && e.directory === '/')!);
    expect(nfc!.encrypted).not.toBe(nfd!.encrypted);
    expect(names.decrypt(ROOT_DIR_ID, nfd!.encrypted, 'file')?.name).toBe('re\u0301sume\u0301.pdf');
  });

  it('a leading U+FEFF survives decryption (regression: TextDecoder strips a BOM by default)', () => {
    const bom = N.entries.find((e) => e.name.startsWith('\ufeff'))!;
    expect(names.decrypt(ROOT_DIR_ID, bom.encrypted, 'file')?.name).toBe('\ufeffbom.txt');
    expect(names.decrypt(ROOT_DIR_ID, names.encrypt(ROOT_DIR_ID, '\ufeff'), 'file')?.name).toBe('\ufeff');
    const target = N.symlinkTargets.cases.find((c) => c.target.startsWith('\ufeff'))!;
    expect(names.decryptSymlinkTarget(target.stored)).toBe('\ufeffbom');
  });

  it('names with a lone surrogate have no UTF-8 form and are refused', () => {
    expect(() => validatePlainName('x\ud800')).toThrow(NameError);
    expect(() => names.encrypt(ROOT_DIR_ID, 'x\udc00y')).toThrow(NameError);
    expect(() => names.encryptSymlinkTarget('\ud800')).toThrow(NameError);
    expect(() => validatePlainName('🎉')).not.toThrow(); // a surrogate pair is fine
  });

  it.each(N.longNameThresholds.map((t) => [`L=${t.maxNameLength} ${t.kind} of ${t.nameBytes} bytes`, t] as const))('long-name threshold %s', (_, t) => {
    const parent = unhex(t.parentId);
    const ownId = t.dirId ? unhex(t.dirId) : undefined;
    if (ownId) expect(hex(names.deriveDirId(parent, t.name))).toBe(t.dirId);
    const E = names.encrypt(parent, t.name, ownId);
    expect(E).toBe(t.encrypted);
    expect(E.length > t.maxNameLength).toBe(t.long);
    const { cipherName, sidecar } = decoderFor(t.maxNameLength).cipherNameFor(parent, t.name, ownId);
    expect(cipherName).toBe(t.storedName);
    if (t.long) {
      expect(longNameHash(E)).toBe(t.hash);
      expect(t.hash).toHaveLength(26);
      expect(sidecar).toEqual({ name: t.sidecar, content: t.sidecarContent });
    } else {
      expect(sidecar).toBeUndefined();
    }
  });

  it('long names decode from a real directory with their sidecar', async () => {
    for (const t of N.longNameThresholds) {
      const dir = await mkdtemp(join(tmp, 'l-'));
      if (t.sidecar) await writeFile(join(dir, t.sidecar), t.sidecarContent!);
      const entry = await decoderFor(t.maxNameLength).decode(dir, unhex(t.parentId), false, t.storedName, t.kind);
      expect(entry?.name).toBe(t.name);
      expect(entry?.dirId && hex(entry.dirId)).toBe(t.dirId);
      if (t.sidecar) expect(await decoderFor(t.maxNameLength).decode(dir, unhex(t.parentId), false, t.sidecar, 'file')).toBeUndefined();
    }
  });

  it.each(N.conflictCopies.map((c) => [c.storedName.slice(0, 90), c] as const))('conflict copy %s', async (_, c) => {
    if (c.sidecar) await writeFile(join(tmp, c.sidecar), c.sidecarContent!);
    const entry = await decoderFor(255).decode(tmp, unhex(c.parentId), true, c.storedName, c.kind);
    expect(entry?.undecryptable).toBeUndefined();
    const dot = c.name.lastIndexOf('.');
    const [base, ext] = dot > 0 ? [c.name.slice(0, dot), c.name.slice(dot)] : [c.name, ''];
    // "name (conflict …).ext", the stem shortened if need be to stay within 255 bytes.
    const at = entry!.name.indexOf(' (conflict ');
    expect(at).toBeGreaterThan(0);
    expect(base.startsWith(entry!.name.slice(0, at))).toBe(true);
    expect(entry!.name.endsWith(`)${ext}`)).toBe(true);
    expect(Buffer.byteLength(entry!.name)).toBeLessThanOrEqual(255);
    expect(entry!.conflict).toBe(c.rest.replace('.sfl', ''));
    expect(entry!.dirId && hex(entry!.dirId)).toBe(c.dirId);
    expect(names.decrypt(unhex(c.parentId), c.sidecar ? c.sidecarContent!.trim() : c.prefix, c.kind)?.name).toBe(c.name);
  });

  it.each(N.rejected.map((r) => [r.reason, r] as const))('rejected: %s', async (_, r) => {
    expect(names.decrypt(unhex(r.parentId), r.storedName, r.kind)).toBeUndefined();
    const entry = await decoderFor(255).decode(tmp, unhex(r.parentId), false, r.storedName, r.kind);
    expect(entry?.undecryptable).toBe(true);
    expect(entry?.name).toBe(`UNDECRYPTABLE ${r.storedName}`);
  });

  it('symlink targets', () => {
    for (const c of N.symlinkTargets.cases) {
      expect(hex(new TextEncoder().encode(c.target))).toBe(c.targetUtf8);
      expect(names.encryptSymlinkTarget(c.target)).toBe(c.stored);
      expect(names.decryptSymlinkTarget(c.stored)).toBe(c.target);
      expect(names.decryptSymlinkTarget(c.stored.slice(1))).toBeUndefined();
    }
  });

  it.each(V.cases.map((c) => [`${c.config.cipher}/${c.config.chunkSize}/${c.config.maxNameLength}`, c] as const))('vault file %s', async (_, c) => {
    await writeVaultFile(tmp, c.config, MK);
    expect(await readFile(join(tmp, 'sealfs.vault'), 'utf8')).toBe(c.file);
    const stored = await readVaultFile(tmp);
    expect(stored.body).toBe(c.body);
    expect(stored.mac).toBe(c.mac);
    expect(verifyVaultFile(stored, MK, tmp)).toEqual(c.config);
    // The frozen file itself (not only a fresh write) verifies; an edit or another key does not.
    await rm(join(tmp, 'sealfs.vault'));
    await writeFile(join(tmp, 'sealfs.vault'), c.file);
    expect(verifyVaultFile(await readVaultFile(tmp), MK, tmp)).toEqual(c.config);
    expect(() => verifyVaultFile(stored, new Uint8Array(32).fill(1), tmp)).toThrow(/MAC mismatch/);
    expect(() => verifyVaultFile({ ...stored, body: stored.body.replace('{', '{ ') }, MK, tmp)).toThrow(/MAC mismatch/);
    await writeFile(join(tmp, 'sealfs.vault'), c.file.replace(`"maxNameLength":${c.config.maxNameLength}`, '"maxNameLength":200'));
    await expect(readVaultFile(tmp).then((s) => verifyVaultFile(s, MK, tmp))).rejects.toThrow(/MAC mismatch/);
  });
});

describe('cipher names (src/vault/ciphernames.ts, FORMAT.md §10.3–§10.5)', () => {
  const h = 'a'.repeat(26);
  const E = 'b'.repeat(40);

  it('classify: vault file, sync-client files, sidecars and their copies, long and short entries, conflict text', () => {
    const cases: [name: string, atRoot: boolean, type: ReturnType<typeof classify>][] = [
      ['sealfs.vault', true, { type: 'vault-file' }],
      ['sealfs.vault', false, { type: 'short', encoded: 'sealfs', conflict: '.vault' }],
      ['.stfolder', false, { type: 'sync-client' }],
      [`${h}.sfn`, false, { type: 'sidecar', hash: h, conflict: '' }],
      [`${h} (1).sfn`, false, { type: 'sidecar', hash: h, conflict: ' (1)' }],
      [`${h}.sfn.sfn`, false, { type: 'sidecar', hash: h, conflict: '.sfn' }],
      [`${h}.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '' }],
      [`${h}.sfl.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '.sfl' }],
      [`${h}.sfn.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '.sfn' }],
      [`${h}.sync-conflict-20261122-101010-ABC.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '.sync-conflict-20261122-101010-ABC' }],
      [`${h}x.sfl`, false, { type: 'short', encoded: `${h}x`, conflict: '.sfl' }], // a 27-character prefix is no hash
      [`${h}`, false, { type: 'short', encoded: h, conflict: '' }],
      [`${h}.txt`, false, { type: 'short', encoded: h, conflict: '.txt' }],
      [`${E} (conflicted copy 2026-11-22)`, false, { type: 'short', encoded: E, conflict: ' (conflicted copy 2026-11-22)' }],
      ['UPPER', false, { type: 'short', encoded: '', conflict: 'UPPER' }],
    ];
    for (const [name, atRoot, type] of cases) expect(classify(name, atRoot), name).toEqual(type);
    expect(usesSidecar(`${h} (1).sfl`, h)).toBe(true);
    expect(usesSidecar(`${h}.sfn`, h)).toBe(false);
    expect(usesSidecar(`${h}b.sfl`, h)).toBe(false); // starts with the hash, but its prefix is longer
  });

  it('parseSidecar: exactly E and one line feed, hashing to the name; nothing else', () => {
    const E = names.encrypt(ROOT_DIR_ID, 'x'.repeat(200));
    const hash = longNameHash(E);
    const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'latin1'));
    expect(sidecarContent(E)).toBe(`${E}\n`);
    expect(parseSidecar(bytes(`${E}\n`), hash)).toEqual({ ok: true, encoded: E });
    const bad: [content: string, fault: string][] = [
      [E, 'malformed'],
      [`${E}\r\n`, 'malformed'],
      [` ${E}\n`, 'malformed'],
      [`${E} \n`, 'malformed'],
      [`${E}\n\n`, 'malformed'],
      [`${E}\n${E}\n`, 'malformed'],
      [`\xef\xbb\xbf${E}\n`, 'malformed'],
      [`${E.toUpperCase()}\n`, 'malformed'],
      ['', 'malformed'],
      ['\n', 'malformed'],
      [`${E}\n`.padEnd(MAX_SIDECAR_BYTES + 1, 'a'), 'malformed'],
      [`${'a'.repeat(E.length)}\n`, 'mismatch'],
    ];
    for (const [content, fault] of bad) expect(parseSidecar(bytes(content), hash), JSON.stringify(content)).toMatchObject({ ok: false, fault });
  });

  it('the longest encoded name (a 255-byte directory name) fits MAX_SIDECAR_BYTES exactly', () => {
    const E = names.encrypt(ROOT_DIR_ID, 'x'.repeat(255), new Uint8Array(8));
    expect(sidecarContent(E).length).toBe(MAX_SIDECAR_BYTES);
    expect(parseSidecar(new Uint8Array(Buffer.from(sidecarContent(E))), longNameHash(E))).toEqual({ ok: true, encoded: E });
  });

  it('uniqueName: "(duplicate n)" with the smallest free n ≥ 2, before the extension', () => {
    const taken = new Set(['a.txt', 'a (duplicate 2).txt', 'b']);
    expect(uniqueName(taken, 'c.txt')).toBe('c.txt');
    expect(uniqueName(taken, 'a.txt')).toBe('a (duplicate 3).txt');
    expect(uniqueName(taken, 'b')).toBe('b (duplicate 2)');
  });
});
