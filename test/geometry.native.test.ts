/**
 * native/sealfs_aead.c keeps its own run geometry (it must: it runs in C). Its exported
 * runGeometry must agree with src/crypto/geometry.ts — runOfPlain, runOfSealed and so
 * plainSizeOf — for every chunk size the format allows and thousands of lengths each:
 * the edge lengths, every length within 29 bytes of a chunk boundary near 0 and near
 * 2^53, and random lengths (fast-check).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadAddon, type NativeAddon, type NativeRunGeometry } from '../src/crypto/backends/native.js';
import { CHUNK_OVERHEAD } from '../src/crypto/ciphers.js';
import { isRunDefect, plainSizeOf, runOfPlain, runOfSealed, storedChunkBytes, type RunDefect, type RunGeometry } from '../src/crypto/geometry.js';
import { HEADER_BYTES, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2 } from '../src/crypto/header.js';

let addon: NativeAddon | undefined;
let loadError: Error | undefined;
try {
  addon = loadAddon();
} catch (err) {
  loadError = err as Error;
}
const allowMissing = process.env.SEALFS_ALLOW_NO_NATIVE === '1';

function nat(): NativeAddon {
  if (!addon) throw loadError ?? new Error('native addon not loaded');
  return addon;
}

const CHUNK_SIZES = Array.from({ length: MAX_CHUNK_LOG2 - MIN_CHUNK_LOG2 + 1 }, (_, i) => 2 ** (MIN_CHUNK_LOG2 + i));
const MAX = Number.MAX_SAFE_INTEGER;
/** The largest plaintext length whose stored length is still a safe integer. */
const maxPlain = (C: number) => MAX - CHUNK_OVERHEAD * Math.ceil(MAX / C);

function asNative(g: RunGeometry | RunDefect): NativeRunGeometry | null {
  return isRunDefect(g) ? null : { count: g.count, plainLength: g.plainLength, sealedLength: g.sealedLength, lastLength: g.lastLength };
}

let compared = 0;

/** C and TypeScript agree on the run of `length` plaintext (or, `isSealed`, stored) bytes. */
function agree(C: number, length: number, isSealed: boolean): void {
  const native = nat().runGeometry(C, length, isSealed);
  const ts = asNative(isSealed ? runOfSealed(length, C) : runOfPlain(length, C));
  compared++;
  if (JSON.stringify(native) !== JSON.stringify(ts)) {
    expect.fail(`chunk size ${C}, ${isSealed ? 'stored' : 'plaintext'} length ${length}: C says ${JSON.stringify(native)}, TypeScript ${JSON.stringify(ts)}`);
  }
  if (!isSealed) {
    // Every plaintext length's run reads back, in C too.
    const back = nat().runGeometry(C, native!.sealedLength, true);
    if (back?.plainLength !== length) expect.fail(`chunk size ${C}: C's run of ${length} bytes does not read back (${JSON.stringify(back)})`);
  }
}

/** A sealed file of `size` bytes: valid exactly when C accepts its run, with the same plaintext size. */
function agreeOnFile(C: number, size: number): void {
  let ts: number | null;
  try {
    ts = plainSizeOf(size, C);
  } catch {
    ts = null;
  }
  const native = size < HEADER_BYTES ? null : (nat().runGeometry(C, size - HEADER_BYTES, true)?.plainLength ?? null);
  if (ts !== native) expect.fail(`chunk size ${C}, file of ${size} bytes: plainSizeOf ${ts}, C ${native}`);
}

/** 0, 24, 51, 52 and every length within 29 bytes of the first and last k·unit up to `limit`. */
function edgeLengths(unit: number, limit: number): number[] {
  const out = new Set<number>([0, 1, 24, 27, 28, 29, 51, 52, 53, limit, limit - 1]);
  const top = Math.floor(limit / unit);
  for (const k of [...Array(9).keys(), ...Array.from({ length: 9 }, (_, i) => top - i)]) {
    for (let d = -29; d <= 29; d++) {
      const L = k * unit + d;
      if (L >= 0 && L <= limit) out.add(L);
    }
  }
  for (let d = 0; d <= 29; d++) out.add(limit - d);
  return [...out];
}

describe.skipIf(!addon && allowMissing)('the addon\'s geometry agrees with geometry.ts', () => {
  it('loads', () => {
    expect(loadError?.message).toBeUndefined();
  });

  it.each(CHUNK_SIZES)('chunk size %i: edge lengths, around every boundary near 0 and near 2^53', (C) => {
    compared = 0;
    for (const unit of [C, storedChunkBytes(C)]) {
      for (const L of edgeLengths(unit, maxPlain(C))) agree(C, L, false);
      for (const L of edgeLengths(unit, MAX)) agree(C, L, true);
      for (const L of edgeLengths(unit, MAX - HEADER_BYTES)) agreeOnFile(C, L + HEADER_BYTES);
    }
    for (let Z = 0; Z <= HEADER_BYTES + 3 * storedChunkBytes(C) + 60; Z += Z < 200 ? 1 : 97) agreeOnFile(C, Z);
    expect(compared).toBeGreaterThan(4000);
  });

  it.each(CHUNK_SIZES)('chunk size %i: random lengths (property)', (C) => {
    const stored = storedChunkBytes(C);
    const nearBoundary = (unit: number, limit: number) =>
      fc.tuple(fc.integer({ min: 0, max: Math.floor(limit / unit) }), fc.integer({ min: -29, max: 29 })).map(([k, d]) => Math.min(limit, Math.max(0, k * unit + d)));
    fc.assert(fc.property(fc.oneof(fc.integer({ min: 0, max: maxPlain(C) }), nearBoundary(C, maxPlain(C))), (L) => agree(C, L, false)), { numRuns: 2000 });
    fc.assert(fc.property(fc.oneof(fc.integer({ min: 0, max: MAX }), nearBoundary(stored, MAX)), (L) => agree(C, L, true)), { numRuns: 2000 });
    fc.assert(fc.property(fc.oneof(fc.integer({ min: 0, max: MAX }), nearBoundary(stored, MAX - HEADER_BYTES).map((L) => L + HEADER_BYTES)), (Z) => agreeOnFile(C, Z)), { numRuns: 1000 });
  });

  it('refuses arguments outside its domain', () => {
    for (const [C, L] of [[0, 10], [2 ** 31, 10], [4096, -1], [4096, 2 ** 53], [4096, 1.5], [4096.5, 1]] as const) {
      expect(() => nat().runGeometry(C, L, true), `${C}, ${L}`).toThrow(RangeError);
    }
    expect(() => nat().runGeometry(4096, 10, 'yes' as unknown as boolean)).toThrow(TypeError);
  });
});
