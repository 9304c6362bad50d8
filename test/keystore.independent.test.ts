/**
 * An independent reading of docs/FORMAT.md §12 (the key store) and §13 (the recovery key),
 * then §2-§5 and §10 on the frozen vault test/vectors/vault-v1/: the master key is unwrapped
 * from the frozen key file with the passphrase and decoded from the recovery key, both ways
 * must give the same key, and with it one file and the names of the vault's root are
 * decrypted. Only @noble/ciphers, @noble/hashes and node built-ins: nothing is imported from
 * ../src (nor from test helpers that do); every rule is written down again from the text.
 */
import { readdirSync, readFileSync, readlinkSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aessiv, gcm } from '@noble/ciphers/aes.js';
import { hmac } from '@noble/hashes/hmac.js';
import { scrypt } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { concat, fileKey, fromUtf8, hex, subkeys, utf8 } from './vectors/spec.js';

const VAULT = fileURLToPath(new URL('./vectors/vault-v1/', import.meta.url));
const CIPHER = join(VAULT, 'cipher');


// ---- §12: the key store ----------------------------------------------------------------

/** §12: RFC 4648 §4 base64 (alphabet A-Z a-z 0-9 + /, "=" padding), exactly `length` bytes. */
function base64(text: unknown, length: number): Uint8Array {
  if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) throw new Error(`not base64: ${String(text)}`);
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (bytes.length !== length) throw new Error(`expected ${length} bytes, got ${bytes.length}`);
  return bytes;
}

interface KeyFile {
  format: string;
  version: number;
  vaultId: string;
  kdf: { name: string; N: number; r: number; p: number; salt: string };
  wrappedKey: { cipher: string; nonce: string; ciphertext: string; tag: string };
}

/** §12: W = scrypt(NFC passphrase, salt, N, r, p, 32); MK = AES-256-GCM-Open(W, nonce, AAD, ciphertext ‖ tag). */
function unwrapKeyStore(file: KeyFile, passphrase: string): Uint8Array {
  expect(file.format).toBe('sealfs-keystore');
  expect(file.version).toBe(1);
  const { N, r, p } = file.kdf;
  expect(file.kdf.name).toBe('scrypt');
  // The ranges a reader accepts: N a power of two from 2^10 to 2^22, 1 ≤ r ≤ 32, 1 ≤ p ≤ 16.
  expect(Number.isInteger(Math.log2(N)) && N >= 2 ** 10 && N <= 2 ** 22 && r >= 1 && r <= 32 && p >= 1 && p <= 16).toBe(true);
  const salt = base64(file.kdf.salt, 16);
  const W = scrypt(utf8(passphrase.normalize('NFC')), salt, { N, r, p, dkLen: 32 });
  expect(file.wrappedKey.cipher).toBe('aes-256-gcm');
  const w = file.wrappedKey;
  const aad = utf8(`sealfs keystore v1 ${file.vaultId}`);
  return gcm(W, base64(w.nonce, 12), aad).decrypt(concat(base64(w.ciphertext, 32), base64(w.tag, 16)));
}

// ---- §13: the recovery key -------------------------------------------------------------

/** §13: CRC-16/IBM-3740: polynomial 0x1021, init 0xFFFF, no reflection, no final XOR. */
function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** §13 reading: strip whitespace and "-", upper-case, O→0, I/L→1; 55 characters, zero padding, matching CRC. */
function readRecoveryKey(text: string): Uint8Array {
  const chars = text.replace(/[\s-]/g, '').toUpperCase().replace(/O/g, '0').replace(/[IL]/g, '1');
  if (chars.length !== 55) throw new Error(`expected 55 characters, got ${chars.length}`);
  const bits: number[] = [];
  for (const c of chars) {
    const v = CROCKFORD.indexOf(c);
    if (v < 0) throw new Error(`not a recovery-key character: ${c}`);
    for (let k = 4; k >= 0; k--) bits.push((v >> k) & 1);
  }
  if (bits.slice(272).some((b) => b !== 0)) throw new Error('padding bits are not zero');
  const bytes = Uint8Array.from({ length: 34 }, (_, i) => bits.slice(i * 8, i * 8 + 8).reduce((acc, b) => (acc << 1) | b, 0));
  const key = bytes.slice(0, 32);
  if (crc16(key) !== ((bytes[32]! << 8) | bytes[33]!)) throw new Error('CRC mismatch');
  return key;
}

