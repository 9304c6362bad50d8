/**
 * An independent reading of docs/FORMAT.md §2, §10 and §11: checks every frozen vault
 * vector (test/vectors/names.json, test/vectors/vault.json) with only @noble/ciphers,
 * @noble/hashes and @scure/base. Nothing here is imported from ../src (nor from test
 * helpers that do): key derivation, directory ids, the name payloads, canonical base32,
 * the long-name and conflict-copy rules, symlink targets and the vault file's MAC are all
 * written down again from the spec text.
 */
import { aessiv } from '@noble/ciphers/aes.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { base32nopad, base64urlnopad } from '@scure/base';
import { describe, expect, it } from 'vitest';
import { concat, equalBytes, fromUtf8, hex, loadVector, subkeys, unhex, utf8, type EntryKindName, type NameVectors, type StoredNameVector, type VaultVectors } from './vectors/spec.js';

// ---- FORMAT.md, written down again (§1–§2 in ./vectors/spec.ts) ---------------------------

/** §10.1 */
const ROOT_ID = new Uint8Array(8);
const dirId = (DK: Uint8Array, P: Uint8Array, N: string) => hmac(sha256, DK, concat(P, utf8(N))).slice(0, 8);

/** §10.2: RFC 4648 base32, lower case, no padding; a reader accepts only canonical text. */
const base32 = (bytes: Uint8Array) => base32nopad.encode(bytes).toLowerCase();
function unbase32(text: string): Uint8Array | undefined {
  if (!/^[a-z2-7]+$/.test(text)) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = base32nopad.decode(text.toUpperCase());
  } catch {
    return undefined;
  }
  return base32(bytes) === text ? bytes : undefined;
}

/** §10.2: 1 to 255 bytes of UTF-8, no "/", no NUL, not "." or "..". */
function validName(N: string): boolean {
  const n = utf8(N).length;
  return n >= 1 && n <= 255 && !N.includes('/') && !N.includes('\0') && N !== '.' && N !== '..';
}

type Kind = EntryKindName;

/** §10.2: E for an entry N of directory P; `id` only for directories. */
function encryptName(NK: Uint8Array, P: Uint8Array, N: string, id?: Uint8Array): string {
  const payload = id ? concat(id, utf8(N)) : utf8(N);
  return base32(aessiv(NK, P).encrypt(payload)); // AD = [P], exactly one component
}

/** §10.2 reader: the plaintext name (and a directory's id), or undefined. */
function decryptName(NK: Uint8Array, P: Uint8Array, E: string, kind: Kind): { name: string; id?: Uint8Array } | undefined {
  const bytes = unbase32(E);
  if (!bytes) return undefined;
  let payload: Uint8Array;
  try {
    payload = aessiv(NK, P).decrypt(bytes);
  } catch {
    return undefined;
  }
  if (kind === 'dir' && payload.length <= 8) return undefined;
  let name: string;
  try {
    name = fromUtf8(kind === 'dir' ? payload.subarray(8) : payload);
  } catch {
    return undefined;
  }
  if (!validName(name)) return undefined;
  return kind === 'dir' ? { name, id: payload.slice(0, 8) } : { name };
}

/**
 * §10.2, §14: a regular file's payload that starts with 0x00 is a special file's:
 * 0x00 ‖ t ‖ uint64be(rdev) ‖ UTF-8(N), t one of p s c b, rdev < 2^32 and 0 for p and s.
 */
function readSpecialPayload(payload: Uint8Array): { name: string; type: string; rdev: number } | undefined {
  if (payload.length <= 10 || payload[0] !== 0) return undefined;
  const type = String.fromCharCode(payload[1]!);
  if (!['p', 's', 'c', 'b'].includes(type)) return undefined;
  const rdev = new DataView(payload.buffer, payload.byteOffset + 2, 8).getBigUint64(0);
  if (rdev >= 2n ** 32n || ((type === 'p' || type === 's') && rdev !== 0n)) return undefined;
  let name: string;
  try {
    name = fromUtf8(payload.subarray(10));
  } catch {
    return undefined;
  }
  return validName(name) ? { name, type, rdev: Number(rdev) } : undefined;
}

