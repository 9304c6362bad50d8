import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { installSignalHandlers, mountsUnder, note, onAbort } from './lib/proc.js';
import { sealfs, Unavailable, type Mounted } from './lib/systems.js';
import { chunkIndexAt, chunksPlainRange, lastChunkIndex, runSealedLength, sealedSize, storedChunkBytes } from '../src/crypto/geometry.js';
import { HEADER_BYTES as HEADER } from '../src/crypto/header.js';
import { formatChurn, formatChurnTable } from './formatchurn.js';

/**
 * Ciphertext churn: how many bytes of the ciphertext a sync client has to upload after
 * ordinary edits made through a real sealfs mount. For each edit the ciphertext file is
 * compared with its previous version byte by byte and stored chunk by stored chunk (header
 * 24 bytes, then chunks of C + 28 bytes: nonce, data, tag).
 *
 *   1-byte edit in the middle of a 100 MiB file   → exactly one stored chunk re-sealed
 *   append 1 KiB                                  → the old last chunk re-sealed + one new chunk
 *   truncate by 1 KiB                             → the new last chunk re-sealed, the file shorter
 *   editor-style save (temp file renamed over)    → a new file (new file id: every byte differs),
 *                                                   exactly one changed ciphertext file, no temp file left
 *
 * Then the same edits on format 1 and format 2 files side by side, at the level of the file
 * format (bench/formatchurn.ts; format 2 is not yet what the mount writes).
 *
 * Usage: node dist/bench/churn.js [--mib N] [--json]
 * Backing directory: $SEALFS_BENCH_DIR, else os.tmpdir(). sealfs CLI: $SEALFS_BENCH_CLI or dist/src/cli/main.js.
 * With --json, stdout carries exactly one JSON object and everything else goes to stderr.
 * The figures are printed, not asserted.
 */

const MiB = 1 << 20;

interface Options {
  readonly mib: number;
  readonly json: boolean;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({ args, options: { mib: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    process.stderr.write('usage: node dist/bench/churn.js [--mib N (default 100)] [--json]\n');
    process.exit(0);
  }
  const mib = values.mib === undefined ? 100 : Number(values.mib);
  if (!Number.isInteger(mib) || mib < 1) throw new Error(`--mib: expected a positive integer, got ${values.mib}`);
  return { mib, json: values.json ?? false };
}

/** What changed between two versions of one ciphertext file. */
interface Diff {
  /** Bytes that differ, counting every byte past the end of the shorter version. */
  bytesDiffering: number;
  /** Stored chunks of the new version whose bytes differ from the old (re-sealed or new). */
  chunksRewritten: number;
  /** Stored chunks of the old version that are gone (the file got shorter). */
  chunksRemoved: number;
  /** Bytes of the new version that lie in changed chunks or the header: what a block-level sync re-uploads. */
  bytesRewritten: number;
  headerChanged: boolean;
  sizeBefore: number;
  sizeAfter: number;
}

function diff(before: Buffer, after: Buffer, chunkSize: number): Diff {
  const stored = storedChunkBytes(chunkSize);
  let bytesDiffering = Math.abs(after.length - before.length);
  const common = Math.min(before.length, after.length);
  for (let i = 0; i < common; i++) if (before[i] !== after[i]) bytesDiffering++;
  const headerChanged = !before.subarray(0, HEADER).equals(after.subarray(0, HEADER));
  let chunksRewritten = 0;
  let chunksRemoved = 0;
  let bytesRewritten = headerChanged ? HEADER : 0;
  const end = Math.max(before.length, after.length);
  for (let at = HEADER; at < end; at += stored) {
    const a = before.subarray(Math.min(at, before.length), Math.min(at + stored, before.length));
    const b = after.subarray(Math.min(at, after.length), Math.min(at + stored, after.length));
    if (a.equals(b)) continue;
    if (b.length === 0) chunksRemoved++;
    else {
      chunksRewritten++;
      bytesRewritten += b.length;
    }
  }
  return { bytesDiffering, chunksRewritten, chunksRemoved, bytesRewritten, headerChanged, sizeBefore: before.length, sizeAfter: after.length };
}

interface Row {
  operation: string;
  seconds: number;
  diff: Diff;
  /** The bound the format promises, as text, and as chunk/byte figures when exact. */
  expected: string;
  expectedChunks: number;
  expectedBytesRewritten: number;
  withinBound: boolean;
  /** Editor-style save only: cipher folder before/after the rename. */
  cipherFiles?: { changed: string[]; added: string[]; removed: string[]; tempLeft: string[] };
}

/** Every regular file under a cipher folder: relative path → inode, size and sha256. */
async function cipherListing(dir: string): Promise<Map<string, { ino: number; size: number; sha: string }>> {
  const out = new Map<string, { ino: number; size: number; sha: string }>();
  const walk = async (at: string) => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else {
        const st = await stat(path);
        out.set(relative(dir, path), { ino: st.ino, size: st.size, sha: createHash('sha256').update(await readFile(path)).digest('hex') });
      }
    }
  };
  await walk(dir);
  return out;
}

