import { randomFillSync } from 'node:crypto';
import { ALL_VERIFIED, type ChunkRun } from './backend.js';
import { NONCE_BYTES, TAG_BYTES } from './ciphers.js';
import { checkRunEnd, chunkPlainStart, isRunDefect, runChunkLength, runChunkOffset, runOfPlain, runOfSealed, type RunGeometry } from './geometry.js';

/**
 * Runs as every backend sees them: the checks a seal or open makes before any work (all
 * backends, the native one included; the addon repeats them in C) and the chunk loop of
 * the JavaScript backends. The arithmetic itself is geometry.ts's.
 */
export const AAD_BYTES_AFTER_HEADER = 9;

/**
 * The run that seals `plainLength` bytes into `outLength`; throws RangeError if it may not
 * be sealed as `run` or the output is not exactly its stored length.
 */
export function sealingGeometry(run: ChunkRun, plainLength: number, outLength: number): RunGeometry {
  const geometry = runOfPlain(plainLength, run.chunkSize);
  checkRunEnd(geometry, run.firstIndex, run.endsFile);
  if (outLength !== geometry.sealedLength) throw new RangeError(`output buffer is ${outLength} bytes, expected ${geometry.sealedLength}`);
  return geometry;
}

/**
 * The run stored in `sealedLength` bytes, opened into `outLength`; throws RangeError if that
 * is no whole run, the output is not exactly its plaintext length, or it may not be opened
 * as `run`.
 */
export function openingGeometry(run: ChunkRun, sealedLength: number, outLength: number): RunGeometry {
  const geometry = runOfSealed(sealedLength, run.chunkSize);
  if (isRunDefect(geometry)) throw new RangeError(`${sealedLength} bytes is not a whole run of stored chunks`);
  if (outLength !== geometry.plainLength) throw new RangeError(`output buffer is ${outLength} bytes, expected ${geometry.plainLength}`);
  checkRunEnd(geometry, run.firstIndex, run.endsFile);
  return geometry;
}

export function chunkAad(run: ChunkRun, index: number, final: boolean): Uint8Array {
  const aad = new Uint8Array(run.header.length + AAD_BYTES_AFTER_HEADER);
  aad.set(run.header, 0);
  const view = new DataView(aad.buffer);
  view.setBigUint64(run.header.length, BigInt(index));
  aad[aad.length - 1] = final ? 1 : 0;
  return aad;
}

/** Encrypts one chunk: (nonce, aad, plaintext) → ciphertext ‖ tag. */
export type ChunkSealer = (nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array) => Uint8Array;
/** Decrypts ciphertext ‖ tag, or returns null when authentication fails. */
export type ChunkOpener = (nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array) => Uint8Array | null;

export function sealRunWith(sealOne: ChunkSealer, run: ChunkRun, plain: Uint8Array, out: Uint8Array, nonces?: Uint8Array): void {
  const geometry = sealingGeometry(run, plain.length, out.length);
  for (let k = 0; k < geometry.count; k++) {
    const p = chunkPlainStart(k, run.chunkSize);
    const o = runChunkOffset(k, run.chunkSize);
    const nonce = out.subarray(o, o + NONCE_BYTES);
    if (nonces) nonce.set(nonces.subarray(k * NONCE_BYTES, (k + 1) * NONCE_BYTES));
    else randomFillSync(nonce);
    const final = run.endsFile && k === geometry.count - 1;
    const sealed = sealOne(nonce, chunkAad(run, run.firstIndex + k, final), plain.subarray(p, p + runChunkLength(geometry, k)));
    out.set(sealed, o + NONCE_BYTES);
  }
}

export function openRunWith(openOne: ChunkOpener, run: ChunkRun, sealed: Uint8Array, out: Uint8Array): number {
  const geometry = openingGeometry(run, sealed.length, out.length);
  for (let k = 0; k < geometry.count; k++) {
    const p = chunkPlainStart(k, run.chunkSize);
    const s = runChunkOffset(k, run.chunkSize);
    const final = run.endsFile && k === geometry.count - 1;
    const nonce = sealed.subarray(s, s + NONCE_BYTES);
    const body = sealed.subarray(s + NONCE_BYTES, s + NONCE_BYTES + runChunkLength(geometry, k) + TAG_BYTES);
    const opened = openOne(nonce, chunkAad(run, run.firstIndex + k, final), body);
    if (!opened) {
      out.fill(0, p);
      return k;
    }
    out.set(opened, p);
  }
  return ALL_VERIFIED;
}
