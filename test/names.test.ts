/**
 * sealfs's own code reproduces the frozen vault vectors (test/vectors/names.json,
 * test/vectors/vault.json): directory ids, encrypted names, long names, conflict copies,
 * symlink targets and the vault file.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deriveSubkey } from '../src/crypto/kdf.js';
import {
  classify,
  conflictMarker,
  insertBeforeExtension,
  ListingNamer,
  MAX_SIDECAR_BYTES,
  nonCanonicalForm,
  parseSidecar,
  sidecarContent,
  storedForm,
  undecryptableName,
  usesSidecar,
} from '../src/vault/ciphernames.js';
import { DirectoryDecoder } from '../src/vault/directory.js';
import { longNameHash } from '../src/vault/longnames.js';
import { NameCipher, ROOT_DIR_ID, validatePlainName } from '../src/vault/names.js';
import { NameError } from '../src/vault/errors.js';
import { readVaultFile, verifyVaultFile, writeVaultFile, type VaultConfig } from '../src/vault/vaultfile.js';
import { hex, loadVector, unhex, type NameVectors, type VaultVectors } from './vectors/spec.js';

const N = loadVector<NameVectors>('names.json');
const V = loadVector<VaultVectors<VaultConfig>>('vault.json');
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
      // Outside the root it is an entry's name, whose prefix is too short to be an encoded name.
      ['sealfs.vault', false, { type: 'short', encoded: '', conflict: '.vault' }],
      ['.stfolder', false, { type: 'sync-client' }],
      [`${h}.sfn`, false, { type: 'sidecar', hash: h, conflict: '' }],
      [`${h} (1).sfn`, false, { type: 'sidecar', hash: h, conflict: ' (1)' }],
      [`${h}.sfn.sfn`, false, { type: 'sidecar', hash: h, conflict: '.sfn' }],
      [`${h}.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '' }],
      [`${h}.sfl.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '.sfl' }],
      [`${h}.sfn.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '.sfn' }],
      [`${h}.sync-conflict-20261122-101010-ABC.sfl`, false, { type: 'long', hash: h, sidecar: `${h}.sfn`, conflict: '.sync-conflict-20261122-101010-ABC' }],
      [`${h}x.sfl`, false, { type: 'short', encoded: '', conflict: '.sfl' }], // a 27-character prefix is no hash (nor an encoded name)
      [`${h}`, false, { type: 'short', encoded: '', conflict: '' }], // 26 characters: shorter than any encoded name
      [`${h}.txt`, false, { type: 'short', encoded: '', conflict: '.txt' }],
      [`${E}`, false, { type: 'short', encoded: E, conflict: '' }],
      [`${E}.txt`, false, { type: 'short', encoded: E, conflict: '.txt' }],
      // Junk rejected by its length alone, before any AES-SIV call: 28 characters is the shortest
      // encoded name (a 16-byte tag and a 1-byte name), 450 the longest (a special file's: tag,
      // 10-byte prefix, 255-byte name; a directory's is 447), and base32 without
      // padding is never 1, 3 or 6 characters past a multiple of 8.
      ['b'.repeat(27), false, { type: 'short', encoded: '', conflict: '' }],
      ['b'.repeat(28), false, { type: 'short', encoded: 'b'.repeat(28), conflict: '' }],
      ['b'.repeat(41), false, { type: 'short', encoded: '', conflict: '' }],
      ['b'.repeat(43), false, { type: 'short', encoded: '', conflict: '' }],
      ['b'.repeat(46), false, { type: 'short', encoded: '', conflict: '' }],
      ['b'.repeat(447), false, { type: 'short', encoded: 'b'.repeat(447), conflict: '' }],
      ['b'.repeat(450), false, { type: 'short', encoded: 'b'.repeat(450), conflict: '' }],
      ['b'.repeat(451), false, { type: 'short', encoded: '', conflict: '' }],
      ['b'.repeat(456), false, { type: 'short', encoded: '', conflict: '' }],
      ['junk file 1.dat', false, { type: 'short', encoded: '', conflict: ' file 1.dat' }],
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

  it('the longest encoded name (a 255-byte special file name) fits MAX_SIDECAR_BYTES exactly; a 255-byte directory name\'s too', () => {
    const E = names.encryptSpecial(ROOT_DIR_ID, 'x'.repeat(255), { type: 'c', rdev: 2 ** 32 - 1 });
    expect(sidecarContent(E).length).toBe(MAX_SIDECAR_BYTES);
    expect(parseSidecar(new Uint8Array(Buffer.from(sidecarContent(E))), longNameHash(E))).toEqual({ ok: true, encoded: E });
    const dir = names.encrypt(ROOT_DIR_ID, 'x'.repeat(255), new Uint8Array(8));
    expect(sidecarContent(dir).length).toBe(448);
    expect(parseSidecar(new Uint8Array(Buffer.from(sidecarContent(dir))), longNameHash(dir))).toEqual({ ok: true, encoded: dir });
  });

  it('conflictMarker: control and format characters become spaces; whitespace is exactly Unicode White_Space', () => {
    // Regression: U+202E (right-to-left override), ESC and BEL reached the shown name.
    expect(conflictMarker('\u202e(fdp.exe)')).toBe('(conflict fdp exe)');
    expect(conflictMarker('\u0007\u001b[31m')).toBe('(conflict [31m)');
    expect(conflictMarker(' (x\u200by\u2066z\ufeff)')).toBe('(conflict x y z)');
    // White_Space (FORMAT.md §10.5 lists it): U+0009–U+000D, U+0020, U+0085, U+00A0, U+1680,
    // U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
    const whiteSpace = [0x9, 0xa, 0xb, 0xc, 0xd, 0x20, 0x85, 0xa0, 0x1680, ...Array.from({ length: 11 }, (_, i) => 0x2000 + i), 0x2028, 0x2029, 0x202f, 0x205f, 0x3000];
    for (const cp of whiteSpace) expect(conflictMarker(`a${String.fromCodePoint(cp)}b`), cp.toString(16)).toBe('(conflict a b)');
    for (const cp of [0x180e, 0x200b, 0xfeff]) expect(conflictMarker(`a${String.fromCodePoint(cp)}b`), cp.toString(16)).toBe('(conflict a b)'); // Cf, mapped first
    for (const cp of [0x2800, 0x3164, 0xff0e]) expect(conflictMarker(`a${String.fromCodePoint(cp)}b`), cp.toString(16)).toBe(`(conflict a${String.fromCodePoint(cp)}b)`);
    // "'s" counts when no ASCII letter, digit or "_" follows.
    expect(conflictMarker(" (Alice's conflicted copy)")).toBe('(conflict Alice)');
    expect(conflictMarker("Alice'sé")).toBe('(conflict Alice é)');
    expect(conflictMarker("Alice'ss")).toBe("(conflict Alice'ss)");
    // Syncthing: DEVICE is one or more of A–Z a–z 0–9 _ (none: the generic rule applies).
    expect(conflictMarker('.sync-conflict-20261122-101010-A')).toBe('(conflict 2026-11-22 101010 A)');
    expect(conflictMarker('.sync-conflict-20261122-101010-ABC.1')).toBe('(conflict 2026-11-22 101010 ABC)');
    expect(conflictMarker('.sync-conflict-20261122-101010-')).toBe('(conflict sync-conflict-20261122-101010)');
    // Placeholders of undecryptable names are cleaned alike.
    expect(undecryptableName('x\u202ey\u001bz')).toBe('UNDECRYPTABLE x y z');
  });

  it('insertBeforeExtension follows FORMAT.md §10.5 literally (a reference built from the text), in one pass', () => {
    const bytes = (text: string) => Buffer.byteLength(text);
    const reference = (name: string, marker: string) => {
      const dot = name.lastIndexOf('.');
      const stem = [...(dot > 0 ? name.slice(0, dot) : name)];
      const extension = dot > 0 ? name.slice(dot) : '';
      let result = `${stem.join('')} ${marker}${extension}`;
      while (bytes(result) > 255 && stem.length > 1) {
        stem.pop();
        result = `${stem.join('')} ${marker}${extension}`;
      }
      const all = [...result];
      while (bytes(all.join('')) > 255) all.pop();
      return all.join('');
    };
    const alphabet = ['a', '.', 'é', '中', '😀', ' ', 'Z'];
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 5000; i++) {
      let name = '';
      const length = 1 + random(140);
      while (name.length < length) name += alphabet[random(alphabet.length)];
      const cps = [...name];
      while (bytes(cps.join('')) > 255) cps.pop();
      name = cps.join('');
      const marker = random(2) ? `(duplicate ${random(30000)})` : `(conflict ${'😀'.repeat(random(70))})`;
      expect(insertBeforeExtension(name, marker), JSON.stringify([name, marker])).toBe(reference(name, marker));
    }
    // 255-byte names of 1-, 2-, 3- and 4-byte code points: linear, not one re-encoding per dropped code point.
    // The bound is generous for a shared, loaded machine; it only catches work that grows with every dropped code point.
    const start = performance.now();
    let longest = 0;
    for (const unit of ['a', 'é', '中', '😀']) {
      const name = unit.repeat(Math.floor(255 / bytes(unit)));
      for (let n = 2; n < 20_000; n++) longest = Math.max(longest, bytes(insertBeforeExtension(name, `(duplicate ${n})`)));
    }
    expect(performance.now() - start).toBeLessThan(10_000);
    expect(longest).toBe(255);
  });

  it('storedForm / nonCanonicalForm: short when E has at most L characters, long otherwise; only that form is read', () => {
    expect(storedForm('a'.repeat(64), 64)).toBe('short');
    expect(storedForm('a'.repeat(65), 64)).toBe('long');
    expect(nonCanonicalForm('short', 'a'.repeat(64), 64)).toBeUndefined();
    expect(nonCanonicalForm('long', 'a'.repeat(65), 64)).toBeUndefined();
    expect(nonCanonicalForm('long', 'a'.repeat(64), 64)).toMatch(/within the vault's limit of 64/);
    expect(nonCanonicalForm('short', 'a'.repeat(65), 64)).toMatch(/over the vault's limit of 64/);
  });

  it('ListingNamer: "(duplicate n)" with the smallest free n ≥ 2, before the extension', () => {
    const taken = new Set(['a.txt', 'a (duplicate 2).txt', 'b']);
    const namer = new ListingNamer(taken);
    expect(namer.name('c.txt')).toBe('c.txt');
    expect(namer.name('a.txt')).toBe('a (duplicate 3).txt');
    expect(namer.name('b')).toBe('b (duplicate 2)');
    // Names given are added by the caller; the next one of a name resumes past them, and
    // still skips a name taken in between.
    taken.add('a (duplicate 3).txt');
    taken.add('a (duplicate 4).txt');
    expect(namer.name('a.txt')).toBe('a (duplicate 5).txt');
  });
});

describe('special-file names (FORMAT.md §10.2, §14; test/vectors/special-names.json)', () => {
  const S = loadVector<{
    entries: { parentId: string; name: string; type: 'p' | 's' | 'c' | 'b'; rdev: number; encrypted: string; stored: Record<string, { name: string; sidecar?: string; sidecarContent?: string }> }[];
    rejected: { storedName: string; parentId: string }[];
  }>('special-names.json');

  it('NameCipher and DirectoryDecoder reproduce every frozen special-file name, and read each back', () => {
    for (const e of S.entries) {
      const P = unhex(e.parentId);
      const special = { type: e.type, rdev: e.rdev };
      expect(names.encryptSpecial(P, e.name, special)).toBe(e.encrypted);
      expect(names.decrypt(P, e.encrypted, 'file')).toEqual({ name: e.name, special });
      // Only a regular file's name is read as a special file's.
      expect(names.decrypt(P, e.encrypted, 'symlink')).toBeUndefined();
      for (const [L, stored] of Object.entries(e.stored)) {
        const { cipherName, sidecar } = decoderFor(Number(L)).cipherNameFor(P, e.name, undefined, special);
        expect(sidecar ? { name: cipherName, sidecar: sidecar.name, sidecarContent: sidecar.content } : { name: cipherName }).toEqual(stored);
        expect(classify(cipherName, false).type).toBe(sidecar ? 'long' : 'short');
      }
    }
    // The longest one (a 255-byte name) is the longest encoded name there is, and its sidecar fits the bound.
    const longest = Math.max(...S.entries.map((e) => e.encrypted.length));
    expect(longest).toBe(450);
    expect(MAX_SIDECAR_BYTES).toBe(451);
    for (const r of S.rejected) expect(names.decrypt(unhex(r.parentId), r.storedName, 'file')).toBeUndefined();
  });

  it('the writer refuses what a reader would not accept: an unknown type, a device number of 2^32 or more; a FIFO or socket stores 0', () => {
    expect(() => names.encryptSpecial(ROOT_DIR_ID, 'x', { type: 'q' as 'p', rdev: 0 })).toThrow(NameError);
    expect(() => names.encryptSpecial(ROOT_DIR_ID, 'x', { type: 'c', rdev: 2 ** 32 })).toThrow(NameError);
    expect(() => names.encryptSpecial(ROOT_DIR_ID, 'a/b', { type: 'p', rdev: 0 })).toThrow(NameError);
    const E = names.encryptSpecial(ROOT_DIR_ID, 'fifo', { type: 'p', rdev: 7 });
    expect(names.decrypt(ROOT_DIR_ID, E, 'file')).toEqual({ name: 'fifo', special: { type: 'p', rdev: 0 } });
    // A file, a FIFO and a socket of one name in one folder are three different names.
    const kinds = [names.encrypt(ROOT_DIR_ID, 'fifo'), E, names.encryptSpecial(ROOT_DIR_ID, 'fifo', { type: 's', rdev: 0 })];
    expect(new Set(kinds).size).toBe(3);
  });
});
