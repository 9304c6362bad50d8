/**
 * The commit journal (docs/FORMAT.md §22): a writer killed after any store operation of a
 * commit, or while writing its record, leaves the file, once the journal is settled, exactly
 * in its old or its new state — never a mix, never a file that fails authentication.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveSubkey } from '../src/crypto/kdf.js';
import { MemoryStore } from '../src/crypto/store.js';
import { SealedFileV2 } from '../src/crypto/v2/sealedfile.js';
import { journaledApplier, settleJournal } from '../src/vault/journal.js';

const KEY = { contentKey2: deriveSubkey(randomBytes(32), 'content2') };
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

class Crash extends Error {}

/** A store whose mutating calls stop working after `allowed` of them, as a killed writer's would. */
class CrashingStore extends MemoryStore {
  operations = 0;
  constructor(
    initial: Uint8Array,
    private readonly allowed: number,
  ) {
    super(initial);
  }
  private step(): void {
    if (this.operations++ >= this.allowed) throw new Crash('killed');
  }
  override async write(data: Uint8Array, position: number): Promise<void> {
    this.step();
    await super.write(data, position);
  }
  override async truncate(size: number): Promise<void> {
    this.step();
    await super.truncate(size);
  }
}

const edit = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), at: fc.nat(30_000), length: fc.integer({ min: 1, max: 9000 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(40_000) }),
);

describe('commit journal', () => {
  it('after a kill at every step of a commit, and a record cut anywhere, the file is its old or its new version', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 4 }), fc.array(edit, { minLength: 1, maxLength: 4 }), fc.nat(), async (first, second, cutSeed) => {
        const dir = mkdtempSync(join(tmpdir(), 'sealfs-journal-'));
        dirs.push(dir);
        const base = new MemoryStore();
        let file = await SealedFileV2.create(base, KEY, { cipher: 'aes-256-gcm', chunkSize: 4096 });
        for (const e of first) {
          if (e.kind === 'write') await file.write(e.at, randomBytes(e.length));
          else await file.truncate(e.at);
        }
        await file.commit();
        const oldBytes = Uint8Array.from(base.bytes());
        const oldPlain = await file.read(0, file.size);

        // The same second batch, committed once cleanly to learn the new state and the op count.
        const batch = second.map((e) => (e.kind === 'write' ? { ...e, data: randomBytes(e.length) } : e));
        const apply = async (store: MemoryStore) => {
          const f = await SealedFileV2.open(store, KEY);
          for (const e of batch) {
            if (e.kind === 'write') await f.write(e.at, (e as { data: Uint8Array }).data);
            else await f.truncate(e.at);
          }
          return f;
        };
        const clean = new CrashingStore(oldBytes, Infinity);
        const cleanFile = await apply(clean);
        const plan = (await cleanFile.commit(journaledApplier(join(dir, 'clean'), 'x', cleanFile.header.fileId, false)))!;
        const newPlain = await cleanFile.read(0, cleanFile.size);
        const total = clean.operations;
        // Store operations before the record is complete: growing the file, and the bytes at or beyond its old end.
        const beforeRecord = (plan.newLength > plan.oldLength ? 1 : 0) + plan.ranges.filter((r) => r.offset + r.data.length > plan.oldLength).length;

        for (let allowed = 0; allowed <= total; allowed++) {
          const journal = join(dir, `j${allowed}`);
          const store = new CrashingStore(oldBytes, allowed);
          const f = await apply(store);
          let crashed = false;
          try {
            await f.commit(journaledApplier(journal, 'x', f.header.fileId, false));
          } catch (err) {
            if (!(err instanceof Crash)) throw err;
            crashed = true;
          }
          const records = crashed ? readdirSync(journal) : [];
          if (records.length === 1 && cutSeed % 3 === 0 && allowed <= beforeRecord) {
            // Killed while the rest of the record was being written (its intent, 99 bytes here,
            // was written before the first store operation): any longer prefix of it.
            const path = join(journal, records[0]!);
            const intent = 8 + 8 + 16 + 32 + 32 + 2 + 1;
            truncateSync(path, intent + (cutSeed % (statSync(path).size - intent + 1)));
          }
          const healed = new MemoryStore(store.bytes());
          await settleJournal(journal, async () => healed);
          const reopened = await SealedFileV2.open(healed, KEY);
          const plain = await reopened.read(0, reopened.size);
          const isOld = Buffer.from(plain).equals(Buffer.from(oldPlain));
          const isNew = Buffer.from(plain).equals(Buffer.from(newPlain));
          expect(isOld || isNew, `killed after ${allowed} of ${total} store operations`).toBe(true);
          if (!crashed) expect(isNew).toBe(true);
          expect(readdirSync(journal).length).toBe(0);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('leaves a record whose cipher file is gone or is another file alone, and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealfs-journal-'));
    dirs.push(dir);
    const store = new CrashingStore(new Uint8Array(0), Infinity);
    const file = await SealedFileV2.create(store, KEY, { cipher: 'aes-256-gcm', chunkSize: 4096 });
    const crashing = new CrashingStore(store.bytes(), 0);
    const again = await SealedFileV2.open(crashing, KEY);
    await again.write(0, randomBytes(10));
    await expect(again.commit(journaledApplier(dir, 'a/b', file.header.fileId, false))).rejects.toThrow(Crash);
    const other = new MemoryStore();
    await SealedFileV2.create(other, KEY, { cipher: 'aes-256-gcm', chunkSize: 4096 });
    expect(await settleJournal(dir, async () => other)).toEqual([{ cipherPath: 'a/b', outcome: 'skipped', detail: 'the cipher file is gone or is another file now' }]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('drops a record when a sync client brought another version of the file before settling', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealfs-journal-'));
    dirs.push(dir);
    const store = new MemoryStore();
    const file = await SealedFileV2.create(store, KEY, { cipher: 'aes-256-gcm', chunkSize: 4096 });
    await file.write(0, randomBytes(9000));
    await file.commit();
    // A commit killed after its first store operation leaves an intent.
    const crashing = new CrashingStore(store.bytes(), 1);
    const killed = await SealedFileV2.open(crashing, KEY);
    await killed.write(20_000, randomBytes(10));
    await expect(killed.commit(journaledApplier(dir, 'f', file.header.fileId, false))).rejects.toThrow(Crash);
    // Meanwhile another machine's newer version arrives in its place.
    const newer = new MemoryStore(store.bytes());
    const other = await SealedFileV2.open(newer, KEY);
    await other.write(5, randomBytes(3));
    await other.commit();
    const arrived = Uint8Array.from(newer.bytes());
    expect(await settleJournal(dir, async () => newer)).toEqual([{ cipherPath: 'f', outcome: 'skipped', detail: 'the cipher file holds another version now' }]);
    expect(Buffer.from(newer.bytes()).equals(Buffer.from(arrived))).toBe(true);
  });
});
