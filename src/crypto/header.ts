import { randomBytes } from 'node:crypto';
import { CIPHER_IDS, cipherFromId, type CipherName } from './ciphers.js';
import { FormatError } from './errors.js';

/** "SEAL" — lets tools recognise a sealfs file; part of the on-disk format (docs/FORMAT.md §3). */
export const MAGIC = Uint8Array.of(0x53, 0x45, 0x41, 0x4c);
export const FORMAT_VERSION = 1;
/** Version 2 (docs/FORMAT.md Part III): an index tree of chunk tags, authenticated size and version. */
export const FORMAT_VERSION_2 = 2;
export const HEADER_BYTES = 24;
export const FILE_ID_BYTES = 16;
export const MIN_CHUNK_LOG2 = 12;
export const MAX_CHUNK_LOG2 = 20;
export const DEFAULT_CHUNK_SIZE = 64 * 1024;

export interface FileHeader {
  readonly version: number;
  readonly cipher: CipherName;
  readonly chunkSize: number;
  readonly fileId: Uint8Array;
  /** The exact 24 header bytes: bound into every chunk's associated data and the file key. */
  readonly bytes: Uint8Array;
}

export function chunkSizeLog2(chunkSize: number): number {
  const log2 = Math.log2(chunkSize);
  if (!Number.isInteger(log2) || log2 < MIN_CHUNK_LOG2 || log2 > MAX_CHUNK_LOG2) {
    throw new RangeError(`chunk size must be a power of two from 4 KiB to 1 MiB, got ${chunkSize}`);
  }
  return log2;
}

/** A header for a new file; the file id is random unless given (test vectors fix it). */
export function newHeader(cipher: CipherName, chunkSize: number, fileId?: Uint8Array, version = FORMAT_VERSION): FileHeader {
  const id = fileId ?? randomBytes(FILE_ID_BYTES);
  if (id.length !== FILE_ID_BYTES) throw new RangeError(`file id must be ${FILE_ID_BYTES} bytes`);
  const bytes = new Uint8Array(HEADER_BYTES);
  bytes.set(MAGIC, 0);
  bytes[4] = version;
  bytes[5] = CIPHER_IDS[cipher];
  bytes[6] = chunkSizeLog2(chunkSize);
  bytes[7] = 0;
  bytes.set(id, 8);
  return { version, cipher, chunkSize, fileId: bytes.subarray(8), bytes };
}

/**
 * Parses and validates a header; anything unknown is refused rather than guessed. `versions`
 * are the format versions the caller reads (version 1's code never sees a version-2 file as
 * one of its own).
 */
export function parseHeader(data: Uint8Array, versions: readonly number[] = [FORMAT_VERSION]): FileHeader {
  for (let i = 0; i < Math.min(MAGIC.length, data.length); i++) {
    if (data[i] !== MAGIC[i]) throw new FormatError('bad-header', 'not a sealfs file (bad magic)');
  }
  if (data.length < HEADER_BYTES) {
    throw new FormatError('truncated', `file is ${data.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  }
  const version = data[4]!;
  if (!versions.includes(version)) {
    throw new FormatError('bad-header', `unsupported format version ${version} (expected version ${versions.join(' or ')})`);
  }
  const cipher = cipherFromId(data[5]!);
  if (!cipher) throw new FormatError('bad-header', `unknown cipher id ${data[5]}`);
  const log2 = data[6]!;
  if (log2 < MIN_CHUNK_LOG2 || log2 > MAX_CHUNK_LOG2) throw new FormatError('bad-header', `invalid chunk size exponent ${log2}`);
  if (data[7] !== 0) throw new FormatError('bad-header', `reserved header byte is ${data[7]}, expected 0`);
  const bytes = Uint8Array.from(data.subarray(0, HEADER_BYTES));
  return { version, cipher, chunkSize: 2 ** log2, fileId: bytes.subarray(8), bytes };
}
