import { randomBytes } from 'node:crypto';
import { ALL_VERIFIED, type AeadBackend, type BackendName, type ChunkRun } from '../src/crypto/backend.js';
import { backendByName } from '../src/crypto/backends/index.js';
import { KEY_BYTES, type CipherName } from '../src/crypto/ciphers.js';
import { runSealedLength } from '../src/crypto/geometry.js';
import { newHeader } from '../src/crypto/header.js';

/** Measuring one backend's seal/open over one ChunkRun, shared by the main thread and the workers. */

export type Op = 'encrypt' | 'decrypt';
export const OPS: readonly Op[] = ['encrypt', 'decrypt'];

/** What is measured, apart from the thread count and the operation. */
export interface Case {
  readonly backend: BackendName;
  readonly cipher: CipherName;
  readonly chunk: number;
}

/** One whole-file run over random plaintext, with a valid sealed form ready to open. */
export interface Fixture {
  readonly backend: AeadBackend;
  readonly run: ChunkRun;
  readonly plain: Uint8Array;
  readonly sealed: Uint8Array;
  readonly opened: Uint8Array;
}

/** Plaintext bytes processed in some wall-clock seconds. */
export interface Sample {
  readonly bytes: number;
  readonly seconds: number;
}

export const MB = 1e6;

export function megabytesPerSecond(sample: Sample): number {
  return sample.bytes / sample.seconds / MB;
}

function checkVerified(backend: AeadBackend, result: number): void {
  if (result !== ALL_VERIFIED) throw new Error(`${backend.name}: open failed authentication at chunk ${result}`);
}

/**
 * A fixture of at least `bufferBytes` (rounded up to whole chunks). Sealing and opening it
 * once here checks the round trip and warms the code up before anything is timed.
 */
export function makeFixture({ backend: name, cipher, chunk }: Case, bufferBytes: number): Fixture {
  const backend = backendByName(name);
  const chunks = Math.ceil(bufferBytes / chunk);
  const run: ChunkRun = {
    cipher,
    key: randomBytes(KEY_BYTES),
    header: newHeader(cipher, chunk).bytes,
    chunkSize: chunk,
    firstIndex: 0,
    endsFile: true,
  };
  const plain = randomBytes(chunks * chunk);
  const sealed = new Uint8Array(runSealedLength(plain.length, chunk));
  const opened = new Uint8Array(plain.length);
  backend.seal(run, plain, sealed);
  checkVerified(backend, backend.open(run, sealed, opened));
  if (!plain.equals(opened)) throw new Error(`${name}: opened plaintext differs from what was sealed`);
  return { backend, run, plain, sealed, opened };
}

/** One call on the calling thread. Sealing overwrites `sealed` with another valid sealed form. */
export function syncStep({ backend, run, plain, sealed, opened }: Fixture, op: Op): () => void {
  return op === 'encrypt'
    ? () => backend.seal(run, plain, sealed)
    : () => checkVerified(backend, backend.open(run, sealed, opened));
}

/** One call spread by the backend over up to `threads` threads. */
export function asyncStep({ backend, run, plain, sealed, opened }: Fixture, op: Op, threads: number): () => Promise<void> {
  return op === 'encrypt'
    ? () => backend.sealAsync(run, plain, sealed, threads)
    : async () => checkVerified(backend, await backend.openAsync(run, sealed, opened, threads));
}

function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

/** Repeats `step` (each processing `bytesPerStep` plaintext bytes) for at least `minSeconds`. */
export function timeSync(step: () => void, bytesPerStep: number, minSeconds: number): Sample {
  const start = performance.now();
  let steps = 0;
  let seconds: number;
  do {
    step();
    steps++;
    seconds = secondsSince(start);
  } while (seconds < minSeconds);
  return { bytes: steps * bytesPerStep, seconds };
}

export async function timeAsync(step: () => Promise<void>, bytesPerStep: number, minSeconds: number): Promise<Sample> {
  const start = performance.now();
  let steps = 0;
  let seconds: number;
  do {
    await step();
    steps++;
    seconds = secondsSince(start);
  } while (seconds < minSeconds);
  return { bytes: steps * bytesPerStep, seconds };
}
