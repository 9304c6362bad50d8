import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FILE_ID_BYTES, HEADER_BYTES } from '../crypto/header.js';
import type { ByteStore } from '../crypto/store.js';
import { ROOT_BYTES } from '../crypto/v2/layout.js';
import type { CommitApplier, CommitPlan } from '../crypto/v2/sealedfile.js';

/**
 * The local commit journal of format-2 files (docs/FORMAT.md §22): it makes every commit of a
 * batch of changes atomic, so a writer killed at any moment leaves each file exactly in its
 * old or its new state. Records live outside the cipher folder (next to the key store), one
 * file per cipher file being committed, named by its file id.
 *
 * Record: magic ‖ uint64be(old length) ‖ file id (16) ‖ old root (32) ‖ new root (32) ‖
 * uint16be(path length) ‖ cipher path (UTF-8, relative to the vault root) — the intent,
 * written before anything changes — then,
 * once the bytes beyond the old length are in place: uint64be(new length) ‖ uint32be(ranges)
 * ‖ (uint64be(offset) ‖ uint32be(length) ‖ bytes)* ‖ SHA-256 of everything before it.
 */

const MAGIC = Buffer.from('SFJNL002');
const ROOT_AT = HEADER_BYTES;
const SUFFIX = '.jnl';

/** Where the journal of a vault lives: `<keystore>/<vaultId>.journal/`. */
export function journalDir(keystoreDir: string, vaultId: string): string {
  return join(keystoreDir, `${vaultId}.journal`);
}

interface Range {
  readonly offset: number;
  readonly data: Uint8Array;
}

/** Splits the plan: what lies at or beyond the old length goes in directly, the rest through the record. */
function split(plan: CommitPlan): { direct: Range[]; journaled: Range[] } {
  const direct: Range[] = [];
  const journaled: Range[] = [];
  for (const range of plan.ranges) {
    const end = range.offset + range.data.length;
    if (range.offset >= plan.oldLength) direct.push(range);
    else if (end <= plan.oldLength) journaled.push(range);
    else {
      const cut = plan.oldLength - range.offset;
      journaled.push({ offset: range.offset, data: range.data.subarray(0, cut) });
      direct.push({ offset: plan.oldLength, data: range.data.subarray(cut) });
    }
  }
  return { direct, journaled };
}

function u64(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

/**
 * A CommitApplier for one cipher file: intent, bytes beyond the old end, the rest of the record,
 * the rest in place, record removed. With `durable`, the record and the file are synced where
 * a crash of the machine (not only of the process) would otherwise lose the order.
 */
export function journaledApplier(dir: string, cipherPath: string, fileId: Uint8Array, durable: boolean): CommitApplier {
  return async (store, plan) => {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, Buffer.from(fileId).toString('hex') + SUFFIX);
    const name = Buffer.from(cipherPath, 'utf8');
    // The roots tell settling whether the file is still the one this record is about.
    const oldRoot = Buffer.alloc(ROOT_BYTES);
    if (plan.oldLength >= ROOT_AT + ROOT_BYTES) await store.read(oldRoot, ROOT_AT);
    const newRoot = plan.ranges.find((r) => r.offset === ROOT_AT)?.data ?? new Uint8Array(ROOT_BYTES);
    const intent = Buffer.concat([MAGIC, u64(plan.oldLength), Buffer.from(fileId), oldRoot, Buffer.from(newRoot), Buffer.from([name.length >> 8, name.length & 0xff]), name]);
    const { direct, journaled } = split(plan);
    const handle = await open(path, 'w', 0o600);
    try {
      await handle.write(intent);
      if (durable) await handle.sync();
      if (plan.newLength > plan.oldLength) await store.truncate(plan.newLength);
      for (const range of direct) await store.write(range.data, range.offset);
      const parts: Buffer[] = [u64(plan.newLength), Buffer.alloc(4)];
      parts[1]!.writeUInt32BE(journaled.length);
      for (const range of journaled) {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(range.data.length);
        parts.push(u64(range.offset), length, Buffer.from(range.data.buffer, range.data.byteOffset, range.data.byteLength));
      }
      const redo = Buffer.concat(parts);
      const digest = createHash('sha256').update(intent).update(redo).digest();
      await handle.write(Buffer.concat([redo, digest]));
      if (durable) {
        await handle.sync();
      }
    } finally {
      await handle.close();
    }
    for (const range of journaled) await store.write(range.data, range.offset);
    if (plan.newLength < plan.oldLength) await store.truncate(plan.newLength);
    if (durable) await store.sync();
    await rm(path, { force: true });
  };
}

/** What settling one record did. */
export interface Settled {
  readonly cipherPath: string;
  readonly outcome: 'redone' | 'undone' | 'skipped';
  readonly detail?: string;
}

