import { open, rename, rm } from 'node:fs/promises';
import { FILE_ID_BYTES } from '../crypto/header.js';

/**
 * The highest version of every format-2 file this machine has seen (docs/FORMAT.md §21), kept
 * outside the cipher folder next to the key store, so that a provider that puts back an older
 * authentic version of a whole file is caught here.
 *
 * On disk: an 8-byte magic, uint64be(count of sorted records), then 24-byte records
 * `file id (16) ‖ uint64be(version)`: first `count` records sorted by file id with one per
 * file, then records appended since, the last for a file winning. 24 bytes per file: 24 MB
 * per million files, held as one buffer (binary search), never as a million objects.
 * Compacted (merged, written to a temporary file and renamed) when the appended part
 * outgrows an eighth of the sorted part.
 */

const MAGIC = Buffer.from('SFSEEN01');
const HEAD_BYTES = MAGIC.length + 8;
const RECORD_BYTES = FILE_ID_BYTES + 8;
const MIN_TAIL_BEFORE_COMPACTING = 1024;

/** What the version of a file found in the vault means on this machine. */
export type SeenVerdict =
  | { readonly kind: 'unseen' }
  | { readonly kind: 'same' }
  | { readonly kind: 'newer'; readonly seen: number }
  | { readonly kind: 'rollback'; readonly seen: number };

const keyOf = (fileId: Uint8Array): string => Buffer.from(fileId).toString('hex');

export class SeenVersions {
  /** Records appended since the sorted part was written: file id hex → version. */
  private readonly tail = new Map<string, number>();
  /** Appended but not yet on disk. */
  private unwritten: Buffer[] = [];

  private constructor(
    private readonly path: string,
    private sorted: Buffer,
  ) {}

  /** Opens (or starts) the list at `path`. A record cut short by a crash is ignored. */
  static async open(path: string): Promise<SeenVersions> {
    let data: Buffer;
    try {
      data = await readWhole(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return new SeenVersions(path, Buffer.alloc(0));
    }
    if (data.length < HEAD_BYTES || !data.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new Error(`${path}: not a sealfs seen-versions file`);
    }
    const sortedCount = Number(data.readBigUInt64BE(MAGIC.length));
    const records = Math.floor((data.length - HEAD_BYTES) / RECORD_BYTES);
    if (sortedCount > records) throw new Error(`${path}: damaged (says ${sortedCount} sorted records, holds ${records})`);
    const list = new SeenVersions(path, data.subarray(HEAD_BYTES, HEAD_BYTES + sortedCount * RECORD_BYTES));
    for (let i = sortedCount; i < records; i++) {
      const at = HEAD_BYTES + i * RECORD_BYTES;
      list.tail.set(keyOf(data.subarray(at, at + FILE_ID_BYTES)), Number(data.readBigUInt64BE(at + FILE_ID_BYTES)));
    }
    return list;
  }

  /** How many files the list holds. */
  get size(): number {
    let fromSorted = 0;
    for (let i = 0; i < this.sorted.length / RECORD_BYTES; i++) {
      if (!this.tail.has(keyOf(this.sorted.subarray(i * RECORD_BYTES, i * RECORD_BYTES + FILE_ID_BYTES)))) fromSorted++;
    }
    return fromSorted + this.tail.size;
  }

  /** The highest version seen of the file, if any. */
  seen(fileId: Uint8Array): number | undefined {
    const fromTail = this.tail.get(keyOf(fileId));
    if (fromTail !== undefined) return fromTail;
    let low = 0;
    let high = this.sorted.length / RECORD_BYTES - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const at = middle * RECORD_BYTES;
      const order = Buffer.compare(this.sorted.subarray(at, at + FILE_ID_BYTES), fileId);
      if (order === 0) return Number(this.sorted.readBigUInt64BE(at + FILE_ID_BYTES));
      if (order < 0) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  verdict(fileId: Uint8Array, version: number): SeenVerdict {
    const seen = this.seen(fileId);
    if (seen === undefined) return { kind: 'unseen' };
    if (version === seen) return { kind: 'same' };
    return version > seen ? { kind: 'newer', seen } : { kind: 'rollback', seen };
  }

  /** Remembers a version read or written here, if it is higher than the one seen. */
  remember(fileId: Uint8Array, version: number): void {
    const seen = this.seen(fileId);
    if (seen === undefined || version > seen) this.set(fileId, version);
  }

  /** The user accepted this (older) version as current on this machine (`sealfs accept`). */
  accept(fileId: Uint8Array, version: number): void {
    this.set(fileId, version);
  }

  private set(fileId: Uint8Array, version: number): void {
    if (fileId.length !== FILE_ID_BYTES) throw new RangeError(`a file id is ${FILE_ID_BYTES} bytes`);
    this.tail.set(keyOf(fileId), version);
    const record = Buffer.alloc(RECORD_BYTES);
    record.set(fileId, 0);
    record.writeBigUInt64BE(BigInt(version), FILE_ID_BYTES);
    this.unwritten.push(record);
  }

  /** Writes what was remembered since the last call; compacts when the appended part is large. */
  async flush(): Promise<void> {
    if (this.tail.size > Math.max(MIN_TAIL_BEFORE_COMPACTING, this.sorted.length / RECORD_BYTES / 8)) {
      await this.compact();
      return;
    }
    if (this.unwritten.length === 0) return;
    const records = Buffer.concat(this.unwritten);
    this.unwritten = [];
    const handle = await open(this.path, 'a+', 0o600);
    try {
      if ((await handle.stat()).size === 0) await handle.write(head(0));
      await handle.write(records);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Merges the appended records into the sorted part: one record per file, written atomically. */
  async compact(): Promise<void> {
    const merged = new Map<string, Buffer>();
    for (let at = 0; at < this.sorted.length; at += RECORD_BYTES) {
      merged.set(keyOf(this.sorted.subarray(at, at + FILE_ID_BYTES)), this.sorted.subarray(at, at + RECORD_BYTES));
    }
    for (const [key, version] of this.tail) {
      const record = Buffer.alloc(RECORD_BYTES);
      record.write(key, 0, 'hex');
      record.writeBigUInt64BE(BigInt(version), FILE_ID_BYTES);
      merged.set(key, record);
    }
    const sorted = Buffer.concat([...merged.keys()].sort().map((key) => merged.get(key)!));
    const temp = `${this.path}.${process.pid}.tmp`;
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.write(Buffer.concat([head(sorted.length / RECORD_BYTES), sorted]));
      await handle.sync();
    } catch (err) {
      await handle.close();
      await rm(temp, { force: true });
      throw err;
    }
    await handle.close();
    await rename(temp, this.path);
    this.sorted = sorted;
    this.tail.clear();
    this.unwritten = [];
  }
}

function head(sortedCount: number): Buffer {
  const out = Buffer.alloc(HEAD_BYTES);
  MAGIC.copy(out, 0);
  out.writeBigUInt64BE(BigInt(sortedCount), MAGIC.length);
  return out;
}

async function readWhole(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
