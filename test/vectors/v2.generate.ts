/**
 * Writes the frozen format-2 vectors of test/vectors/v2/ — ONCE: it refuses to touch a vector
 * file that exists (a format change is a new version, never a silent regeneration). Run:
 *
 *   SEALFS_WRITE_VECTORS=1 npx vitest run -c test/vectors/vitest.generate.config.ts test/vectors/v2.generate.ts
 *
 * It uses sealfs's own format-2 code with a fixed file id and fixed seal ids (sealfs draws
 * both at random); test/vectors.v2.independent.test.ts reads the result from FORMAT.md alone.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { CIPHER_IDS, CIPHER_NAMES, type CipherName } from '../../src/crypto/ciphers.js';
import { deriveSubkey } from '../../src/crypto/kdf.js';
import { MemoryStore } from '../../src/crypto/store.js';
import { SealedFileV2 } from '../../src/crypto/v2/sealedfile.js';
import { pattern, toHex } from '../helpers.js';

const DIR = fileURLToPath(new URL('./v2/', import.meta.url));
const MASTER_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const FILE_ID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

/** σ of chunk i in the commit that makes version v: uint64be(v) ‖ uint64be(i). */
function sealId(index: number, version: number): Uint8Array {
  const out = Buffer.alloc(16);
  out.writeBigUInt64BE(BigInt(version), 0);
  out.writeBigUInt64BE(BigInt(index), 8);
  return out;
}

/** What each case does, in words the README repeats. */
interface Case {
  readonly name: string;
  readonly steps: string;
  readonly size: number;
  readonly build: (file: SealedFileV2) => Promise<Uint8Array>;
}

function cases(C: number): Case[] {
  const written = (size: number): Case => ({
    name: `written-${size}`,
    steps: size === 0 ? 'create (commits version 1)' : `create (commits version 1); write pattern(${size}) at 0; commit (version 2)`,
    size,
    build: async (file) => {
      await file.write(0, pattern(size));
      await file.commit();
      return pattern(size);
    },
  });
  // Large chunks: only the sizes around the first boundary, to keep the directory small.
  const list = (C === 4096 ? [0, 1, C - 1, C, C + 1, 2 * C + 5] : [0, 1, C + 1]).map(written);
  if (C === 4096) list.push({
    name: 'rewritten',
    steps: `create (version 1); write pattern(${2 * C + 5}) at 0; commit (version 2); write the 3 bytes ff ff ff at ${C + 7}; commit (version 3)`,
    size: 2 * C + 5,
    build: async (file) => {
      const plain = pattern(2 * C + 5);
      await file.write(0, plain);
      await file.commit();
      plain.set([0xff, 0xff, 0xff], C + 7);
      await file.write(C + 7, Uint8Array.of(0xff, 0xff, 0xff));
      await file.commit();
      return plain;
    },
  });
  if (C === 4096) {
    const size = 300 * C - 100;
    list.push({
      name: 'sparse-two-levels',
      steps: `create (version 1); truncate to ${size} (all holes); write pattern(C) at chunks 0, 255, 256 and 299 (the last cut to its length); punch chunk 256 back to a hole; commit (version 2)`,
      size,
      build: async (file) => {
        const plain = new Uint8Array(size);
        await file.truncate(size);
        for (const i of [0, 255, 256, 299]) {
          const data = pattern(Math.min(C, size - i * C));
          await file.write(i * C, data);
          plain.set(data, i * C);
        }
        await file.punch(256 * C, C);
        plain.fill(0, 256 * C, 257 * C);
        await file.commit();
        return plain;
      },
    });
  }
  return list;
}

/** The file's bytes as runs: zero runs of 64 bytes or more are left out (they may be holes). */
function segments(bytes: Uint8Array): { offset: number; hex: string }[] {
  const out: { offset: number; hex: string }[] = [];
  let i = 0;
  while (i < bytes.length) {
    let zeros = 0;
    while (i + zeros < bytes.length && bytes[i + zeros] === 0) zeros++;
    if (zeros >= 64 || i + zeros === bytes.length) {
      i += zeros;
      continue;
    }
    let end = i;
    for (let run = 0; end < bytes.length && run < 64; end++) run = bytes[end] === 0 ? run + 1 : 0;
    while (end > i && bytes[end - 1] === 0) end--;
    out.push({ offset: i, hex: toHex(bytes.subarray(i, end)) });
    i = end;
  }
  return out;
}

async function vectorFile(cipher: CipherName, chunkSize: number) {
  const key = { contentKey2: deriveSubkey(MASTER_KEY, 'content2') };
  const out = [];
  for (const c of cases(chunkSize)) {
    const store = new MemoryStore();
    const file = await SealedFileV2.create(store, key, { cipher, chunkSize, fileId: FILE_ID, sealIds: sealId });
    const plain = await c.build(file);
    const bytes = store.bytes();
    const reopened = await SealedFileV2.open(new MemoryStore(bytes), key);
    expect(Buffer.from(await reopened.read(0, c.size)).equals(Buffer.from(plain))).toBe(true);
    out.push({ name: c.name, steps: c.steps, plaintextSize: c.size, version: reopened.version, sealedLength: bytes.length, segments: segments(bytes) });
  }
  return {
    description: 'Format 2 sealed files (FORMAT.md §16-§19); see test/vectors/v2/README.md',
    masterKey: toHex(MASTER_KEY),
    contentKey2: { info: 'sealfs v2 content', hex: toHex(key.contentKey2) },
    fileId: toHex(FILE_ID),
    cipher,
    cipherId: CIPHER_IDS[cipher],
    chunkSize,
    plaintextRule: 'byte i of pattern(n) = i mod 251',
    sealIdRule: 'sigma of chunk i in the commit making version v = uint64be(v) || uint64be(i)',
    cases: out,
  };
}

it('writes the format-2 vectors once', async () => {
  for (const cipher of CIPHER_NAMES) {
    for (const chunkSize of [4096, 65536]) {
      const name = `${DIR}${cipher}-${chunkSize}.json`;
      const data = await vectorFile(cipher, chunkSize);
      if (existsSync(name)) continue;
      if (process.env.SEALFS_WRITE_VECTORS !== '1') throw new Error(`${name} is missing; set SEALFS_WRITE_VECTORS=1 to write it`);
      writeFileSync(name, JSON.stringify(data, null, 1) + '\n');
    }
  }
});