/** §13 writing, to check the example of the text. */
function writeRecoveryKey(key: Uint8Array): string {
  const crc = crc16(key);
  const bits = [...concat(key, Uint8Array.of(crc >> 8, crc & 0xff))].flatMap((byte) => Array.from({ length: 8 }, (_, k) => (byte >> (7 - k)) & 1));
  while (bits.length % 5) bits.push(0);
  let chars = '';
  for (let i = 0; i < bits.length; i += 5) chars += CROCKFORD[bits.slice(i, i + 5).reduce((acc, b) => (acc << 1) | b, 0)];
  return chars.match(/.{5}/g)!.join('-');
}

// ---- §2-§5, §10: just enough to read a file and the names of the root --------------------

/** §3-§5: the plaintext of a sealed AES-256-GCM file (every chunk must verify, the last as final). */
function openSealedFile(file: Uint8Array, CK: Uint8Array): Uint8Array {
  const H = file.subarray(0, 24);
  expect(hex(H.subarray(0, 8)).slice(0, 12)).toBe('5345414c0101'); // "SEAL", version 1, AES-256-GCM
  const e = H[6]!;
  expect(e >= 12 && e <= 20 && H[7] === 0).toBe(true);
  const C = 2 ** e;
  const FK = fileKey(CK, H);
  const B = file.length - 24;
  const n = Math.ceil(B / (C + 28));
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const stored = file.subarray(24 + i * (C + 28), Math.min(file.length, 24 + (i + 1) * (C + 28)));
    const index = new Uint8Array(8);
    new DataView(index.buffer).setBigUint64(0, BigInt(i));
    const A = concat(H, index, Uint8Array.of(i === n - 1 ? 1 : 0));
    out.push(gcm(FK, stored.subarray(0, 12), A).decrypt(stored.subarray(12)));
  }
  return concat(...out);
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** §10.2: RFC 4648 base32, lower case, no padding, canonical only (unused low bits zero). */
function unbase32(text: string): Uint8Array | undefined {
  if (!/^[a-z2-7]+$/.test(text) || [1, 3, 6].includes(text.length % 8)) return undefined;
  const bits = [...text].flatMap((c) => Array.from({ length: 5 }, (_, k) => (BASE32.indexOf(c) >> (4 - k)) & 1));
  const whole = Math.floor(bits.length / 8);
  if (bits.slice(whole * 8).some((b) => b !== 0)) return undefined;
  return Uint8Array.from({ length: whole }, (_, i) => bits.slice(i * 8, i * 8 + 8).reduce((acc, b) => (acc << 1) | b, 0));
}
const base32 = (bytes: Uint8Array) => {
  const bits = [...bytes].flatMap((byte) => Array.from({ length: 8 }, (_, k) => (byte >> (7 - k)) & 1));
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += BASE32[bits.slice(i, i + 5).concat([0, 0, 0, 0]).slice(0, 5).reduce((acc, b) => (acc << 1) | b, 0)];
  return out;
};

const ROOT_ID = new Uint8Array(8);

/** §10.2 (and §10.3 for `<h>.sfl`): the plaintext name of a root entry, or undefined. */
function rootName(NK: Uint8Array, DK: Uint8Array, cipherName: string, isDir: boolean): string | undefined {
  let E = cipherName;
  const long = /^([a-z2-7]{26})\.sfl$/.exec(cipherName);
  if (long) {
    E = readFileSync(join(CIPHER, `${long[1]}.sfn`), 'utf8').replace(/\n$/, '');
    if (base32(sha256(utf8(E)).slice(0, 16)) !== long[1]) return undefined;
  }
  const sealed = unbase32(E);
  if (!sealed || sealed.length < 16) return undefined;
  let payload: Uint8Array;
  try {
    payload = aessiv(NK, ROOT_ID).decrypt(sealed);
  } catch {
    return undefined;
  }
  if (!isDir) return fromUtf8(payload);
  const name = fromUtf8(payload.subarray(8));
  // §10.1: a directory's id is derived from its parent's id and its name.
  expect(hex(payload.subarray(0, 8)), name).toBe(hex(hmac(sha256, DK, concat(ROOT_ID, utf8(name))).slice(0, 8)));
  return name;
}

// ---- the frozen vault ----------------------------------------------------------------

interface Expected {
  passphrase: string;
  recoveryKey: string;
  masterKey: string;
  vaultId: string;
  tree: { path: string; type: string; size: number; sha256?: string; target?: string }[];
}
const expected = JSON.parse(readFileSync(join(VAULT, 'expected.json'), 'utf8')) as Expected;
const keyFiles = readdirSync(join(VAULT, 'keystore'));
const keyFile = JSON.parse(readFileSync(join(VAULT, 'keystore', `${expected.vaultId}.key`), 'utf8')) as KeyFile;

