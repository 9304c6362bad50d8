/**
 * The frozen vectors of test/vectors/ against sealfs itself, for every backend: sealing
 * with the fixed nonces reproduces the stored bytes exactly, every reader gives back the
 * plaintext, and the derived keys match.
 */
import { describe, expect, it } from 'vitest';
import { CIPHER_NAMES, NONCE_BYTES, type CipherName } from '../src/crypto/ciphers.js';
import { contentContext } from '../src/crypto/context.js';
import { backendByName } from '../src/crypto/backends/index.js';
import { FileCipher } from '../src/crypto/filecipher.js';
import { HEADER_BYTES, newHeader, parseHeader } from '../src/crypto/header.js';
import { deriveFileKey, deriveSubkey } from '../src/crypto/kdf.js';
import { chunkCount, plainSizeOf, sealedSize } from '../src/crypto/geometry.js';
import { createDecryptStream, decrypt, MemoryStore, SealedFile } from '../src/index.js';
import { BACKENDS, expectBytes, fromHex, pattern, requireEveryBackend, runStream } from './helpers.js';
import { loadVector, type ContentVectorFile, type KeysVector } from './vectors/spec.js';

type VectorFile = ContentVectorFile<CipherName>;

const keys = loadVector<KeysVector>('keys.json');
const MK = fromHex(keys.masterKey);
const files: VectorFile[] = CIPHER_NAMES.flatMap((cipher) => [4096, 65536].map((c) => loadVector<VectorFile>(`${cipher}-${c}.json`)));

function nonces(count: number): Uint8Array {
  const out = new Uint8Array(count * NONCE_BYTES);
  for (let i = 0; i < count; i++) out.fill(i, i * NONCE_BYTES, (i + 1) * NONCE_BYTES);
  return out;
}

requireEveryBackend();

describe('vector files', () => {
  it('cover both ciphers, both chunk sizes and the sizes around chunk boundaries', () => {
    expect(files.length).toBe(4);
    for (const file of files) {
      const C = file.chunkSize;
      const sizes = file.cases.map((c) => c.plaintextSize);
      expect(sizes).toEqual(C === 4096 ? [0, 1, C - 1, C, C + 1, 5000, 2 * C + 5] : [0, 1, C + 1]);
      for (const v of file.cases) {
        expect(v.chunks).toBe(chunkCount(v.plaintextSize, C));
        expect(v.sealedSize).toBe(sealedSize(v.plaintextSize, C));
        expect(v.sealed.length / 2).toBe(v.sealedSize);
      }
    }
  });

  it('key derivation matches keys.json', () => {
    expect(Buffer.from(deriveSubkey(MK, 'content')).toString('hex')).toBe(keys.contentKey.hex);
    expect(Buffer.from(deriveSubkey(MK, 'names')).toString('hex')).toBe(keys.nameKey.hex);
    expect(Buffer.from(deriveSubkey(MK, 'config')).toString('hex')).toBe(keys.configKey.hex);
  });

  it('the worked example of FORMAT.md §9 is among them', () => {
    const file = files.find((f) => f.cipher === 'aes-256-gcm' && f.chunkSize === 4096)!;
    const v = file.cases.find((c) => c.plaintextSize === 5000)!;
    expect(v.header).toBe('5345414c01010c00a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    expect(v.chunks).toBe(2);
  });
});

describe.each(BACKENDS)('backend %s', (backend) => {
  for (const file of files) {
    describe(`${file.cipher}, chunk ${file.chunkSize}`, () => {
      const ctx = contentContext(MK, { backend, cipher: file.cipher, chunkSize: file.chunkSize });
      it.each(file.cases.map((v) => [v.plaintextSize, v] as const))('size %i', async (size, v) => {
        const sealed = fromHex(v.sealed);
        const plain = pattern(size);

        // Header and file key.
        const header = newHeader(file.cipher, file.chunkSize, fromHex(file.fileId));
        expect(Buffer.from(header.bytes).toString('hex')).toBe(v.header);
        expectBytes(parseHeader(sealed).bytes, header.bytes, 'parsed header');
        expect(Buffer.from(deriveFileKey(ctx.contentKey, header.bytes)).toString('hex')).toBe(v.fileKey);
        expect(plainSizeOf(sealed.length, file.chunkSize)).toBe(size);

        // Sealing with the fixed nonces reproduces the vector, through FileCipher and the backend.
        const body = new FileCipher(ctx, header).sealSync(0, true, plain, nonces(v.chunks));
        expectBytes(body, sealed.subarray(HEADER_BYTES), 'FileCipher.sealSync');
        const out = new Uint8Array(body.length);
        backendByName(backend).seal(
          { cipher: file.cipher, key: fromHex(v.fileKey), header: header.bytes, chunkSize: file.chunkSize, firstIndex: 0, endsFile: true },
          plain,
          out,
          nonces(v.chunks),
        );
        expectBytes(out, sealed.subarray(HEADER_BYTES), 'backend.seal');

        // Every reader opens it.
        expectBytes(decrypt(sealed, MK, { backend }), plain, 'decrypt()');
        const streamed = await runStream(createDecryptStream(MK, { backend }), sealed);
        expect(streamed.error).toBeUndefined();
        expectBytes(streamed.output, plain, 'decrypt stream');
        const sf = await SealedFile.open(new MemoryStore(sealed), ctx, file.chunkSize);
        expect(sf.size).toBe(size);
        expectBytes(await sf.read(0, size + 10), plain, 'SealedFile.read');
      });
    });
  }
});
