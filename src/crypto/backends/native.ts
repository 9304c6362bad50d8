import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { packageRoot } from '../../packageroot.js';
import { join } from 'node:path';
import type { AeadBackend, ChunkRun } from '../backend.js';
import type { NativeKeys } from '../nativekeys.js';
import { CIPHER_IDS, KEY_BYTES } from '../ciphers.js';
import { openingGeometry, sealingGeometry } from '../run.js';

/** Where the addon lands, relative to the package root (scripts/build-native.mjs). */
export const NATIVE_ADDON_PATH = 'native/build/Release/sealfs_aead.node';

/**
 * Async calls whose effective thread count is 1 and whose plaintext is at most this many
 * bytes run synchronously on the calling thread: a thread-pool round trip costs more.
 */
export const NATIVE_SYNC_LIMIT = 128 * 1024;
/** Async work is split so that each thread gets at least this much plaintext. */
export const NATIVE_MIN_BYTES_PER_THREAD = 64 * 1024;
/** Upper bound on `threads` (the addon's own limit). */
export const NATIVE_MAX_THREADS = 64;

/**
 * The addon's exports (native/sealfs_aead.c and, for names and keys, native/sealfs_keys.c:
 * src/crypto/nativekeys.ts); arguments are validated there too.
 */
export interface NativeAddon extends NativeKeys {
  readonly opensslVersion: string;
  seal(cipherId: number, key: Uint8Array, header: Uint8Array, chunkSize: number, firstIndex: number, endsFile: boolean,
    plain: Uint8Array, out: Uint8Array, nonces: Uint8Array | null): void;
  open(cipherId: number, key: Uint8Array, header: Uint8Array, chunkSize: number, firstIndex: number, endsFile: boolean,
    sealed: Uint8Array, out: Uint8Array): number;
  sealAsync(cipherId: number, key: Uint8Array, header: Uint8Array, chunkSize: number, firstIndex: number, endsFile: boolean,
    plain: Uint8Array, out: Uint8Array, nonces: Uint8Array | null, threads: number): Promise<void>;
  openAsync(cipherId: number, key: Uint8Array, header: Uint8Array, chunkSize: number, firstIndex: number, endsFile: boolean,
    sealed: Uint8Array, out: Uint8Array, threads: number): Promise<number>;
  /**
   * The addon's own run geometry (C's copy of runOfPlain / runOfSealed in geometry.ts), for
   * test/geometry.native.test.ts: the run of `length` plaintext bytes, or of `length` stored
   * bytes when `isSealed` (null when no run has that length).
   */
  runGeometry(chunkSize: number, length: number, isSealed: boolean): NativeRunGeometry | null;
}

export interface NativeRunGeometry {
  readonly count: number;
  readonly plainLength: number;
  readonly sealedLength: number;
  readonly lastLength: number;
}

/** The native backend; sealAsync also takes fixed nonces, for test vectors only. */
export interface NativeBackend extends AeadBackend {
  readonly name: 'native';
  /** OpenSSL's version string, e.g. "OpenSSL 3.0.19 27 Jan 2026" (Node's own libcrypto). */
  readonly opensslVersion: string;
  sealAsync(run: ChunkRun, plain: Uint8Array, out: Uint8Array, threads: number, nonces?: Uint8Array): Promise<void>;
}

let addon: NativeAddon | undefined;

/** The addon, loaded once; throws when it is not built or does not load. */
export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const path = join(packageRoot(), NATIVE_ADDON_PATH);
  if (!existsSync(path)) throw new Error(`sealfs native addon is not built (no ${path}); run "npm run build:native"`);
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new Error(`sealfs native addon ${path} failed to load: ${(err as Error).message.split('\n')[0]}`);
  }
  return addon;
}

function checkRun(run: ChunkRun): void {
  if (run.key.length !== KEY_BYTES) throw new RangeError(`key must be ${KEY_BYTES} bytes, got ${run.key.length}`);
  if (!Number.isSafeInteger(run.chunkSize) || run.chunkSize < 1) throw new RangeError(`invalid chunk size ${run.chunkSize}`);
  if (!Number.isSafeInteger(run.firstIndex) || run.firstIndex < 0) throw new RangeError(`invalid chunk index ${run.firstIndex}`);
}

/** Validates a seal exactly as sealRunWith (run.ts) does; returns the chunk count. */
function sealChunks(run: ChunkRun, plain: Uint8Array, out: Uint8Array): number {
  const { count } = sealingGeometry(run, plain.length, out.length);
  checkRun(run);
  return count;
}

/** Validates an open exactly as openRunWith (run.ts) does; returns the chunk count. */
function openChunks(run: ChunkRun, sealed: Uint8Array, out: Uint8Array): number {
  const { count } = openingGeometry(run, sealed.length, out.length);
  checkRun(run);
  return count;
}

/** Threads actually used: at most one per chunk and per NATIVE_MIN_BYTES_PER_THREAD of plaintext. */
function effectiveThreads(requested: number, chunks: number, plainBytes: number): number {
  const wanted = Number.isFinite(requested) ? Math.min(Math.max(Math.floor(requested), 1), NATIVE_MAX_THREADS) : 1;
  return Math.max(1, Math.min(wanted, chunks, Math.floor(plainBytes / NATIVE_MIN_BYTES_PER_THREAD)));
}

/**
 * OpenSSL's EVP AEAD through the addon, using the libcrypto Node itself ships: one
 * cipher context per thread and run, output written straight into the caller's buffers.
 * With more than one thread, sealAsync/openAsync work on the calling thread too (it is one
 * of the `threads`, next to threads - 1 workers of libuv's pool) and usually return a
 * promise that is already settled: waking pool threads and then the event loop costs
 * more than the second core gains on a write-back batch (see start_batch in
 * native/sealfs_aead.c). The event loop is held for about 1/threads of the one-thread time
 * (at worst, with every pool thread busy elsewhere, about as long as the synchronous call).
 * Throws if the addon is missing or does not load.
 */
export function loadNativeBackend(): NativeBackend {
  const native = loadAddon();
  const args = (run: ChunkRun) => [CIPHER_IDS[run.cipher], run.key, run.header, run.chunkSize, run.firstIndex, run.endsFile] as const;

  const seal = (run: ChunkRun, plain: Uint8Array, out: Uint8Array, nonces?: Uint8Array): void => {
    sealChunks(run, plain, out);
    native.seal(...args(run), plain, out, nonces ?? null);
  };
  const open = (run: ChunkRun, sealed: Uint8Array, out: Uint8Array): number => {
    openChunks(run, sealed, out);
    return native.open(...args(run), sealed, out);
  };

  return {
    name: 'native',
    opensslVersion: native.opensslVersion,
    seal,
    open,
    async sealAsync(run, plain, out, threads, nonces) {
      const count = sealChunks(run, plain, out);
      const use = effectiveThreads(threads, count, plain.length);
      if (use === 1 && plain.length <= NATIVE_SYNC_LIMIT) {
        native.seal(...args(run), plain, out, nonces ?? null);
        return;
      }
      await native.sealAsync(...args(run), plain, out, nonces ?? null, use);
    },
    async openAsync(run, sealed, out, threads) {
      const count = openChunks(run, sealed, out);
      const use = effectiveThreads(threads, count, out.length);
      if (use === 1 && out.length <= NATIVE_SYNC_LIMIT) return native.open(...args(run), sealed, out);
      return native.openAsync(...args(run), sealed, out, use);
    },
  };
}
