/**
 * An independent reading of docs/FORMAT.md Part III (§16–§19): opens every frozen format-2
 * vector with only @noble/ciphers and @noble/hashes. Nothing here comes from ../src: the
 * keys, the layout of chunks and index nodes, the hashes and the root MAC are written down
 * again from the text.
 */
import { ecb, gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { concat, equalBytes, hex, HKDF, loadVector, unhex, utf8 } from './vectors/spec.js';

interface V2Case {
  name: string;
  plaintextSize: number;
  version: number;
  sealedLength: number;
  segments: { offset: number; hex: string }[];
}
interface V2File {
  masterKey: string;
  cipher: string;
  chunkSize: number;
  cases: V2Case[];
}

const u64 = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
};
const readU64 = (b: Uint8Array) => Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0));
const isZero = (b: Uint8Array) => b.every((x) => x === 0);

/** The sealed file a vector describes: its length, zeros except where a segment says otherwise. */
function bytesOf(c: V2Case): Uint8Array {
  const out = new Uint8Array(c.sealedLength);
  for (const s of c.segments) out.set(unhex(s.hex), s.offset);
  return out;
}

/** §18: node counts per level; L = levels.length − 1 (0 when n ≤ 1). */
function levels(n: number): number[] {
  const N = [n];
  while (N[N.length - 1]! > 1) N.push(Math.ceil(N[N.length - 1]! / 256));
  return N;
}

/** Opens a format-2 file from the text of §16–§19; returns its plaintext and version. */
function openV2(file: Uint8Array, MK: Uint8Array): { plain: Uint8Array; version: number } {
  const H = file.subarray(0, 24);
  expect(hex(H.subarray(0, 4))).toBe('5345414c');
  expect(H[4]).toBe(2);
  expect(H[7]).toBe(0);
  const cipherId = H[5]!;
  const C = 2 ** H[6]!;
  // §16
  const CK2 = HKDF(new Uint8Array(0), MK, utf8('sealfs v2 content'), 32);
  const keys = HKDF(H, CK2, utf8('sealfs v2 file keys'), 64);
  const KD = keys.subarray(0, 32);
  const KM = keys.subarray(32, 64);
  const chunkKey = (sigma: Uint8Array) => {
    const e = ecb(KD, { disablePadding: true });
    return concat(e.encrypt(sigma), ecb(KD, { disablePadding: true }).encrypt(sigma.map((b) => ~b & 0xff)));
  };
  // §18
  const R = file.subarray(24, 56);
  const S = readU64(R.subarray(0, 8));
  const v = readU64(R.subarray(8, 16));
  const n = Math.ceil(S / C);
  const N = levels(n);
  const L = N.length - 1;
  const len = (i: number) => Math.min(C, S - i * C);
  const off = (i: number) => {
    let nodes = 0;
    for (let span = 256; span <= i; span *= 256) nodes += Math.floor(i / span);
    return 56 + i * (C + 32) + 4096 * nodes;
  };
  let entries = 0;
  for (let l = 1; l <= L; l++) entries += N[l - 1]!;
  expect(file.length, 'Z(S)').toBe(56 + S + 32 * n + 16 * entries);
  const complete = (l: number, k: number) => (k + 1) * 256 ** l <= n;
  const nodeLen = (l: number, k: number) => 16 * Math.min(256, N[l - 1]! - 256 * k);
  const nodeOff = (l: number, k: number) => {
    if (complete(l, k)) {
      const j = (k + 1) * 256 ** l - 1;
      return off(j) + len(j) + 32 + 4096 * (l - 1);
    }
    // At the end: after the last chunk and the complete nodes ending there, lower levels first.
    let at = off(n - 1) + len(n - 1) + 32;
    for (let m = 1; m <= L && n % 256 ** m === 0; m++) at += 4096;
    for (let m = 1; m < l; m++) if (!complete(m, N[m]! - 1)) at += nodeLen(m, N[m]! - 1);
    return at;
  };
  const hash = (l: number, k: number, node: Uint8Array) =>
    isZero(node) ? new Uint8Array(16) : hmac(sha256, KM, concat(utf8('sealfs v2 node'), Uint8Array.of(l), u64(k), node)).subarray(0, 16);

  // The top, then M.
  const nodes = new Map<string, Uint8Array>();
  let top: Uint8Array;
  if (n === 0) top = new Uint8Array(16);
  else if (L === 0) top = file.subarray(off(0) + len(0) + 16, off(0) + len(0) + 32);
  else {
    const node = file.subarray(nodeOff(L, 0), nodeOff(L, 0) + nodeLen(L, 0));
    nodes.set(`${L}/0`, node);
    top = hash(L, 0, node);
  }
  const M = hmac(sha256, KM, concat(utf8('sealfs v2 root'), H, u64(S), u64(v), top)).subarray(0, 16);
  expect(hex(M), 'root MAC').toBe(hex(R.subarray(16, 32)));

  // Down the tree, each node against its parent's entry.
  const nodeAt = (l: number, k: number): Uint8Array => {
    const key = `${l}/${k}`;
    if (nodes.has(key)) return nodes.get(key)!;
    const parent = nodeAt(l + 1, Math.floor(k / 256));
    const entry = parent.subarray(16 * (k % 256), 16 * (k % 256) + 16);
    const node = isZero(entry) ? new Uint8Array(nodeLen(l, k)) : file.subarray(nodeOff(l, k), nodeOff(l, k) + nodeLen(l, k));
    expect(equalBytes(hash(l, k, node), entry), `node ${key}`).toBe(true);
    nodes.set(key, node);
    return node;
  };
  const entryOf = (i: number) => (L === 0 ? top : nodeAt(1, Math.floor(i / 256)).subarray(16 * (i % 256), 16 * (i % 256) + 16));

  const plain = new Uint8Array(S);
  for (let i = 0; i < n; i++) {
    const entry = entryOf(i);
    if (isZero(entry)) continue; // a hole: zeros, not read
    const stored = file.subarray(off(i), off(i) + len(i) + 32);
    const sigma = stored.subarray(0, 16);
    const ct = stored.subarray(16);
    expect(equalBytes(ct.subarray(ct.length - 16), entry), `chunk ${i}'s tag is its entry`).toBe(true);
    const ad = concat(H, u64(i));
    const K = chunkKey(sigma);
    const nonce = new Uint8Array(12);
    const aead = cipherId === 1 ? gcm(K, nonce, ad) : chacha20poly1305(K, nonce, ad);
    plain.set(aead.decrypt(ct), i * C);
  }
  return { plain, version: v };
}