/**
 * Settles every record a killed writer left: a complete record is redone, an intent alone
 * undone (the file cut back to its old length). `openFile` opens a cipher file of the vault
 * for writing through the vault's confined calls (or returns undefined when it is gone). A
 * record whose file is not the one it was written for — another file id, or a root that is
 * neither the old nor (for a complete record) the new one, as when a sync client brought a
 * newer version before settling — is dropped without touching the file, and reported.
 */
export async function settleJournal(dir: string, openFile: (cipherPath: string) => Promise<ByteStore | undefined>): Promise<Settled[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith(SUFFIX));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: Settled[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    const record = await readFile(path);
    const parsed = parseRecord(record);
    if (!parsed) {
      // Not even a whole intent: nothing was changed yet.
      await rm(path, { force: true });
      continue;
    }
    const store = await openFile(parsed.cipherPath);
    const head = new Uint8Array(HEADER_BYTES + ROOT_BYTES);
    const got = store ? await store.read(head, 0) : 0;
    if (!store || got < HEADER_BYTES || !Buffer.from(head.subarray(8, 8 + FILE_ID_BYTES)).equals(parsed.fileId)) {
      out.push({ cipherPath: parsed.cipherPath, outcome: 'skipped', detail: 'the cipher file is gone or is another file now' });
      await rm(path, { force: true });
      continue;
    }
    const root = Buffer.from(head.subarray(ROOT_AT, ROOT_AT + ROOT_BYTES));
    const rootIsOld = root.equals(parsed.oldRoot) || (got < ROOT_AT + ROOT_BYTES && isZeroRoot(parsed.oldRoot));
    if (!rootIsOld && !(parsed.redo && root.equals(parsed.newRoot))) {
      out.push({ cipherPath: parsed.cipherPath, outcome: 'skipped', detail: 'the cipher file holds another version now' });
      await rm(path, { force: true });
      continue;
    }
    if (parsed.redo) {
      for (const range of parsed.redo.ranges) await store.write(range.data, range.offset);
      await store.truncate(parsed.redo.newLength);
      await store.sync();
      out.push({ cipherPath: parsed.cipherPath, outcome: 'redone' });
    } else {
      await store.truncate(parsed.oldLength);
      await store.sync();
      out.push({ cipherPath: parsed.cipherPath, outcome: 'undone' });
    }
    await rm(path, { force: true });
  }
  return out;
}

interface ParsedRecord {
  readonly oldLength: number;
  readonly fileId: Buffer;
  readonly oldRoot: Buffer;
  readonly newRoot: Buffer;
  readonly cipherPath: string;
  readonly redo?: { readonly newLength: number; readonly ranges: Range[] };
}

/** A file committed for the first time had no root yet: its record says zeros. */
function isZeroRoot(root: Buffer): boolean {
  return root.every((b) => b === 0);
}

function parseRecord(record: Buffer): ParsedRecord | undefined {
  const fixed = MAGIC.length + 8 + FILE_ID_BYTES + 2 * ROOT_BYTES + 2;
  if (record.length < fixed || !record.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const oldLength = Number(record.readBigUInt64BE(MAGIC.length));
  const fileId = record.subarray(MAGIC.length + 8, MAGIC.length + 8 + FILE_ID_BYTES);
  const oldRoot = record.subarray(MAGIC.length + 8 + FILE_ID_BYTES, MAGIC.length + 8 + FILE_ID_BYTES + ROOT_BYTES);
  const newRoot = record.subarray(MAGIC.length + 8 + FILE_ID_BYTES + ROOT_BYTES, fixed - 2);
  const nameLength = record.readUInt16BE(fixed - 2);
  if (record.length < fixed + nameLength) return undefined;
  const cipherPath = record.subarray(fixed, fixed + nameLength).toString('utf8');
  const intentEnd = fixed + nameLength;
  const base = { oldLength, fileId, oldRoot, newRoot, cipherPath };
  if (record.length < intentEnd + 12 + 32) return base;
  const digest = createHash('sha256').update(record.subarray(0, record.length - 32)).digest();
  if (!digest.equals(record.subarray(record.length - 32))) return base;
  const newLength = Number(record.readBigUInt64BE(intentEnd));
  const count = record.readUInt32BE(intentEnd + 8);
  const ranges: Range[] = [];
  let at = intentEnd + 12;
  for (let i = 0; i < count; i++) {
    const offset = Number(record.readBigUInt64BE(at));
    const length = record.readUInt32BE(at + 8);
    ranges.push({ offset, data: record.subarray(at + 12, at + 12 + length) });
    at += 12 + length;
  }
  return { ...base, redo: { newLength, ranges } };
}
