/**
 * Writes the frozen extended-attribute vectors test/vectors/xattr.json — ONCE. Like the other
 * generators it refuses to run if the file exists and opens it with `wx`: these vectors pin
 * FORMAT.md §14.2, and a change there must be a new format version, never a silent
 * regeneration. What the file holds: test/vectors/README.md, "Extended attribute vectors".
 *
 * It uses sealfs's own code (deriveSubkey, NameCipher, XattrCipher with a fixed nonce) and
 * checks that every stored value opens again before writing.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { CIPHER_IDS, CIPHER_NAMES } from '../../src/crypto/ciphers.js';
import { deriveSubkey, SUBKEY_INFO } from '../../src/crypto/kdf.js';
import { NameCipher } from '../../src/vault/names.js';
import { MAX_PLAIN_XATTR_NAME, XATTR_VALUE_VERSION, XattrCipher, xattrValueAd, type XattrOwner } from '../../src/vault/xattrs.js';

const OUT = fileURLToPath(new URL('./xattr.json', import.meta.url));
const MASTER_KEY = Uint8Array.from({ length: 32 }, (_, i) => i); // 00 01 … 1f
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const utf8 = (text: string) => new TextEncoder().encode(text);

/** The common header of FORMAT.md §9's inputs with 64 KiB chunks: SEAL 01 01 10 00 a0…af. */
const HEADER = Uint8Array.from([0x53, 0x45, 0x41, 0x4c, 1, 1, 16, 0, ...Array.from({ length: 16 }, (_, i) => 0xa0 + i)]);
/** Ids of / and /Documents (test/vectors/names.json). */
const ROOT_ID = new Uint8Array(8);
const DOCUMENTS_ID = Uint8Array.from(Buffer.from('1c233fa36b07c3cd', 'hex'));
const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0xc0 + i);
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);

const OWNERS: { label: string; owner: XattrOwner }[] = [
  { label: 'file (header of §9, 64 KiB chunks)', owner: { kind: 'file', header: HEADER } },
  { label: 'directory /Documents', owner: { kind: 'dir', dirId: DOCUMENTS_ID } },
  { label: 'the root directory', owner: { kind: 'dir', dirId: ROOT_ID } },
];
const NAMES: Uint8Array[] = [
  utf8('user.xdg.tags'),
  utf8('user.日本語'),
  Uint8Array.from([...utf8('user.'), 0xff, 0xfe]), // not UTF-8: names are bytes
  utf8('user.' + 'n'.repeat(MAX_PLAIN_XATTR_NAME - 5)), // the longest name that fits
];
const VALUES: Uint8Array[] = [new Uint8Array(0), utf8('red,blue'), pattern(1000)];

it('writes test/vectors/xattr.json once', () => {
  if (existsSync(OUT)) throw new Error(`${OUT} exists: frozen vectors are never regenerated`);
  if (process.env.SEALFS_WRITE_VECTORS !== '1') throw new Error('set SEALFS_WRITE_VECTORS=1 to write the vectors');
  const NK = deriveSubkey(MASTER_KEY, 'names');
  const XK = deriveSubkey(MASTER_KEY, 'xattr');
  const names = new NameCipher(NK, deriveSubkey(MASTER_KEY, 'dirid'));
  const cases = [];
  let k = 0;
  for (const cipher of CIPHER_NAMES) {
    const xattrs = new XattrCipher(Uint8Array.from(XK), names, cipher);
    for (const { label, owner } of OWNERS) {
      for (const name of NAMES) {
        const value = VALUES[k++ % VALUES.length]!;
        const stored = xattrs.seal(owner, name, value, NONCE);
        expect(xattrs.open(owner, name, stored)).toEqual(Buffer.from(value));
        const storedName = xattrs.cipherName(name);
        expect(xattrs.plainName(Buffer.from(storedName, 'latin1'))).toEqual(name);
        cases.push({
          cipher,
          cipherId: CIPHER_IDS[cipher],
          owner: label,
          ownerKind: owner.kind,
          binding: hex(owner.kind === 'file' ? owner.header : owner.dirId),
          name: hex(name),
          storedName,
          value: hex(value),
          nonce: hex(NONCE),
          associatedData: hex(xattrValueAd(XATTR_VALUE_VERSION, CIPHER_IDS[cipher], owner, name)),
          storedValue: hex(stored),
        });
      }
    }
  }
  const out = {
    description: 'sealfs extended attributes, docs/FORMAT.md §14.2 (format version 1); generated once by test/vectors/xattr.generate.ts',
    masterKey: hex(MASTER_KEY),
    nameKey: { info: SUBKEY_INFO.names, length: 64, hex: hex(NK) },
    xattrKey: { info: SUBKEY_INFO.xattr, length: 32, hex: hex(XK) },
    cases,
  };
  writeFileSync(OUT, JSON.stringify(out, null, 2) + '\n', { flag: 'wx' });
});