function decryptSpecial(NK: Uint8Array, P: Uint8Array, E: string) {
  const bytes = unbase32(E);
  if (!bytes) return undefined;
  try {
    return readSpecialPayload(aessiv(NK, P).decrypt(bytes));
  } catch {
    return undefined;
  }
}

/** §10.3 */
const longHash = (E: string) => base32(sha256(utf8(E)).slice(0, 16));
function storedForm(E: string, L: number): { name: string; sidecar?: string; sidecarContent?: string } {
  if (E.length <= L) return { name: E };
  const h = longHash(E);
  return { name: `${h}.sfl`, sidecar: `${h}.sfn`, sidecarContent: `${E}\n` };
}

type Read = { kind: 'entry'; name: string; id?: Uint8Array; rest: string } | { kind: 'sidecar' } | { kind: 'undecryptable' };

/**
 * §10.3–§10.5 reader for one stored name of directory P in a vault with name limit L: split
 * into the longest base32 prefix and the rest; a 26-character prefix is a long name (entry
 * with `.sfl` in the rest, sidecar with `.sfn`); the rest, if any, marks a conflict copy. An
 * entry counts only in E's one stored form: long exactly when E is longer than L.
 */
function readStored(NK: Uint8Array, P: Uint8Array, L: number, stored: string, kind: Kind, sidecarText: (name: string) => string | undefined): Read {
  const prefix = /^[a-z2-7]*/.exec(stored)![0];
  let rest = stored.slice(prefix.length);
  let E = prefix;
  let long = false;
  if (prefix.length === 26) {
    if (rest.includes('.sfl')) {
      rest = rest.replace('.sfl', '');
      // Exactly E (lower-case base32, at most 450 characters) and one line feed.
      const text = sidecarText(`${prefix}.sfn`);
      const m = text === undefined || text.length > 451 ? null : /^([a-z2-7]+)\n$/.exec(text);
      if (!m) return { kind: 'undecryptable' };
      E = m[1]!;
      if (longHash(E) !== prefix) return { kind: 'undecryptable' };
      long = true;
    } else if (rest.includes('.sfn')) {
      return { kind: 'sidecar' };
    }
  }
  if (long !== E.length > L) return { kind: 'undecryptable' };
  const plain = E ? decryptName(NK, P, E, kind) : undefined;
  return plain ? { kind: 'entry', ...plain, rest } : { kind: 'undecryptable' };
}

/** §10.6 */
const SYMLINK_AD = utf8('sealfs v1 symlink');
const encryptTarget = (NK: Uint8Array, T: string) => base64urlnopad.encode(aessiv(NK, SYMLINK_AD).encrypt(utf8(T)));
function decryptTarget(NK: Uint8Array, stored: string): string | undefined {
  try {
    const bytes = base64urlnopad.decode(stored);
    if (base64urlnopad.encode(bytes) !== stored) return undefined;
    return fromUtf8(aessiv(NK, SYMLINK_AD).decrypt(bytes));
  } catch {
    return undefined;
  }
}

/** §11: two "\n"-ended lines; the second is "hmac-sha256:" + lower-case hex HMAC-SHA256(VK, line 1). */
function readVault(file: string, VK: Uint8Array): Record<string, unknown> {
  if (!file.endsWith('\n')) throw new Error('last line not ended');
  const lines = file.slice(0, -1).split('\n');
  if (lines.length !== 2) throw new Error(`${lines.length} lines`);
  const [body, macLine] = lines as [string, string];
  const m = /^hmac-sha256:([0-9a-f]{64})$/.exec(macLine);
  if (!m) throw new Error('no MAC line');
  if (!equalBytes(hmac(sha256, VK, utf8(body)), unhex(m[1]!))) throw new Error('MAC mismatch');
  const config = JSON.parse(body) as Record<string, unknown>;
  if (config.format !== 'sealfs-vault') throw new Error('not a vault file');
  if (typeof config.version !== 'number' || config.version > 1) throw new Error('version too new');
  return config;
}

// ---- The vectors ---------------------------------------------------------------------

