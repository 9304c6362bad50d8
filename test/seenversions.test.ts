/**
 * The seen-versions list (docs/FORMAT.md §21): verdicts, persistence across reopening,
 * compaction that keeps the last record of each file, and its size per file.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SeenVersions } from '../src/vault/seenversions.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function listPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealfs-seen-'));
  dirs.push(dir);
  return join(dir, 'vault.seen');
}

describe('seen versions', () => {
  it('says unseen, same, newer or rollback, and only ever raises a version unless one is accepted', async () => {
    const list = await SeenVersions.open(listPath());
    const id = randomBytes(16);
    expect(list.verdict(id, 3)).toEqual({ kind: 'unseen' });
    list.remember(id, 5);
    expect(list.verdict(id, 5)).toEqual({ kind: 'same' });
    expect(list.verdict(id, 7)).toEqual({ kind: 'newer', seen: 5 });
    expect(list.verdict(id, 4)).toEqual({ kind: 'rollback', seen: 5 });
    list.remember(id, 2);
    expect(list.seen(id)).toBe(5);
    list.accept(id, 2);
    expect(list.verdict(id, 2)).toEqual({ kind: 'same' });
  });

  it('keeps what it saw across reopening, before and after compaction, the last record winning', async () => {
    const path = listPath();
    const ids = Array.from({ length: 3000 }, () => randomBytes(16));
    let list = await SeenVersions.open(path);
    ids.forEach((id, i) => list.remember(id, i + 1));
    await list.flush();
    list = await SeenVersions.open(path);
    expect(ids.every((id, i) => list.seen(id) === i + 1)).toBe(true);
    list.accept(ids[7]!, 1);
    list.remember(ids[8]!, 10_000);
    await list.flush();
    list = await SeenVersions.open(path);
    expect([list.seen(ids[7]!), list.seen(ids[8]!), list.seen(ids[9]!)]).toEqual([1, 10_000, 10]);
    await list.compact();
    list = await SeenVersions.open(path);
    expect([list.seen(ids[7]!), list.seen(ids[8]!), list.seen(ids[9]!), list.seen(randomBytes(16))]).toEqual([1, 10_000, 10, undefined]);
    expect(list.size).toBe(3000);
    // 24 bytes per file plus a 16-byte head once compacted: 24 MB per million files.
    expect(statSync(path).size).toBe(16 + 24 * 3000);
  });

  it('ignores a record cut short by a crash, and refuses a file that is not a list', async () => {
    const path = listPath();
    const list = await SeenVersions.open(path);
    const id = randomBytes(16);
    list.remember(id, 4);
    await list.flush();
    writeFileSync(path, Buffer.from([1, 2, 3]), { flag: 'a' });
    expect((await SeenVersions.open(path)).seen(id)).toBe(4);
    writeFileSync(path, 'not a list at all');
    await expect(SeenVersions.open(path)).rejects.toThrow(/not a sealfs seen-versions file/);
  });
});
