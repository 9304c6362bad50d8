import { randomFillSync } from 'node:crypto';
import { ALL_VERIFIED, type ChunkRun } from './backend.js';
import { CHUNK_OVERHEAD, NONCE_BYTES, TAG_BYTES } from './ciphers.js';

/**
 * Chunk bookkeeping shared by the JavaScript backends (the native addon does the same in C).
 */
export const AAD_BYTES_AFTER_HEADER = 9;

/** Plaintext length of each chunk of a run whose plaintext is `plainLength` bytes. */
export function runChunkLengths(run: ChunkRun, plainLength: number): number[] {
  const { chunkSize } = run;
  const count = plainLength === 0 ? 1 : Math.ceil(plainLength / chunkSize);
  const lengths = new Array<number>(count).fill(chunkSize);
  lengths[count - 1] = plainLength - (count - 1) * chunkSize;
  if (lengths[count - 1]! < chunkSize && !run.endsFile) {
    throw new RangeError(`chunk ${run.firstIndex + count - 1} is short (${lengths[count - 1]} bytes) but not the file's final chunk`);
  }
  return lengths;
}

/** Plaintext length of the run stored in `sealedLength` bytes. */
export function runPlainLength(run: ChunkRun, sealedLength: number): number {
  const stored = run.chunkSize + CHUNK_OVERHEAD;
  const count = Math.max(1, Math.ceil(sealedLength / stored));
  const lastStored = sealedLength - (count - 1) * stored;
  // Only a run's sole chunk may be empty: a short tail after full chunks is never written.
  if (lastStored < CHUNK_OVERHEAD || (lastStored === CHUNK_OVERHEAD && count > 1)) {
    throw new RangeError(`${sealedLength} bytes is not a whole run of stored chunks`);
  }
  return sealedLength - count * CHUNK_OVERHEAD;
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
  const lengths = runChunkLengths(run, plain.length);
  if (out.length !== plain.length + CHUNK_OVERHEAD * lengths.length) {
    throw new RangeError(`output buffer is ${out.length} bytes, expected ${plain.length + CHUNK_OVERHEAD * lengths.length}`);
  }
  let p = 0;
  let o = 0;
  lengths.forEach((len, k) => {
    const nonce = out.subarray(o, o + NONCE_BYTES);
    if (nonces) nonce.set(nonces.subarray(k * NONCE_BYTES, (k + 1) * NONCE_BYTES));
    else randomFillSync(nonce);
    const final = run.endsFile && k === lengths.length - 1;
    const sealed = sealOne(nonce, chunkAad(run, run.firstIndex + k, final), plain.subarray(p, p + len));
    out.set(sealed, o + NONCE_BYTES);
    p += len;
    o += NONCE_BYTES + len + TAG_BYTES;
  });
}

export function openRunWith(openOne: ChunkOpener, run: ChunkRun, sealed: Uint8Array, out: Uint8Array): number {
  const plainLength = runPlainLength(run, sealed.length);
  if (out.length !== plainLength) throw new RangeError(`output buffer is ${out.length} bytes, expected ${plainLength}`);
  const lengths = runChunkLengths(run, plainLength);
  let s = 0;
  let p = 0;
  for (let k = 0; k < lengths.length; k++) {
    const len = lengths[k]!;
    const final = run.endsFile && k === lengths.length - 1;
    const nonce = sealed.subarray(s, s + NONCE_BYTES);
    const body = sealed.subarray(s + NONCE_BYTES, s + NONCE_BYTES + len + TAG_BYTES);
    const opened = openOne(nonce, chunkAad(run, run.firstIndex + k, final), body);
    if (!opened) {
      out.fill(0, p);
      return k;
    }
    out.set(opened, p);
    s += NONCE_BYTES + len + TAG_BYTES;
    p += len;
  }
  return ALL_VERIFIED;
}