async function writeAll(path: string, flags: string, pieces: (at: number) => Buffer | undefined): Promise<void> {
  const handle = await open(path, flags);
  try {
    let at = 0;
    for (let piece = pieces(at); piece; piece = pieces(at)) {
      await handle.write(piece, 0, piece.length, at);
      at += piece.length;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The one ciphertext file in the cipher folder besides the vault file. */
async function theCipherFile(cipher: string): Promise<string> {
  const names = (await readdir(cipher)).filter((n) => n !== 'sealfs.vault' && !n.startsWith('.'));
  if (names.length !== 1) throw new Error(`expected one ciphertext file in ${cipher}, found ${names.length}: ${names.join(', ')}`);
  return join(cipher, names[0]!);
}

async function measure(mounted: Mounted, cipher: string, options: Options): Promise<{ rows: Row[]; chunkSize: number }> {
  const chunkSize = JSON.parse((await readFile(join(cipher, 'sealfs.vault'), 'utf8')).split('\n')[0]!).chunkSize as number;
  const size = options.mib * MiB;
  const plain = join(mounted.mnt, 'big.bin');
  const rows: Row[] = [];

  note(`bench: churn: writing ${options.mib} MiB through the mount`);
  const source = randomBytes(MiB);
  await writeAll(plain, 'w', (at) => (at < size ? source.subarray(0, Math.min(MiB, size - at)) : undefined));
  const cipherFile = await theCipherFile(cipher);
  let before = await readFile(cipherFile);

  const step = async (operation: string, expected: string, expectedChunks: number, expectedBytesRewritten: number, edit: () => Promise<void>, extra?: (row: Row) => Promise<void>) => {
    const started = process.hrtime.bigint();
    await edit();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const after = await readFile(await theCipherFile(cipher));
    const d = diff(before, after, chunkSize);
    const row: Row = { operation, seconds, diff: d, expected, expectedChunks, expectedBytesRewritten, withinBound: d.chunksRewritten <= expectedChunks && d.bytesRewritten <= expectedBytesRewritten };
    await extra?.(row);
    rows.push(row);
    note(`bench: churn: ${operation}: ${d.chunksRewritten} stored chunk(s) rewritten, ${d.chunksRemoved} removed, ${d.bytesRewritten} bytes rewritten, ${d.bytesDiffering} bytes differ (${seconds.toFixed(3)} s)`);
    before = after;
  };
  /** Index of the last chunk of a file of `plainSize` bytes, and the stored size of chunk i in it. */
  const lastIndex = (plainSize: number) => lastChunkIndex(plainSize, chunkSize);
  const storedBytes = (i: number, plainSize: number) => {
    const { start, end } = chunksPlainRange(i, i, plainSize, chunkSize);
    return runSealedLength(end - start, chunkSize);
  };
  const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, k) => first + k);

  const middle = Math.floor(size / 2) + 12_345;
  const editChunk = chunkIndexAt(middle, chunkSize);
  await step('1-byte edit in the middle', `1 chunk, ${fmt(storedBytes(editChunk, size))} bytes`, 1, storedBytes(editChunk, size), async () => {
    const handle = await open(plain, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, middle);
      byte[0] = byte[0]! ^ 0xff;
      await handle.write(byte, 0, 1, middle);
      await handle.sync();
    } finally {
      await handle.close();
    }
  });

  // Appending re-seals the old last chunk (it stops being final, or grows) and adds any new ones.
  const appended = size + 1024;
  const appendChunks = range(lastIndex(size), lastIndex(appended));
  const appendBytes = appendChunks.reduce((sum, i) => sum + storedBytes(i, appended), 0);
  await step('append 1 KiB', `old last + new: ${appendChunks.length} chunks, ${fmt(appendBytes)} bytes`, appendChunks.length, appendBytes, async () => {
    const handle = await open(plain, 'a');
    try {
      await handle.write(randomBytes(1024));
      await handle.sync();
    } finally {
      await handle.close();
    }
  });

  // Truncating re-seals the chunk that becomes the last one (final flag) and cuts off the rest.
  const cut = appended - 1024;
  const cutBytes = storedBytes(lastIndex(cut), cut);
  await step('truncate by 1 KiB', `new last chunk: 1 chunk, ${fmt(cutBytes)} bytes`, 1, cutBytes, async () => {
    await truncate(plain, cut);
  });

  // Editor-style save: write the whole new version to a temporary file, then rename it over.
  const beforeSave = await cipherListing(cipher);
  let duringSave = new Map<string, unknown>();
  const wholeFile = sealedSize(size, chunkSize);
  await step(
    'editor-style save (temp + rename)',
    `new file id: header + ${fmt(lastIndex(size) + 1)} chunks, ${fmt(wholeFile)} bytes`,
    lastIndex(size) + 1,
    wholeFile,
    async () => {
      const content = await readFile(plain);
      content[middle] = content[middle]! ^ 0x55;
      const temp = join(mounted.mnt, '.big.bin.sealfs-bench~');
      await writeAll(temp, 'w', (at) => (at < content.length ? content.subarray(at, Math.min(at + MiB, content.length)) : undefined));
      duringSave = await cipherListing(cipher);
      await rename(temp, plain);
    },
    async (row) => {
      const afterSave = await cipherListing(cipher);
      const changed = [...afterSave].filter(([name, f]) => beforeSave.has(name) && (beforeSave.get(name)!.sha !== f.sha || beforeSave.get(name)!.ino !== f.ino)).map(([name]) => name);
      const added = [...afterSave.keys()].filter((name) => !beforeSave.has(name));
      const removed = [...beforeSave.keys()].filter((name) => !afterSave.has(name));
      const tempNames = [...duringSave.keys()].filter((name) => !beforeSave.has(name));
      const tempLeft = tempNames.filter((name) => afterSave.has(name));
      row.cipherFiles = { changed, added, removed, tempLeft };
      row.withinBound = row.withinBound && changed.length === 1 && added.length === 0 && removed.length === 0 && tempLeft.length === 0;
      note(`bench: churn: cipher folder: ${changed.length} file changed, ${added.length} added, ${removed.length} removed; temporary file while saving: ${tempNames.length}, left after the rename: ${tempLeft.length}`);
    },
  );
  return { rows, chunkSize };
}