const N = loadVector<NameVectors>('names.json');
const V = loadVector<VaultVectors>('vault.json');
const MK = unhex(N.masterKey);
const { NK, VK, DK } = subkeys(MK);
const noSidecars = () => undefined;

describe('FORMAT.md §2, §10, §11 read independently', () => {
  it('§2: NK, DK and VK from MK = 00..1f', () => {
    expect(hex(MK)).toBe('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    expect(V.masterKey).toBe(N.masterKey);
    expect([N.nameKey.info, N.nameKey.length, N.dirIdKey.info, N.dirIdKey.length]).toEqual(['sealfs v1 names', 64, 'sealfs v1 dirid', 32]);
    expect(hex(NK)).toBe(N.nameKey.hex);
    expect(hex(DK)).toBe(N.dirIdKey.hex);
    expect(hex(VK)).toBe(V.configKey.hex);
  });

  it('§10.1: directory ids, each derived from its parent', () => {
    const byPath = new Map(N.directories.map((d) => [d.path, d]));
    expect(byPath.get('/')!.id).toBe(hex(ROOT_ID));
    for (const d of N.directories.slice(1)) {
      const parentPath = d.path.slice(0, d.path.lastIndexOf('/')) || '/';
      expect(d.parentId).toBe(byPath.get(parentPath)!.id);
      expect(d.name).toBe(d.path.slice(d.path.lastIndexOf('/') + 1));
      expect(hex(dirId(DK, unhex(d.parentId!), d.name!)), d.path).toBe(d.id);
    }
    // The three-level path /Documents/Taxes/2026 from the root id alone.
    const deep = ['Documents', 'Taxes', '2026'].reduce((P, name) => dirId(DK, P, name), ROOT_ID);
    expect(hex(deep)).toBe(byPath.get('/Documents/Taxes/2026')!.id);
  });

  describe('§10.2–§10.3: encrypted names', () => {
    it.each(N.entries.map((e) => [`${e.directory} ${JSON.stringify(e.name).slice(0, 40)} (${e.kind})`, e] as const))('%s', (_, e) => {
      const dirs = new Map(N.directories.map((d) => [d.path, d.id]));
      expect(e.parentId).toBe(dirs.get(e.directory));
      const P = unhex(e.parentId);
      expect(hex(utf8(e.name))).toBe(e.nameUtf8);
      if (e.kind === 'dir') {
        expect(e.dirId).toBe(hex(dirId(DK, P, e.name)));
        expect(e.payload).toBe(e.dirId! + e.nameUtf8);
      } else {
        expect(e.dirId).toBeUndefined();
        expect(e.payload).toBe(e.nameUtf8);
      }
      // Decrypt the vector...
      const plain = decryptName(NK, P, e.encrypted, e.kind);
      expect(plain?.name).toBe(e.name);
      expect(plain?.id && hex(plain.id)).toBe(e.dirId);
      // ...and re-encrypt it: AES-SIV is deterministic.
      expect(encryptName(NK, P, e.name, e.dirId ? unhex(e.dirId) : undefined)).toBe(e.encrypted);
      // 16-byte synthetic IV + the payload, in base32.
      expect(unbase32(e.encrypted)!.length).toBe(16 + e.payload.length / 2);
      expect(e.encrypted.length).toBe(e.encryptedLength);
      expect(e.encrypted.length).toBe(Math.ceil((8 * (16 + e.payload.length / 2)) / 5));
      expect(e.encrypted).toMatch(/^[a-z2-7]+$/);
      // Stored forms under both limits, and reading them back through the sidecar.
      for (const [L, stored] of Object.entries(e.stored)) {
        expect(stored).toEqual(storedForm(e.encrypted, Number(L)));
        const read = readStored(NK, P, Number(L), stored.name, e.kind, (name) => (name === stored.sidecar ? stored.sidecarContent : undefined));
        expect(read).toMatchObject({ kind: 'entry', name: e.name, rest: '' });
      }
      // The name belongs to its directory: under any other id it does not decrypt.
      for (const d of N.directories) if (d.id !== e.parentId) expect(decryptName(NK, unhex(d.id), e.encrypted, e.kind)).toBeUndefined();
    });

    it('no Unicode normalisation: NFC and NFD "résumé.pdf" are two names', () => {
      const nfc = N.entries.find((e) => e.directory === '/' && e.name === 'r\u00e9sum\u00e9.pdf')!;
      const nfd = N.entries.find((e) => e.directory === '/' && e.name === 're\u0301sume\u0301.pdf')!;
      expect(nfc.nameUtf8).not.toBe(nfd.nameUtf8);
      expect(nfc.encrypted).not.toBe(nfd.encrypted);
    });

    it('a 255-byte name is valid and long under both limits; 256 bytes is not a name', () => {
      const long = N.entries.filter((e) => e.nameUtf8.length / 2 === 255);
      expect(long.length).toBeGreaterThanOrEqual(2);
      for (const e of long) {
        expect(e.stored['255']!.sidecar).toBeDefined();
        expect(e.stored['64']!.sidecar).toBeDefined();
      }
      expect(validName('x'.repeat(256))).toBe(false);
    });

    it('the same name in two directories gives two ciphertext names', () => {
      const hellos = N.entries.filter((e) => e.name === 'hello.txt');
      expect(new Set(hellos.map((e) => e.parentId)).size).toBe(hellos.length);
      expect(new Set(hellos.map((e) => e.encrypted)).size).toBe(hellos.length);
    });

    it('E is never 26 characters (so a 26-character prefix always means a long name)', () => {
      expect(Math.ceil((8 * (16 + 1)) / 5)).toBe(28);
      for (const e of N.entries) expect(e.encrypted.length).toBeGreaterThanOrEqual(28);
    });
  });

  it.each(N.longNameThresholds.map((t) => [`L=${t.maxNameLength}, ${t.kind}, ${t.nameBytes} bytes`, t] as const))('§10.3: threshold %s', (_, t) => {
    const P = unhex(t.parentId);
    const id = t.kind === 'dir' ? dirId(DK, P, t.name) : undefined;
    expect(id && hex(id)).toBe(t.dirId);
    const E = encryptName(NK, P, t.name, id);
    expect(E).toBe(t.encrypted);
    expect(E.length).toBe(t.encryptedLength);
    expect(t.long).toBe(E.length > t.maxNameLength);
    const stored = storedForm(E, t.maxNameLength);
    expect(stored.name).toBe(t.storedName);
    expect(stored.sidecar).toBe(t.sidecar);
    expect(stored.sidecarContent).toBe(t.sidecarContent);
    if (t.long) {
      expect(t.hash).toBe(longHash(E));
      expect(t.hash).toHaveLength(26);
    }
    const read = readStored(NK, P, t.maxNameLength, stored.name, t.kind, (name) => (name === stored.sidecar ? stored.sidecarContent : undefined));
    expect(read).toMatchObject({ kind: 'entry', name: t.name });
  });

  it('§10.3: each limit has one short and one long name per kind, one byte apart, with E at the limit', () => {
    for (const L of [255, 64]) {
      for (const kind of ['file', 'dir']) {
        const pair = N.longNameThresholds.filter((t) => t.maxNameLength === L && t.kind === kind);
        expect(pair.map((t) => t.long)).toEqual([false, true]);
        expect(pair[1]!.nameBytes).toBe(pair[0]!.nameBytes + 1);
        // The longest short E is within a character of L (a byte is 1.6 characters).
        expect(pair[0]!.encryptedLength).toBeLessThanOrEqual(L);
        expect(pair[0]!.encryptedLength).toBeGreaterThanOrEqual(L - 1);
        expect(pair[1]!.encryptedLength).toBeGreaterThan(L);
      }
    }
  });

  it('§10.3: a long name whose sidecar is missing, altered, unterminated or not exactly E and one line feed does not read', () => {
    const t = N.longNameThresholds.find((x) => x.long)!;
    const P = unhex(t.parentId);
    const other = N.longNameThresholds.find((x) => x.long && x.encrypted !== t.encrypted)!;
    expect(readStored(NK, P, t.maxNameLength, t.storedName, t.kind, noSidecars)).toEqual({ kind: 'undecryptable' });
    expect(readStored(NK, P, t.maxNameLength, t.storedName, t.kind, () => other.sidecarContent)).toEqual({ kind: 'undecryptable' });
    expect(readStored(NK, P, t.maxNameLength, t.storedName, t.kind, () => t.sidecarContent!.slice(0, -1))).toEqual({ kind: 'undecryptable' });
    const E = t.sidecarContent!.slice(0, -1);
    for (const content of [`${E}\r\n`, ` ${E}\n`, `${E} \n`, `${E}\n\n`, `${E}\n${E}\n`, `\ufeff${E}\n`, `${E.toUpperCase()}\n`]) {
      expect(readStored(NK, P, t.maxNameLength, t.storedName, t.kind, () => content), JSON.stringify(content)).toEqual({ kind: 'undecryptable' });
    }
    expect(readStored(NK, P, t.maxNameLength, t.storedName, t.kind, () => t.sidecarContent)).toMatchObject({ kind: 'entry', name: t.name });
    expect(readStored(NK, P, t.maxNameLength, t.sidecar!, 'file', noSidecars)).toEqual({ kind: 'sidecar' });
  });

  it('§10.3: an entry counts only in its one stored form (long exactly when E is longer than L)', () => {
    for (const t of N.longNameThresholds) {
      const P = unhex(t.parentId);
      const E = t.encrypted;
      const h = longHash(E);
      const asLong = readStored(NK, P, t.maxNameLength, `${h}.sfl`, t.kind, (name) => (name === `${h}.sfn` ? `${E}\n` : undefined));
      const asShort = readStored(NK, P, t.maxNameLength, E, t.kind, noSidecars);
      expect(asLong.kind, t.storedName).toBe(t.long ? 'entry' : 'undecryptable');
      expect(asShort.kind, t.storedName).toBe(t.long ? 'undecryptable' : 'entry');
    }
  });

  it.each(N.conflictCopies.map((c) => [c.storedName.slice(0, 90), c] as const))('§10.5: conflict copy %s', (_, c) => {
    const P = unhex(c.parentId);
    expect(c.storedName).toBe(c.prefix + c.rest);
    // Any limit reads them: their short names' E are short, the long one's E has a 255-byte name.
    const read = readStored(NK, P, 255, c.storedName, c.kind, (name) => (name === c.sidecar ? c.sidecarContent : undefined));
    expect(read.kind).toBe('entry');
    if (read.kind !== 'entry') return;
    expect(read.name).toBe(c.name);
    expect(read.id && hex(read.id)).toBe(c.dirId);
    // What the sync client added, which a reader turns into a "(conflict …)" marker.
    expect(read.rest).toBe(c.rest.replace('.sfl', ''));
    expect(read.rest.length).toBeGreaterThan(0);
    if (c.sidecar) expect(c.sidecar).toBe(`${c.prefix}.sfn`);
  });

  it.each(N.rejected.map((r) => [r.reason, r] as const))('§10.2: rejected — %s', (_, r) => {
    expect(decryptName(NK, unhex(r.parentId), r.storedName, r.kind)).toBeUndefined();
    expect(readStored(NK, unhex(r.parentId), 255, r.storedName, r.kind, noSidecars)).toEqual({ kind: 'undecryptable' });
  });

  it('§10.6: symlink targets', () => {
    expect(N.symlinkTargets.associatedData).toBe('sealfs v1 symlink');
    for (const c of N.symlinkTargets.cases) {
      expect(hex(utf8(c.target))).toBe(c.targetUtf8);
      expect(c.stored).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decryptTarget(NK, c.stored)).toBe(c.target);
      expect(encryptTarget(NK, c.target)).toBe(c.stored);
      // Not bound to a directory: any name AD makes it fail.
      expect(() => aessiv(NK, ROOT_ID).decrypt(base64urlnopad.decode(c.stored))).toThrow();
    }
    expect(decryptTarget(NK, N.symlinkTargets.cases[0]!.stored + 'A')).toBeUndefined();
  });

  it.each(V.cases.map((c) => [`${c.config.cipher}/${c.config.chunkSize}/${c.config.maxNameLength}`, c] as const))('§11: vault file %s', (_, c) => {
    expect(c.file).toBe(`${c.body}\n${c.macLine}\n`);
    expect(c.macLine).toBe(`hmac-sha256:${c.mac}`);
    expect(hex(hmac(sha256, VK, utf8(c.body)))).toBe(c.mac);
    expect(readVault(c.file, VK)).toEqual(c.config);
    expect(c.config).toMatchObject({ format: 'sealfs-vault', version: 1, nameScheme: 'aes-siv-base32' });
    // The spec's example line has exactly this field order.
    expect(Object.keys(c.config)).toEqual(['format', 'version', 'vaultId', 'cipher', 'chunkSize', 'nameScheme', 'maxNameLength']);
    // Refused: an edited body, another key, a newer version (even with a valid MAC).
    expect(() => readVault(c.file.replace('"version":1', '"version":1 '), VK)).toThrow(/MAC/);
    expect(() => readVault(c.file, subkeys(new Uint8Array(32).fill(1)).VK)).toThrow(/MAC/);
    const newer = c.body.replace('"version":1', '"version":2');
    expect(() => readVault(`${newer}\nhmac-sha256:${hex(hmac(sha256, VK, utf8(newer)))}\n`, VK)).toThrow(/too new/);
  });
});

