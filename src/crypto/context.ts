import { availableParallelism } from 'node:os';
import type { AeadBackend, ChunkRun } from './backend.js';
import { selectBackend } from './backends/index.js';
import type { CipherName } from './ciphers.js';
import { deriveFileKey, deriveSubkey } from './kdf.js';
import { DEFAULT_CHUNK_SIZE, newHeader, type FileHeader } from './header.js';

/** Everything needed to seal and open file contents under one master key. */
export interface ContentContext {
  readonly contentKey: Uint8Array;
  readonly backend: AeadBackend;
  /** Cipher and chunk size for files created from now on; existing files say their own. */
  readonly cipher: CipherName;
  readonly chunkSize: number;
  /** Threads a large run may be spread over. */
  readonly threads: number;
}

export interface ContentOptions {
  cipher?: CipherName;
  chunkSize?: number;
  /** Backend name; default: $SEALFS_BACKEND, else native, else node. */
  backend?: string;
  threads?: number;
}

export function contentContext(masterKey: Uint8Array, options: ContentOptions = {}): ContentContext {
  return {
    contentKey: deriveSubkey(masterKey, 'content'),
    backend: selectBackend(options.backend),
    cipher: options.cipher ?? 'aes-256-gcm',
    chunkSize: options.chunkSize ?? DEFAULT_CHUNK_SIZE,
    threads: options.threads ?? availableParallelism(),
  };
}

export function newFileHeader(ctx: ContentContext): FileHeader {
  return newHeader(ctx.cipher, ctx.chunkSize);
}

/** The fixed part of every run of one file; callers add firstIndex and endsFile. */
export function fileRunBase(ctx: ContentContext, header: FileHeader): Omit<ChunkRun, 'firstIndex' | 'endsFile'> {
  return {
    cipher: header.cipher,
    key: deriveFileKey(ctx.contentKey, header.bytes),
    header: header.bytes,
    chunkSize: header.chunkSize,
  };
}
