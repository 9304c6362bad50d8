import { Transform, type TransformCallback } from 'node:stream';
import { contentContext, newFileHeader, type ContentContext, type ContentOptions } from './context.js';
import { FormatError } from './errors.js';
import { FileCipher } from './filecipher.js';
import { batchesToRelease, finalTailDefect, runSealedLength } from './geometry.js';
import { HEADER_BYTES, parseHeader } from './header.js';

/** Chunks sealed or opened per backend call while streaming (bounds memory, amortises calls). */
const STREAM_BATCH_CHUNKS = 16;

/** Collects incoming buffers and hands out exact-length prefixes without re-copying everything. */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.parts.push(data);
    this.length += data.length;
  }

  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.parts[0]!;
      const used = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, used);
      filled += used;
      if (used === head.length) this.parts.shift();
      else this.parts[0] = head.subarray(used);
    }
    this.length -= n;
    return out;
  }
}

/**
 * Encrypting stream: plaintext in, a sealed file out. It holds back one byte beyond each
 * batch so that the last chunk — and only it — carries the final flag.
 */
export class EncryptStream extends Transform {
  private readonly pending = new ByteQueue();
  private cipher: FileCipher | undefined;
  private nextIndex = 0;
  private readonly ctx: ContentContext;

  constructor(masterKey: Uint8Array, options: ContentOptions = {}) {
    super();
    this.ctx = contentContext(masterKey, options);
  }

  private begin(): FileCipher {
    if (!this.cipher) {
      this.cipher = new FileCipher(this.ctx, newFileHeader(this.ctx));
      this.push(Buffer.from(this.cipher.header.bytes));
    }
    return this.cipher;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const cipher = this.begin();
    this.pending.push(chunk);
    const batch = cipher.chunkSize * STREAM_BATCH_CHUNKS;
    const work = async () => {
      while (batchesToRelease(this.pending.length, batch) > 0) {
        this.push(await cipher.seal(this.nextIndex, false, this.pending.take(batch)));
        this.nextIndex += STREAM_BATCH_CHUNKS;
      }
    };
    work().then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    const cipher = this.begin();
    cipher
      .seal(this.nextIndex, true, this.pending.take(this.pending.length))
      .then((sealed) => callback(null, sealed), callback);
  }
}

/**
 * Decrypting stream: a sealed file in, plaintext out. Chunks are released only after their
 * tag verified; a chunk counts as final only when the input really ends after it, so a file
 * cut at any point fails instead of yielding a shorter plaintext.
 */
export class DecryptStream extends Transform {
  private readonly pending = new ByteQueue();
  private cipher: FileCipher | undefined;
  private nextIndex = 0;
  private readonly ctx: ContentContext;

  constructor(masterKey: Uint8Array, options: ContentOptions = {}) {
    super();
    this.ctx = contentContext(masterKey, options);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending.push(chunk);
    const work = async () => {
      if (!this.cipher) {
        if (this.pending.length < HEADER_BYTES) return;
        this.cipher = new FileCipher(this.ctx, parseHeader(this.pending.take(HEADER_BYTES)));
      }
      const batch = runSealedLength(this.cipher.chunkSize * STREAM_BATCH_CHUNKS, this.cipher.chunkSize);
      while (batchesToRelease(this.pending.length, batch) > 0) {
        this.push(await this.cipher.open(this.nextIndex, false, this.pending.take(batch)));
        this.nextIndex += STREAM_BATCH_CHUNKS;
      }
    };
    work().then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    const work = async () => {
      if (!this.cipher) {
        parseHeader(this.pending.take(this.pending.length));
        throw new FormatError('truncated', 'input ends inside the header');
      }
      const rest = this.pending.take(this.pending.length);
      const defect = finalTailDefect(this.nextIndex, rest.length, this.cipher.chunkSize);
      switch (defect?.defect) {
        case 'no-chunk': {
          const where = this.nextIndex === 0 ? 'right after the header' : `after chunk ${this.nextIndex - 1}`;
          throw new FormatError('truncated', `input ends ${where} with no final chunk: it was cut short`, defect.chunk);
        }
        case 'short-chunk':
          throw new FormatError('truncated', `chunk ${defect.chunk} is ${defect.lastStored} bytes, shorter than nonce and tag: input was cut short`, defect.chunk);
        case 'empty-chunk':
          throw new FormatError('bad-size', `chunk ${defect.chunk} is an empty chunk after full ones, which sealfs never writes`, defect.chunk);
      }
      return this.cipher.open(this.nextIndex, true, rest);
    };
    work().then((plain) => callback(null, plain), callback);
  }
}

export function createEncryptStream(masterKey: Uint8Array, options?: ContentOptions): EncryptStream {
  return new EncryptStream(masterKey, options);
}

export function createDecryptStream(masterKey: Uint8Array, options?: ContentOptions): DecryptStream {
  return new DecryptStream(masterKey, options);
}