const fmt = (n: number) => n.toLocaleString('en-US');

function table(rows: Row[], mib: number, chunkSize: number): string {
  const header = ['operation', 'chunks rewritten', 'chunks cut off', 'bytes rewritten', 'bytes differing', 'header', 'size change', 'expected (format bound)', 'within'];
  const body = rows.map((r) => [
    r.operation,
    fmt(r.diff.chunksRewritten),
    fmt(r.diff.chunksRemoved),
    fmt(r.diff.bytesRewritten),
    fmt(r.diff.bytesDiffering),
    r.diff.headerChanged ? 'changed' : 'same',
    `${r.diff.sizeAfter - r.diff.sizeBefore >= 0 ? '+' : ''}${fmt(r.diff.sizeAfter - r.diff.sizeBefore)}`,
    r.expected,
    r.withinBound ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 || i >= 7 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    `Ciphertext churn through a sealfs mount, ${mib} MiB file (stored chunk = ${fmt(chunkSize)} + 28 bytes):`,
    line(header),
    `|${widths.map((w, i) => (i === 0 || i >= 7 ? ':' : '-') + '-'.repeat(w) + (i === 0 || i >= 7 ? '-' : ':')).join('|')}|`,
    ...body.map(line),
    ...rows
      .filter((r) => r.cipherFiles)
      .map((r) => `${r.operation}, cipher folder before → after the rename: ${r.cipherFiles!.changed.length} file changed, ${r.cipherFiles!.added.length} added, ${r.cipherFiles!.removed.length} removed, ${r.cipherFiles!.tempLeft.length} temporary file left (expected: 1, 0, 0, 0).`),
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  installSignalHandlers();
  const base = resolve(process.env.SEALFS_BENCH_DIR ?? tmpdir());
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, 'sealfs-churn-'));
  const removeDir = async () => {
    if ((await mountsUnder(dir)).length === 0) await rm(dir, { recursive: true, force: true });
    else note(`bench: ${dir} still has mounts; not removing it`);
  };
  const unregister = onAbort(removeDir);
  let result: { rows: Row[]; chunkSize: number };
  try {
    let mounted: Mounted;
    try {
      mounted = await sealfs.setup(dir);
    } catch (err) {
      if (err instanceof Unavailable) throw new Error(`sealfs could not be mounted: ${err.message}`);
      throw err;
    }
    try {
      result = await measure(mounted, join(dir, 'cipher'), options);
    } finally {
      await mounted.teardown();
    }
  } finally {
    await removeDir();
    unregister();
  }
  note('bench: churn: format 1 against format 2, in memory');
  const formats = await formatChurn(options.mib);
  if (options.json) {
    const { rows, chunkSize } = result;
    process.stdout.write(`${JSON.stringify({ benchmark: 'churn', fileBytes: options.mib * MiB, chunkSize, storedChunkBytes: storedChunkBytes(chunkSize), allWithinBound: rows.every((r) => r.withinBound), rows, formats })}\n`);
  } else {
    process.stdout.write(`${table(result.rows, options.mib, result.chunkSize)}\n\n${formatChurnTable(formats, options.mib)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: churn failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