/** The plaintexts the vector README describes, rebuilt from its words. */
function expectedPlain(c: V2Case, C: number): Uint8Array {
  const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);
  const S = c.plaintextSize;
  if (c.name.startsWith('written-')) return pattern(S);
  if (c.name === 'rewritten') {
    const p = pattern(S);
    p.set([0xff, 0xff, 0xff], C + 7);
    return p;
  }
  const p = new Uint8Array(S);
  for (const i of [0, 255, 299]) p.set(pattern(Math.min(C, S - i * C)), i * C);
  return p;
}

describe('format 2 vectors, read from FORMAT.md alone', () => {
  for (const name of ['aes-256-gcm-4096', 'aes-256-gcm-65536', 'chacha20-poly1305-4096', 'chacha20-poly1305-65536']) {
    const vector = loadVector<V2File>(`v2/${name}.json`);
    for (const c of vector.cases) {
      it(`${name} ${c.name}`, () => {
        const { plain, version } = openV2(bytesOf(c), unhex(vector.masterKey));
        expect(version).toBe(c.version);
        expect(hex(plain) === hex(expectedPlain(c, vector.chunkSize)), 'plaintext').toBe(true);
      });
    }
  }

  it('a replayed chunk of the two-level vector fails there too', () => {
    const vector = loadVector<V2File>('v2/aes-256-gcm-4096.json');
    const rewritten = vector.cases.find((c) => c.name === 'rewritten')!;
    const file = bytesOf(rewritten);
    const older = bytesOf(vector.cases.find((c) => c.name === 'written-8197')!);
    // Chunk 1 of version 2 put back into version 3: same file, same index, an older authentic chunk.
    const at = 56 + (4096 + 32);
    file.set(older.subarray(at, at + 4096 + 32), at);
    expect(() => openV2(file, unhex(vector.masterKey))).toThrow();
  });
});
