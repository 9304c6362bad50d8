/**
 * Writes the frozen special-file name vectors test/vectors/special-names.json — ONCE (it
 * refuses to run if the file exists and opens it with `wx`): they pin FORMAT.md §10.2's
 * special-file payload and §14. How to run it: test/vectors/README.md, "Special-file names".
 *
 * It uses sealfs's own code paths (NameCipher.encryptSpecial, DirectoryDecoder.cipherNameFor)
 * and checks that each name decrypts back; the rejected cases seal hand-made payloads with
 * @noble/ciphers' AES-SIV.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { aessiv } from '@noble/ciphers/aes.js';
import { expect, it } from 'vitest';
import { deriveSubkey } from '../../src/crypto/kdf.js';
import { DirectoryDecoder } from '../../src/vault/directory.js';
import { toBase32 } from '../../src/vault/encoding.js';
import { NameCipher, ROOT_DIR_ID, type SpecialType } from '../../src/vault/names.js';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const MASTER_KEY = Uint8Array.from({ length: 32 }, (_, i) => i); // 00 01 … 1f, as names.json
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const utf8 = (text: string) => new TextEncoder().encode(text);
const NK = deriveSubkey(MASTER_KEY, 'names');
const names = new NameCipher(NK, deriveSubkey(MASTER_KEY, 'dirid'));
const LIMITS = [255, 64] as const;
const DOCUMENTS = names.deriveDirId(ROOT_DIR_ID, 'Documents');

function payload(type: string, rdev: bigint, name: Uint8Array): Uint8Array {
  const out = new Uint8Array(10 + name.length);
  out[1] = type.charCodeAt(0);
  new DataView(out.buffer).setBigUint64(2, rdev);
  out.set(name, 10);
  return out;
}

/** [parent id, directory path, name, type, rdev] */
const CASES: [Uint8Array, string, string, SpecialType, number][] = [
  [ROOT_DIR_ID, '/', 'pipe', 'p', 0],
  [ROOT_DIR_ID, '/', 'server.sock', 's', 0],
  [ROOT_DIR_ID, '/', 'null', 'c', (1 << 8) | 3],
  [ROOT_DIR_ID, '/', 'sda1', 'b', (8 << 8) | 1],
  [ROOT_DIR_ID, '/', 'hello.txt', 'p', 0], // the same name as names.json's file: another E
  [DOCUMENTS, '/Documents', 'pipe', 'p', 0], // the same name in another directory
  [ROOT_DIR_ID, '/', '日本語 fifo', 'p', 0],
  [ROOT_DIR_ID, '/', 'tty ' + 'x'.repeat(30), 'c', (136 << 8) | 0],
  [ROOT_DIR_ID, '/', 'f'.repeat(255), 'p', 0], // the longest name: E has 450 characters
];

function entries() {
  return CASES.map(([parent, directory, name, type, rdev]) => {
    const E = names.encryptSpecial(parent, name, { type, rdev });
    expect(names.decrypt(parent, E, 'file')).toEqual({ name, special: { type, rdev } });
    expect(names.decrypt(parent, E, 'symlink')).toBeUndefined();
    const stored: Record<string, unknown> = {};
    for (const limit of LIMITS) {
      const { cipherName, sidecar } = new DirectoryDecoder(names, limit).cipherNameFor(parent, name, undefined, { type, rdev });
      stored[String(limit)] = sidecar ? { name: cipherName, sidecar: sidecar.name, sidecarContent: sidecar.content } : { name: cipherName };
    }
    return { directory, parentId: hex(parent), name, nameUtf8: hex(utf8(name)), type, rdev, payload: hex(payload(type, BigInt(rdev), utf8(name))), encrypted: E, encryptedLength: E.length, stored };
  });
}

/** Payloads that authenticate as a regular file's name but are no valid special-file name. */
function rejected() {
  const bad: [string, Uint8Array][] = [
    ['unknown type "x"', payload('x', 0n, utf8('pipe'))],
    ['a FIFO with a device number', payload('p', 5n, utf8('pipe'))],
    ['a socket with a device number', payload('s', 1n, utf8('sock'))],
    ['a device number of 2^32', payload('c', 1n << 32n, utf8('dev'))],
    ['no name after the 10-byte prefix', payload('p', 0n, new Uint8Array(0))],
    ['a name with "/"', payload('p', 0n, utf8('a/b'))],
    ['a name that is not UTF-8', payload('p', 0n, Uint8Array.of(0x78, 0xff))],
  ];
  return bad.map(([reason, p]) => {
    const E = toBase32(aessiv(NK, ROOT_DIR_ID).encrypt(p));
    expect(names.decrypt(ROOT_DIR_ID, E, 'file')).toBeUndefined();
    return { storedName: E, parentId: hex(ROOT_DIR_ID), kind: 'file', payload: hex(p), reason };
  });
}

it.skipIf(process.env.SEALFS_WRITE_VECTORS !== '1')('writes the frozen special-file name vectors (refuses to overwrite)', () => {
  const path = DIR + 'special-names.json';
  expect(existsSync(path)).toBe(false);
  const file = {
    description:
      'Special-file names of FORMAT.md §10.2 and §14: payload 0x00 ‖ t ‖ uint64be(rdev) ‖ UTF-8(N), encrypted as a file name (AES-SIV, AD = [P], base32, long names §10.3). Keys as names.json (masterKey 00…1f). All binary values are lower-case hex.',
    formatVersion: 1,
    masterKey: hex(MASTER_KEY),
    entries: entries(),
    rejected: rejected(),
  };
  writeFileSync(path, JSON.stringify(file, null, 2) + '\n', { flag: 'wx' });
});