// ---- Special-file names (§10.2, §14): test/vectors/special-names.json --------------------

interface SpecialVectors {
  masterKey: string;
  entries: { directory: string; parentId: string; name: string; nameUtf8: string; type: string; rdev: number; payload: string; encrypted: string; encryptedLength: number; stored: Record<string, StoredNameVector> }[];
  rejected: { storedName: string; parentId: string; kind: 'file'; payload: string; reason: string }[];
}
const S = loadVector<SpecialVectors>('special-names.json');

describe('FORMAT.md §10.2 and §14 read independently: special files', () => {
  it.each(S.entries.map((e) => [`${e.directory} ${JSON.stringify(e.name).slice(0, 30)} (${e.type} ${e.rdev})`, e] as const))('%s', (_, e) => {
    expect(S.masterKey).toBe(N.masterKey);
    const P = unhex(e.parentId);
    expect(hex(utf8(e.name))).toBe(e.nameUtf8);
    // The payload as the text builds it: 0x00, t, rdev as 8 bytes big-endian, the name.
    const rdev = new Uint8Array(8);
    new DataView(rdev.buffer).setBigUint64(0, BigInt(e.rdev));
    expect(e.payload).toBe(hex(concat(Uint8Array.of(0, e.type.charCodeAt(0)), rdev, utf8(e.name))));
    expect(decryptSpecial(NK, P, e.encrypted)).toEqual({ name: e.name, type: e.type, rdev: e.rdev });
    expect(base32(aessiv(NK, P).encrypt(unhex(e.payload)))).toBe(e.encrypted);
    expect(e.encrypted.length).toBe(e.encryptedLength);
    expect(e.encrypted.length).toBe(Math.ceil((8 * (16 + e.payload.length / 2)) / 5));
    expect(e.encrypted.length).toBeLessThanOrEqual(450);
    // Not a file name (a file name never holds NUL), not a directory's under any reading that
    // checks its name, and bound to its directory.
    expect(decryptName(NK, P, e.encrypted, 'file')).toBeUndefined();
    expect(decryptSpecial(NK, unhex(e.parentId === hex(ROOT_ID) ? '0000000000000001' : hex(ROOT_ID)), e.encrypted)).toBeUndefined();
    for (const [L, stored] of Object.entries(e.stored)) {
      expect(stored).toEqual(storedForm(e.encrypted, Number(L)));
      if (stored.sidecarContent !== undefined) expect(stored.sidecarContent.length).toBeLessThanOrEqual(451);
    }
  });

  it.each(S.rejected.map((r) => [r.reason, r] as const))('rejected: %s', (_, r) => {
    const P = unhex(r.parentId);
    // It authenticates (the payload is what the vector says)...
    expect(hex(aessiv(NK, P).decrypt(unbase32(r.storedName)!))).toBe(r.payload);
    // ...but is neither a special file's name nor a file's.
    expect(decryptSpecial(NK, P, r.storedName)).toBeUndefined();
    expect(decryptName(NK, P, r.storedName, 'file')).toBeUndefined();
  });
});
