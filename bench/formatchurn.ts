import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentContext } from '../src/crypto/context.js';
import { sealedChunkOffset, storedChunkBytes } from '../src/crypto/geometry.js';
import { deriveSubkey } from '../src/crypto/kdf.js';
import { SealedFile } from '../src/crypto/sealedfile.js';
import { fdStore, MemoryStore, type ByteStore } from '../src/crypto/store.js';
import { CHUNK_OVERHEAD_V2, chunkOffset } from '../src/crypto/v2/layout.js';
import { SealedFileV2 } from '../src/crypto/v2/sealedfile.js';

/**
 * Format 1 against format 2, at the level of the file format (no mount): for the same edits
 * on the same plaintext, what each format changes in the ciphertext besides the chunk(s) the
 * edit is in, what reading one chunk reads besides it, and what a file costs (issue 11
 * property 5). Both run on an in-memory store, so the figures are exact byte counts.
 */

const MiB = 1 << 20;
const CHUNK = 64 * 1024;
const BLOCK = 4096;

/** A store that counts the bytes read from it. */
class CountingStore extends MemoryStore {
  bytesRead = 0;
  override async read(target: Uint8Array, position: number): Promise<number> {
    const n = await super.read(target, position);
    this.bytesRead += n;
    return n;
  }
}

/** One format behind a common face. */
interface Subject {
  write(at: number, data: Uint8Array): Promise<void>;
  truncate(size: number): Promise<void>;
  read(at: number, length: number): Promise<Uint8Array>;
  /** Everything reaches the store. */
  settle(): Promise<void>;
  reopen(): Promise<void>;
  readonly store: CountingStore;
}

const MASTER = randomBytes(32);

async function v1(store: CountingStore): Promise<Subject> {
  const ctx = contentContext(MASTER, { chunkSize: CHUNK, threads: 1 });
  let file = await SealedFile.create(store, ctx, true);
  return {
    store,
    write: (at, data) => file.write(at, data),
    truncate: (size) => file.truncate(size),
    read: (at, length) => file.read(at, length),
    settle: () => file.flush(),
    reopen: async () => {
      file = await SealedFile.open(store as ByteStore, ctx);
    },
  };
}

async function v2(store: CountingStore): Promise<Subject> {
  const key = { contentKey2: deriveSubkey(MASTER, 'content2') };
  let file = await SealedFileV2.create(store, key, { cipher: 'aes-256-gcm', chunkSize: CHUNK });
  return {
    store,
    write: (at, data) => file.write(at, data),
    truncate: (size) => file.truncate(size),
    read: (at, length) => file.read(at, length),
    settle: async () => void (await file.commit()),
    reopen: async () => {
      file = await SealedFileV2.open(store, key);
    },
  };
}

/**
 * Extends a 1 MiB file by 1 GiB on a real file (a memory store cannot be sparse): the time,
 * and the disk blocks the file gained.
 */
