import { Transform, type TransformCallback } from 'node:stream';
import { CHUNK_OVERHEAD } from './ciphers.js';
import { contentContext, newFileHeader, type ContentContext, type ContentOptions } from './context.js';
import { FormatError } from './errors.js';
import { FileCipher } from './filecipher.js';
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
      while (this.pending.length > batch) {
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
      const batch = (this.cipher.chunkSize + CHUNK_OVERHEAD) * STREAM_BATCH_CHUNKS;
      while (this.pending.length > batch) {
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
      const stored = this.cipher.chunkSize + CHUNK_OVERHEAD;
      const lastLength = rest.length % stored;
      if (rest.length === 0) {
        const where = this.nextIndex === 0 ? 'right after the header' : `after chunk ${this.nextIndex - 1}`;
        throw new FormatError('truncated', `input ends ${where} with no final chunk: it was cut short`, this.nextIndex);
      }
      if (lastLength !== 0 && lastLength < CHUNK_OVERHEAD) {
        const index = this.nextIndex + Math.floor(rest.length / stored);
        throw new FormatError('truncated', `chunk ${index} is ${lastLength} bytes, shorter than nonce and tag: input was cut short`, index);
      }
      if (lastLength === CHUNK_OVERHEAD && (rest.length > stored || this.nextIndex > 0)) {
        const index = this.nextIndex + Math.floor(rest.length / stored);
        throw new FormatError('bad-size', `chunk ${index} is an empty chunk after full ones, which sealfs never writes`, index);
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
