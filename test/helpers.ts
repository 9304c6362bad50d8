/**
 * Shared test helpers (not a test file itself: vitest only collects *.test.ts).
 *
 * Backends: every test that loops over backends uses BACKENDS, the backends of
 * BACKEND_NAMES that load here, so the native one is included automatically as soon as
 * its addon is built. A backend that does not load makes the suite FAIL through
 * requireEveryBackend(), unless it is the native one and SEALFS_ALLOW_NO_NATIVE=1.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect, it } from 'vitest';
import { BACKEND_NAMES, type BackendName } from '../src/crypto/backend.js';
import { backendByName } from '../src/crypto/backends/index.js';
import { FormatError, type FormatProblem } from '../src/crypto/errors.js';

function loadError(name: BackendName): Error | undefined {
  try {
    backendByName(name);
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

const LOAD_ERRORS = new Map<BackendName, Error>();
for (const name of BACKEND_NAMES) {
  const err = loadError(name);
  if (err) LOAD_ERRORS.set(name, err);
}

/** Backends under test: every one of BACKEND_NAMES that loads. */
export const BACKENDS: readonly BackendName[] = BACKEND_NAMES.filter((name) => !LOAD_ERRORS.has(name));

export const ALLOW_NO_NATIVE = process.env.SEALFS_ALLOW_NO_NATIVE === '1';

/** Registers a test that fails when a backend of BACKEND_NAMES cannot be loaded. */
export function requireEveryBackend(): void {
  it('every backend in BACKEND_NAMES loads (SEALFS_ALLOW_NO_NATIVE=1 excuses only native)', () => {
    const missing = [...LOAD_ERRORS].filter(([name]) => !(name === 'native' && ALLOW_NO_NATIVE));
    const text = missing.map(([name, err]) => `${name}: ${err.message.split('\n')[0]}`).join('; ');
    expect(
      missing.map(([name]) => name),
      `backends that failed to load (${text}); build the addon with \`node scripts/build-native.mjs\`, or set SEALFS_ALLOW_NO_NATIVE=1`,
    ).toEqual([]);
  });
}

/** Fast runs for pure-JS noble, which is much slower than the others. */
export function isSlow(backend: BackendName): boolean {
  return backend === 'noble';
}

/** The deterministic plaintext pattern used throughout: byte i = i mod 251. */
export function pattern(length: number, offset = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i + offset) % 251;
  return out;
}

export function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Equality of (possibly large) byte arrays without vitest's slow deep diff. */
export function expectBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  if (same(actual, expected)) return;
  let i = 0;
  while (i < Math.min(actual.length, expected.length) && actual[i] === expected[i]) i++;
  expect.fail(`${what}: differ (lengths ${actual.length} vs ${expected.length}, first difference at ${i})`);
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

/** Runs fn, requiring it to throw a FormatError (of `kind`, and about `chunk`, when given). */
export function expectFormatError(fn: () => unknown, kind?: FormatProblem | readonly FormatProblem[], chunk?: number): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  return checkFormatError(caught, kind, chunk);
}

export async function expectFormatErrorAsync(
  fn: () => Promise<unknown>,
  kind?: FormatProblem | readonly FormatProblem[],
  chunk?: number,
): Promise<FormatError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  return checkFormatError(caught, kind, chunk);
}

export function checkFormatError(caught: unknown, kind?: FormatProblem | readonly FormatProblem[], chunk?: number): FormatError {
  if (caught === undefined) expect.fail('expected a FormatError, but nothing was thrown');
  if (!(caught instanceof FormatError)) expect.fail(`expected a FormatError, got ${String((caught as Error)?.stack ?? caught)}`);
  if (kind !== undefined) {
    const kinds = typeof kind === 'string' ? [kind] : kind;
    if (!kinds.includes(caught.kind)) expect.fail(`expected kind ${kinds.join('|')}, got ${caught.kind}: ${caught.message}`);
  }
  if (chunk !== undefined && caught.chunk !== chunk) {
    expect.fail(`expected chunk ${chunk}, got ${caught.chunk} (${caught.kind}: ${caught.message})`);
  }
  return caught;
}

/** Odd piece sizes used to feed streams, so no piece lines up with a chunk or the header. */
export const ODD_PIECES = [1, 13, 4093, 23, 4099, 28, 65_537, 7, 100_003, 3];

/** Splits `data` into pieces whose sizes cycle through `sizes`. */
export function* pieces(data: Uint8Array, sizes: readonly number[] = ODD_PIECES): Generator<Buffer> {
  let at = 0;
  let k = 0;
  while (at < data.length) {
    const n = Math.min(sizes[k++ % sizes.length]!, data.length - at);
    yield Buffer.from(data.buffer, data.byteOffset + at, n);
    at += n;
  }
}

export interface StreamResult {
  /** Everything the transform emitted before it finished or failed. */
  output: Buffer;
  error: unknown;
}

/** Pipes `input` (in odd pieces) through `transform`, collecting its output and error. */
export async function runStream(transform: NodeJS.ReadWriteStream, input: Uint8Array, sizes?: readonly number[]): Promise<StreamResult> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      callback();
    },
  });
  let error: unknown;
  try {
    await pipeline(Readable.from(pieces(input, sizes)), transform, sink);
  } catch (err) {
    error = err;
  }
  return { output: Buffer.concat(parts), error };
}

/**
 * Like runStream, but writes to the transform directly and listens to it, without pipeline's
 * teardown: about three times cheaper, for the thousands of runs of the tamper tests, and it
 * sees everything the transform pushed before failing.
 */
export async function feedStream(transform: NodeJS.ReadWriteStream, input: Uint8Array, sizes?: readonly number[]): Promise<StreamResult> {
  const parts: Buffer[] = [];
  transform.on('data', (chunk: Buffer) => parts.push(chunk));
  const finished = new Promise<unknown>((resolve) => {
    transform.on('error', resolve);
    transform.on('end', () => resolve(undefined));
  });
  for (const piece of pieces(input, sizes)) transform.write(piece);
  transform.end();
  const error = await finished;
  return { output: Buffer.concat(parts), error };
}