describe('FORMAT.md §12 and §13, read independently, on the frozen vault v1', () => {
  it('the key store holds one key file, <vaultId>.key, for the vault of the vault file', () => {
    expect(keyFiles).toEqual([`${expected.vaultId}.key`]);
    expect(keyFile.vaultId).toBe(expected.vaultId);
    expect(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(keyFile.vaultId)).toBe(true);
    const vaultLine = readFileSync(join(CIPHER, 'sealfs.vault'), 'utf8').split('\n')[0]!;
    expect((JSON.parse(vaultLine) as { vaultId: string }).vaultId).toBe(expected.vaultId);
  });

  it('the passphrase and the recovery key give the same master key', () => {
    const fromPassphrase = unwrapKeyStore(keyFile, expected.passphrase);
    const fromRecovery = readRecoveryKey(expected.recoveryKey);
    expect(hex(fromPassphrase)).toBe(hex(fromRecovery));
    expect(hex(fromPassphrase)).toBe(expected.masterKey);
    // As typed by a person: lower case, spaces, look-alikes (0 as O, 1 as I or L).
    const typed = expected.recoveryKey.toLowerCase().replace(/-/g, ' ').replace(/0/g, 'o').replace(/1/g, 'l');
    expect(hex(readRecoveryKey(typed))).toBe(expected.masterKey);
    expect(writeRecoveryKey(fromRecovery)).toBe(expected.recoveryKey);
  });

  it('a wrong passphrase fails the tag; the MAC of the vault file verifies with the key', () => {
    expect(() => unwrapKeyStore(keyFile, `${expected.passphrase}!`)).toThrow();
    // §12: another vault id in the AAD fails the tag too.
    expect(() => unwrapKeyStore({ ...keyFile, vaultId: '00000000-0000-4000-8000-000000000000' }, expected.passphrase)).toThrow();
    const [body, mac] = readFileSync(join(CIPHER, 'sealfs.vault'), 'utf8').split('\n');
    const { VK } = subkeys(readRecoveryKey(expected.recoveryKey));
    expect(mac).toBe(`hmac-sha256:${hex(hmac(sha256, VK, utf8(body!)))}`);
  });

  it('§13: the CRC check value and the example key of the text', () => {
    expect(crc16(utf8('123456789'))).toBe(0x29b1);
    const example = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(writeRecoveryKey(example)).toBe('000G4-0R40M-30E20-9185G-R38E1-W8124-GK2GA-HC5RR-34D1P-70X3R-FJ7CR');
    expect(hex(readRecoveryKey('000G4-0R40M-30E20-9185G-R38E1-W8124-GK2GA-HC5RR-34D1P-70X3R-FJ7CR'))).toBe(hex(example));
    expect(() => readRecoveryKey('100G4-0R40M-30E20-9185G-R38E1-W8124-GK2GA-HC5RR-34D1P-70X3R-FJ7CR')).toThrow('CRC');
  });

  it('with that key, every name in the root decrypts to the expected tree, and a file of several chunks reads back', () => {
    const { CK, NK, DK } = subkeys(readRecoveryKey(expected.recoveryKey));
    const rootChildren = expected.tree.filter((e) => e.path.lastIndexOf('/') === 0);
    const found = new Map<string, string>();
    for (const cipherName of readdirSync(CIPHER)) {
      if (cipherName === 'sealfs.vault' || cipherName.endsWith('.sfn')) continue;
      const st = lstatSync(join(CIPHER, cipherName));
      const conflict = /^([a-z2-7]+) \(conflicted copy 2026-11-22\)$/.exec(cipherName);
      const name = rootName(NK, DK, conflict ? conflict[1]! : cipherName, st.isDirectory());
      expect(name, cipherName).toBeDefined();
      // §10.5: a conflict copy shows under its original's name with a marker; here its prefix is checked.
      found.set(conflict ? `${name} (conflict copy)` : name!, cipherName);
      if (st.isSymbolicLink()) {
        const target = fromUtf8(aessiv(NK, utf8('sealfs v1 symlink')).decrypt(new Uint8Array(Buffer.from(readlinkSync(join(CIPHER, cipherName)), 'base64url'))));
        expect(target).toBe(rootChildren.find((e) => e.path === `/${name}`)?.target);
      }
    }
    const shown = [...found.keys()].map((n) => (n === 'notes.txt (conflict copy)' ? 'notes (conflict 2026-11-22).txt' : n)).sort();
    expect(shown).toEqual(rootChildren.map((e) => e.path.slice(1)).sort());

    const big = expected.tree.find((e) => e.path === '/big.bin')!;
    expect(big.size).toBeGreaterThan(2 * 4096);
    const plain = openSealedFile(new Uint8Array(readFileSync(join(CIPHER, found.get('big.bin')!))), CK);
    expect({ size: plain.length, sha256: hex(sha256(plain)) }).toEqual({ size: big.size, sha256: big.sha256 });
  });
});
