import { ALL_VERIFIED, type ChunkRun } from './backend.js';
import { fileRunBase, type ContentContext } from './context.js';
import { FormatError } from './errors.js';
import { isRunDefect, runChunkAt, runChunkOffset, runOfSealed, runSealedLength, storedChunkBytes } from './geometry.js';
import type { FileHeader } from './header.js';

/** Below this many bytes a run is sealed on the calling thread: a thread hop costs more. */
const PARALLEL_THRESHOLD = 512 * 1024;

/**
 * Seals and opens runs of chunks of one file (one header, one file key). Turns a failed
 * tag into a FormatError naming the file-wide chunk index, and tells a file cut short
 * at a chunk boundary apart from a damaged chunk.
 */
export class FileCipher {
  private readonly base: Omit<ChunkRun, 'firstIndex' | 'endsFile'>;

  constructor(
    private readonly ctx: ContentContext,
    readonly header: FileHeader,
  ) {
    this.base = fileRunBase(ctx, header);
  }

  get chunkSize(): number {
    return this.header.chunkSize;
  }

  private run(firstIndex: number, endsFile: boolean): ChunkRun {
    return { ...this.base, firstIndex, endsFile };
  }

  sealSync(firstIndex: number, endsFile: boolean, plain: Uint8Array, nonces?: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(runSealedLength(plain.length, this.chunkSize));
    this.ctx.backend.seal(this.run(firstIndex, endsFile), plain, out, nonces);
    return out;
  }

  async seal(firstIndex: number, endsFile: boolean, plain: Uint8Array): Promise<Uint8Array> {
    if (plain.length < PARALLEL_THRESHOLD || this.ctx.threads <= 1) return this.sealSync(firstIndex, endsFile, plain);
    const out = Buffer.allocUnsafe(runSealedLength(plain.length, this.chunkSize));
    await this.ctx.backend.sealAsync(this.run(firstIndex, endsFile), plain, out, this.ctx.threads);
    return out;
  }

  openSync(firstIndex: number, endsFile: boolean, sealed: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(this.plainLength(firstIndex, sealed.length));
    const failed = this.ctx.backend.open(this.run(firstIndex, endsFile), sealed, out);
    if (failed !== ALL_VERIFIED) throw this.diagnose(firstIndex, endsFile, sealed, failed);
    return out;
  }

  async open(firstIndex: number, endsFile: boolean, sealed: Uint8Array): Promise<Uint8Array> {
    if (sealed.length < PARALLEL_THRESHOLD || this.ctx.threads <= 1) return this.openSync(firstIndex, endsFile, sealed);
    const out = Buffer.allocUnsafe(this.plainLength(firstIndex, sealed.length));
    const failed = await this.ctx.backend.openAsync(this.run(firstIndex, endsFile), sealed, out, this.ctx.threads);
    if (failed !== ALL_VERIFIED) throw this.diagnose(firstIndex, endsFile, sealed, failed);
    return out;
  }

  private plainLength(firstIndex: number, sealedLength: number): number {
    const run = runOfSealed(sealedLength, this.chunkSize);
    if (isRunDefect(run)) {
      const index = firstIndex + run.chunk;
      throw new FormatError('bad-size', `chunk ${index} is ${run.lastStored} bytes, not a valid stored chunk`, index);
    }
    return run.plainLength;
  }

  /**
   * A final chunk that fails but verifies as a non-final one is authentic data whose
   * successors were cut away: report truncation, not damage.
   */
  private diagnose(firstIndex: number, endsFile: boolean, sealed: Uint8Array, failed: number): FormatError {
    const index = firstIndex + failed;
    const lastInRun = runChunkAt(sealed.length - 1, this.chunkSize);
    const chunk = sealed.subarray(runChunkOffset(failed, this.chunkSize));
    if (endsFile && failed === lastInRun && chunk.length === storedChunkBytes(this.chunkSize)) {
      const probe = new Uint8Array(this.chunkSize);
      const asInner = this.ctx.backend.open(this.run(index, false), chunk, probe);
      probe.fill(0);
      if (asInner === ALL_VERIFIED) {
        return new FormatError('truncated', `file is truncated: it ends after chunk ${index}, which is not its final chunk`, index);
      }
    }
    return new FormatError('corrupt-chunk', `chunk ${index} failed authentication (damaged, tampered, moved, or wrong key)`, index);
  }
}