async function extendOnDisk(make: (store: CountingStore) => Promise<Subject>): Promise<string> {
  const dir = await mkdtemp(join(process.env.SEALFS_BENCH_DIR ?? tmpdir(), 'sealfs-formatchurn-'));
  const fd = openSync(join(dir, 'f'), 'w+');
  try {
    const disk = fdStore(fd);
    const store = Object.assign(new CountingStore(), { size: disk.size, read: disk.read, write: disk.write, truncate: disk.truncate, sync: disk.sync });
    const file = await make(store);
    await file.write(0, randomBytes(MiB));
    await file.settle();
    const blocksBefore = fstatSync(fd).blocks;
    const started = performance.now();
    await file.truncate(MiB + 1024 * MiB);
    await file.settle();
    await disk.sync();
    const ms = performance.now() - started;
    const gained = (fstatSync(fd).blocks - blocksBefore) * 512;
    return `${ms.toFixed(0)} ms, ${gained.toLocaleString('en-US')} B more on disk`;
  } finally {
    closeSync(fd);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Bytes that differ, and 4 KiB blocks that differ (what a block-level sync uploads), outside [skipFrom, skipTo). */
function changes(before: Uint8Array, after: Uint8Array, skipFrom: number, skipTo: number): { bytes: number; blocks: number } {
  let bytes = 0;
  const blocks = new Set<number>();
  const end = Math.max(before.length, after.length);
  for (let i = 0; i < end; i++) {
    if (i >= skipFrom && i < skipTo) continue;
    if (before[i] !== after[i]) {
      bytes++;
      blocks.add(Math.floor(i / BLOCK));
    }
  }
  return { bytes, blocks: blocks.size };
}

export interface FormatChurnRow {
  readonly measure: string;
  readonly v1: string;
  readonly v2: string;
}

/**
 * The rows of the format table, for a file of `mib` MiB. "Besides" excludes the stored
 * chunks the edit is in (for an append: from the old last chunk's start to the end of the
 * new chunks).
 */
export async function formatChurn(mib: number): Promise<FormatChurnRow[]> {
  const size = mib * MiB;
  const results: Record<'v1' | 'v2', string[]> = { v1: [], v2: [] };
  for (const [name, make, chunkSpan] of [
    ['v1', v1, (i: number) => [sealedChunkOffset(i, CHUNK), sealedChunkOffset(i, CHUNK) + storedChunkBytes(CHUNK)]],
    ['v2', v2, (i: number) => [chunkOffset(i, CHUNK), chunkOffset(i, CHUNK) + CHUNK + CHUNK_OVERHEAD_V2]],
  ] as const) {
    const out = results[name];
    const store = new CountingStore();
    const file = await make(store);
    for (let at = 0; at < size; at += 8 * MiB) await file.write(at, randomBytes(Math.min(8 * MiB, size - at)));
    await file.settle();
    out.push(`${(store.bytes().length - size).toLocaleString('en-US')} B (${(((store.bytes().length - size) / size) * 100).toFixed(4)}%)`);

    let before = Uint8Array.from(store.bytes());
    const middle = Math.floor(size / 2) + 12_345;
    const chunk = Math.floor(middle / CHUNK);
    await file.write(middle, Uint8Array.of(1));
    await file.settle();
    let after = store.bytes();
    const [from, to] = chunkSpan(chunk);
    const edit = changes(before, after, from, to);
    out.push(`${edit.bytes.toLocaleString('en-US')} B in ${edit.blocks} blocks`);

    before = Uint8Array.from(after);
    const lastOld = Math.floor((size - 1) / CHUNK);
    await file.write(size, randomBytes(1024));
    await file.settle();
    after = store.bytes();
    const append = changes(before, after, chunkSpan(lastOld)[0]!, chunkSpan(Math.floor((size + 1023) / CHUNK))[1]!);
    out.push(`${append.bytes.toLocaleString('en-US')} B in ${append.blocks} blocks`);

    out.push(await extendOnDisk(make));

    await file.reopen();
    store.bytesRead = 0;
    await file.read(chunk * CHUNK, 1);
    const [chunkFrom, chunkTo] = chunkSpan(chunk);
    out.push(`${(store.bytesRead - (chunkTo - chunkFrom)).toLocaleString('en-US')} B`);

    const tiny = new CountingStore();
    const one = await make(tiny);
    await one.write(0, Uint8Array.of(7));
    await one.settle();
    out.push(`${tiny.bytes().length - 1} B`);
  }
  const measures = [
    `overhead of a ${mib} MiB file`,
    `1-byte edit in the middle: changed besides its chunk`,
    'append 1 KiB: changed besides the old last and new chunks',
    'extend a 1 MiB file by 1 GiB (truncate, on disk): time, disk used',
    'read 1 byte after opening: bytes read besides its chunk',
    'overhead of a 1-byte file',
  ];
  return measures.map((measure, i) => ({ measure, v1: results.v1[i]!, v2: results.v2[i]! }));
}

export function formatChurnTable(rows: readonly FormatChurnRow[], mib: number): string {
  const header = ['format level, no mount', 'format 1', 'format 2'];
  const body = rows.map((r) => [r.measure, r.v1, r.v2]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    `Format 1 against format 2 for the same edits, ${mib} MiB file, 64 KiB chunks ("blocks": 4 KiB blocks a block-level sync re-uploads):`,
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...body.map(line),
  ].join('\n');
}
