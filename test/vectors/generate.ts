/**
 * Writes the frozen known-answer vectors of test/vectors/ — ONCE. It refuses to touch the
 * directory if any vector file already exists: vectors pin the on-disk format, and a format
 * change must be a deliberate new version, never a silent regeneration. How to run it and
 * what each file holds: test/vectors/README.md.
 *
 * It uses the sealfs code paths themselves (newHeader with a fixed file id, and
 * FileCipher.sealSync with fixed nonces), sealing with the node backend and checking that
 * the noble backend produces the same bytes before anything is written.
 */
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { CIPHER_IDS, CIPHER_NAMES, NONCE_BYTES, type CipherName } from '../../src/crypto/ciphers.js';
import { contentContext } from '../../src/crypto/context.js';
import { FileCipher } from '../../src/crypto/filecipher.js';
import { HEADER_BYTES, newHeader } from '../../src/crypto/header.js';
import { deriveFileKey, deriveSubkey } from '../../src/crypto/kdf.js';
import { chunkCount, sealedSize } from '../../src/crypto/geometry.js';
import { pattern, toHex } from '../helpers.js';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const MASTER_KEY = Uint8Array.from({ length: 32 }, (_, i) => i); // 00 01 … 1f
const FILE_ID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i); // a0 a1 … af

/** Plaintext sizes per chunk size. 5000 at 4096 is the worked example of FORMAT.md §9. */
const SIZES: Record<number, (c: number) => number[]> = {
  4096: (c) => [0, 1, c - 1, c, c + 1, 5000, 2 * c + 5],
  65536: (c) => [0, 1, c + 1],
};

function nonces(count: number): Uint8Array {
  const out = new Uint8Array(count * NONCE_BYTES);
  for (let i = 0; i < count; i++) out.fill(i, i * NONCE_BYTES, (i + 1) * NONCE_BYTES);
  return out;
}

function sealVector(cipher: CipherName, chunkSize: number, size: number, backend: string): Uint8Array {
  const ctx = contentContext(MASTER_KEY, { backend, cipher, chunkSize });
  const header = newHeader(cipher, chunkSize, FILE_ID);
  const body = new FileCipher(ctx, header).sealSync(0, true, pattern(size), nonces(chunkCount(size, chunkSize)));
  const out = new Uint8Array(HEADER_BYTES + body.length);
  out.set(header.bytes, 0);
  out.set(body, HEADER_BYTES);
  return out;
}

function build(): Map<string, unknown> {
  const files = new Map<string, unknown>();
  files.set('keys.json', {
    description: 'Subkeys derived from the master key (FORMAT.md §2): HKDF-SHA256, empty salt, ikm = masterKey.',
    masterKey: toHex(MASTER_KEY),
    contentKey: { info: 'sealfs v1 content', length: 32, hex: toHex(deriveSubkey(MASTER_KEY, 'content')) },
    nameKey: { info: 'sealfs v1 names', length: 64, hex: toHex(deriveSubkey(MASTER_KEY, 'names')) },
    configKey: { info: 'sealfs v1 config', length: 32, hex: toHex(deriveSubkey(MASTER_KEY, 'config')) },
  });
  const contentKey = deriveSubkey(MASTER_KEY, 'content');
  for (const cipher of CIPHER_NAMES) {
    for (const chunkSize of [4096, 65536]) {
      const header = newHeader(cipher, chunkSize, FILE_ID);
      const cases = SIZES[chunkSize]!(chunkSize).map((size) => {
        const sealed = sealVector(cipher, chunkSize, size, 'node');
        const again = sealVector(cipher, chunkSize, size, 'noble');
        expect(Buffer.compare(sealed, again), `node and noble disagree on ${cipher}/${chunkSize}/${size}`).toBe(0);
        expect(sealed.length).toBe(sealedSize(size, chunkSize));
        return {
          plaintextSize: size,
          chunks: chunkCount(size, chunkSize),
          sealedSize: sealed.length,
          plaintextSha256: createHash('sha256').update(pattern(size)).digest('hex'),
          header: toHex(header.bytes),
          fileKey: toHex(deriveFileKey(contentKey, header.bytes)),
          sealed: toHex(sealed),
        };
      });
      files.set(`${cipher}-${chunkSize}.json`, {
        description:
          'Sealed files (FORMAT.md §3–§5). plaintext byte i = i mod 251; nonce of chunk i = byte i repeated 12 times. ' +
          'Every case shares one header (same file id), hence one file key — fine for vectors, never done by sealfs.',
        formatVersion: 1,
        cipher,
        cipherId: CIPHER_IDS[cipher],
        chunkSize,
        masterKey: toHex(MASTER_KEY),
        fileId: toHex(FILE_ID),
        plaintext: 'byte i = i mod 251',
        nonces: 'nonce_i = byte i repeated 12 times',
        cases,
      });
    }
  }
  return files;
}

it.skipIf(process.env.SEALFS_WRITE_VECTORS !== '1')('writes the frozen vectors (refuses to overwrite)', () => {
  const files = build();
  const existing = [...files.keys()].filter((name) => existsSync(DIR + name));
  if (existing.length > 0) {
    throw new Error(`refusing to overwrite existing vector files: ${existing.join(', ')} — vectors are frozen; see test/vectors/README.md`);
  }
  for (const [name, content] of files) writeFileSync(DIR + name, `${JSON.stringify(content, null, 2)}\n`, { flag: 'wx' });
});
