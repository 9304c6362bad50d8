/**
 * Two machines, one vault, a real sync client in between: two Syncthing instances on
 * 127.0.0.1 (each with its own home; no discovery, relays, NAT, usage or crash reporting,
 * no upgrades) sync cipher folder A ↔ cipher folder B, and sealfs mounts A and B with the
 * same key, each served by its own `sealfs mount` process. Syncthing is driven only through
 * its REST API (config, pause/resume of the peer device, scan, status, completion), with a
 * time limit on every call.
 *
 * Every scenario counts the files it wrote and asserts that none is lost: each one must be
 * readable, with exactly the bytes written, through BOTH mounts afterwards (under its own
 * name, or as a marked conflict copy where the sync client made one).
 *
 * Both instances are stopped and both mounts are taken down at the end, also on failure.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Dirent } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuseProblem, Mounts, sleep, mountsUnder, forceUnmount, initVault, SealfsCli, SyncthingPair, syncthingProblem, type VaultFiles } from './helpers-syncthing.js';

const FUSE = fuseProblem();
const SYNCTHING = syncthingProblem();
if (FUSE) console.warn(`sync-syncthing: skipped: ${FUSE}`);

const MiB = 1024 * 1024;
const BIG_BYTES = 200 * MiB;
const STORED_CHUNK = 65536 + 28;

let root = '';
let cli: SealfsCli | undefined;
let mounts: Mounts | undefined;
let pair: SyncthingPair | undefined;
let A = ''; // mount point of replica A
let B = ''; // mount point of replica B
let cipherA = '';
let cipherB = '';

interface Outcome {
  scenario: string;
  files: number;
  lostOnA: number;
  lostOnB: number;
  seconds: number;
  note?: string;
}
const outcomes: Outcome[] = [];

/** Writes a file through a mount and makes sure it reached the cipher folder (fsync) before closing. */
async function put(path: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Every regular file under `dir` (through a mount): relative path → sha256 of its bytes; plus symlinks. */
async function snapshot(dir: string): Promise<{ files: Map<string, string>; links: Map<string, string>; undecryptable: string[] }> {
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  const undecryptable: string[] = [];
  const walk = async (at: string) => {
    let entries: Dirent[];
    try {
      entries = await readdir(at, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const entry of entries) {
      const path = join(at, entry.name);
      const rel = relative(dir, path);
      if (entry.name.startsWith('UNDECRYPTABLE ')) undecryptable.push(rel);
      const st = await lstat(path);
      if (st.isDirectory()) await walk(path);
      else if (st.isSymbolicLink()) links.set(rel, await readlink(path));
      else files.set(rel, sha(await readFile(path)));
    }
  };
  await walk(dir);
  return { files, links, undecryptable };
}

/** How many of the expected contents are found nowhere in the snapshot. */
function lostCount(expected: Iterable<Uint8Array | string>, snap: { files: Map<string, string> }): number {
  const present = new Set(snap.files.values());
  let lost = 0;
  for (const content of expected) if (!present.has(sha(typeof content === 'string' ? Buffer.from(content) : content))) lost++;
  return lost;
}

/** Snapshots a scenario folder on both replicas, records and asserts zero lost files. */
async function account(scenario: string, sub: string, expected: (Uint8Array | string)[], started: number, note?: string) {
  const onA = await snapshot(join(A, sub));
  const onB = await snapshot(join(B, sub));
  const outcome: Outcome = {
    scenario,
    files: expected.length,
    lostOnA: lostCount(expected, onA),
    lostOnB: lostCount(expected, onB),
    seconds: Math.round((Date.now() - started) / 100) / 10,
    ...(note ? { note } : {}),
  };
  outcomes.push(outcome);
  expect(onA.undecryptable, 'undecryptable names on A').toEqual([]);
  expect(onB.undecryptable, 'undecryptable names on B').toEqual([]);
  expect({ lostOnA: outcome.lostOnA, lostOnB: outcome.lostOnB }, `${scenario}: lost files`).toEqual({ lostOnA: 0, lostOnB: 0 });
  return { onA, onB };
}

const sorted = (map: Map<string, unknown>) => [...map.keys()].sort();

/**
 * How long a mount may show an old view of its cipher folder after a sync client changed
 * it: the directory listing cache (LISTING_TTL_MS, 1 s) plus the kernel's entry and
 * attribute timeouts (1 s), plus a margin.
 */
const STALE_MS = 2200;

/** Waits until both replicas agree in Syncthing, then until both mounts show it. */
async function settle(timeoutMs = 60_000): Promise<void> {
  await pair!.waitInSync(timeoutMs);
  await sleep(STALE_MS);
}

/** Runs `work` with the two replicas offline from each other; always reconnects them. */
async function whilePaused(work: () => Promise<void>): Promise<void> {
  await pair!.pause();
  try {
    await work();
    // Both sides have recorded their offline changes before they meet again.
    await pair!.scan(pair!.a);
    await pair!.scan(pair!.b);
  } finally {
    await pair!.resume();
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-sync-'));
  if (FUSE || SYNCTHING) return;
  cli = await SealfsCli.create(join(root, 'cli'));
  mounts = new Mounts(cli);
  cipherA = join(root, 'A', 'cipher');
  cipherB = join(root, 'B', 'cipher');
  A = join(root, 'A', 'plain');
  B = join(root, 'B', 'plain');
  await mkdir(cipherB, { recursive: true });
  await mkdir(join(root, 'A'), { recursive: true });
  const keystore = join(root, 'keystore');
  const vaultA: VaultFiles = { cipher: cipherA, keystore, pass: join(root, 'pass') };
  const vaultB: VaultFiles = { ...vaultA, cipher: cipherB };
  await initVault(cli, vaultA);
  pair = await SyncthingPair.start(root, cipherA, cipherB);
  // B receives the vault file from A through Syncthing, like a second machine would.
  await pair.waitInSync(60_000);
  await mounts.mount(vaultA, A);
  await mounts.mount(vaultB, B);
}, 240_000);

afterAll(async () => {
  try {
    await mounts?.cleanup();
  } finally {
    await pair?.stop();
    // Never delete through a mount that is still there.
    for (const mnt of root ? await mountsUnder(root) : []) await forceUnmount(mnt);
    if (outcomes.length) {
      console.log(
        'sync-syncthing scenarios (files written; lost on A / on B; seconds):\n' +
          outcomes.map((o) => `  ${o.scenario}: ${o.files} files, lost ${o.lostOnA}/${o.lostOnB}, ${o.seconds} s${o.note ? ` (${o.note})` : ''}`).join('\n'),
      );
    }
    if (root && (await mountsUnder(root)).length === 0) await rm(root, { recursive: true, force: true });
  }
}, 120_000);

describe('Syncthing is available (scripts/setup.sh installs it)', () => {
  it.skipIf(FUSE !== undefined)('syncthing runs', () => {
    expect(SYNCTHING).toBeUndefined();
  });
});

describe.skipIf(FUSE !== undefined || SYNCTHING !== undefined)('two replicas of one vault synced by real Syncthing instances', { timeout: 180_000 }, () => {
  it('write on A, read on B (small, multi-chunk, empty, long-named files, a symlink, nested folders)', async () => {
    const started = Date.now();
    const longName = `${'a long file name that needs the long-name scheme '.repeat(3)}.txt`;
    const files: Record<string, Uint8Array | string> = {
      'hello.txt': 'hello from A\n',
      'multi-chunk.bin': randomBytes(3 * 65536 + 777),
      'empty': '',
      [longName]: 'long name content',
      'nested/deeper/inner.txt': 'inner',
    };
    await mkdir(join(A, 's1', 'nested', 'deeper'), { recursive: true });
    for (const [name, data] of Object.entries(files)) await put(join(A, 's1', name), data);
    await symlink('hello.txt', join(A, 's1', 'link'));
    await settle();
    const { onB } = await account('write on A → read on B', 's1', Object.values(files), started);
    expect(sorted(onB.files)).toEqual(Object.keys(files).sort());
    for (const [name, data] of Object.entries(files)) expect(onB.files.get(name)).toBe(sha(typeof data === 'string' ? Buffer.from(data) : data));
    expect(onB.links.get('link')).toBe('hello.txt');
    expect(await readFile(join(B, 's1', 'link'), 'utf8')).toBe('hello from A\n');
    // The long name really went through the long-name scheme on both sides.
    const cipherNames = await readdir(join(cipherB, (await readdir(cipherB)).find((n) => n !== 'sealfs.vault' && !n.startsWith('.'))!));
    expect(cipherNames.some((n) => n.endsWith('.sfl'))).toBe(true);
  });

  it('the same file edited on both while paused: both versions readable on both, one as a conflict copy (short and long names)', async () => {
    const started = Date.now();
    // A name beyond the long-name threshold: Syncthing inserts its conflict text before ".sfl".
    const long = `${'quarterly report with a very long descriptive name '.repeat(3).trim()}.txt`;
    await mkdir(join(A, 's2'));
    await put(join(A, 's2', 'report.txt'), 'original\n');
    await put(join(A, 's2', long), 'original long\n');
    await settle();
    const fromA = `edited on A ${randomBytes(8).toString('hex')}\n`;
    const fromB = `edited on B, a different length ${randomBytes(8).toString('hex')}\n`;
    const longA = `long name edited on A ${randomBytes(8).toString('hex')}\n`;
    const longB = `long name edited on B, longer ${randomBytes(8).toString('hex')}\n`;
    await whilePaused(async () => {
      await put(join(A, 's2', 'report.txt'), fromA);
      await put(join(B, 's2', 'report.txt'), fromB);
      await put(join(A, 's2', long), longA);
      await put(join(B, 's2', long), longB);
    });
    await settle();
    const { onA, onB } = await account('same file edited on both while paused', 's2', [fromA, fromB, longA, longB], started);
    const longStem = long.slice(0, -'.txt'.length);
    for (const snap of [onA, onB]) {
      const names = sorted(snap.files);
      expect(names).toHaveLength(4);
      expect(names).toContain('report.txt');
      expect(names).toContain(long);
      const copies = names.filter((n) => n !== 'report.txt' && n !== long);
      expect(copies.find((n) => n.startsWith('report '))).toMatch(/^report \(conflict .+\)\.txt$/);
      expect(copies.find((n) => n.startsWith(longStem))).toMatch(/^quarterly report .* \(conflict .+\)\.txt$/);
    }
    expect(onA.files).toEqual(onB.files);
    // The long name's conflict copy is an .sfl entry with Syncthing's text before the extension.
    const s2cipher = (await readdir(cipherA)).filter((n) => n !== 'sealfs.vault' && !n.startsWith('.'));
    const inS2 = (await Promise.all(s2cipher.map((d) => readdir(join(cipherA, d)).catch(() => [] as string[])))).flat();
    expect(inS2.some((n) => /^[a-z2-7]{26}\.sync-conflict-\d{8}-\d{6}-[A-Z0-9]{7}\.sfl$/.test(n))).toBe(true);

    // A conflict copy is an ordinary file in the mount: rename it to a real name on B.
    const renamedAt = Date.now();
    const copy = sorted(onB.files).find((n) => n.startsWith('report ('))!;
    const copyBytes = await readFile(join(B, 's2', copy));
    await rename(join(B, 's2', copy), join(B, 's2', 'report (kept).txt'));
    await settle();
    const after = await account('conflict copy renamed to a real name', 's2', [fromA, fromB, longA, longB], renamedAt);
    for (const snap of [after.onA, after.onB]) expect(sorted(snap.files).filter((n) => n.startsWith('report'))).toEqual(['report (kept).txt', 'report.txt']);
    expect(await readFile(join(A, 's2', 'report (kept).txt'))).toEqual(copyBytes);
  });

  it('the same new directory with different files on both while paused: all files readable on both', async () => {
    const started = Date.now();
    await mkdir(join(A, 's3'));
    await settle();
    const onlyA = { 'a1.txt': 'a1 from A', 'a2.bin': randomBytes(100_000) };
    const onlyB = { 'b1.txt': 'b1 from B', 'b2.bin': randomBytes(70_000) };
    const sameA = 'same.txt written on A';
    const sameB = 'same.txt written on B (longer)';
    await whilePaused(async () => {
      for (const [side, only, same] of [[A, onlyA, sameA], [B, onlyB, sameB]] as const) {
        await mkdir(join(side, 's3', 'Shared', 'sub'), { recursive: true });
        for (const [name, data] of Object.entries(only)) await put(join(side, 's3', 'Shared', 'sub', name), data);
        await put(join(side, 's3', 'Shared', 'same.txt'), same);
      }
    });
    await settle();
    const expected = [...Object.values(onlyA), ...Object.values(onlyB), sameA, sameB];
    const { onA, onB } = await account('same new directory created on both while paused', 's3', expected, started);
    for (const snap of [onA, onB]) {
      const names = sorted(snap.files);
      expect(names.filter((n) => n.startsWith('Shared/sub/'))).toEqual(['Shared/sub/a1.txt', 'Shared/sub/a2.bin', 'Shared/sub/b1.txt', 'Shared/sub/b2.bin']);
      expect(names.filter((n) => !n.startsWith('Shared/sub/'))).toHaveLength(2);
    }
    // Both replicas derived the same directory id, so the sync client merged one directory.
    expect((await readdir(join(A, 's3'))).sort()).toEqual(['Shared']);
    expect((await readdir(join(B, 's3'))).sort()).toEqual(['Shared']);
  });

  it('delete on A → gone on B (a file and a whole tree), the rest kept', async () => {
    const started = Date.now();
    await mkdir(join(A, 's4', 'tree', 'sub'), { recursive: true });
    await put(join(A, 's4', 'keep.txt'), 'keep me');
    await put(join(A, 's4', 'delete.txt'), 'delete me');
    await put(join(A, 's4', 'tree', 'sub', 'x.txt'), 'x');
    await settle();
    expect(sorted((await snapshot(join(B, 's4'))).files)).toEqual(['delete.txt', 'keep.txt', 'tree/sub/x.txt']);
    await unlink(join(A, 's4', 'delete.txt'));
    await rm(join(A, 's4', 'tree'), { recursive: true });
    await settle();
    const { onB } = await account('delete on A → gone on B', 's4', ['keep me'], started);
    expect(sorted(onB.files)).toEqual(['keep.txt']);
    expect((await readdir(join(B, 's4'))).sort()).toEqual(['keep.txt']);
  });

  it('rename a tree on A → moved on B', async () => {
    const started = Date.now();
    const files = { 'a.txt': 'a', 'sub/b.bin': randomBytes(200_000), 'sub/deeper/c.txt': 'c' };
    await mkdir(join(A, 's5', 'tree', 'sub', 'deeper'), { recursive: true });
    await mkdir(join(A, 's5', 'elsewhere'));
    for (const [name, data] of Object.entries(files)) await put(join(A, 's5', 'tree', name), data);
    await settle();
    await rename(join(A, 's5', 'tree'), join(A, 's5', 'elsewhere', 'moved tree'));
    await settle();
    const { onB } = await account('rename a tree on A → moved on B', 's5', Object.values(files), started);
    expect(sorted(onB.files)).toEqual(Object.keys(files).map((n) => `elsewhere/moved tree/${n}`).sort());
    expect((await readdir(join(B, 's5'))).sort()).toEqual(['elsewhere']);
  });

  it('one side renames a directory while the other adds a file into it (paused): every file readable on both', async () => {
    const started = Date.now();
    await mkdir(join(A, 's6', 'project', 'docs'), { recursive: true });
    await put(join(A, 's6', 'project', 'plan.txt'), 'the plan');
    await put(join(A, 's6', 'project', 'docs', 'spec.txt'), 'the spec');
    await settle();
    await whilePaused(async () => {
      await rename(join(A, 's6', 'project'), join(A, 's6', 'project-renamed'));
      await put(join(B, 's6', 'project', 'added on B.txt'), 'added on B while A renamed the folder');
      await put(join(B, 's6', 'project', 'docs', 'notes.txt'), 'notes added on B');
    });
    await settle();
    const expected = ['the plan', 'the spec', 'added on B while A renamed the folder', 'notes added on B'];
    const { onA, onB } = await account('rename on A while B adds into the folder', 's6', expected, started);
    expect(onA.files).toEqual(onB.files);
    outcomes[outcomes.length - 1]!.note = `ended as: ${sorted(onA.files).join(', ')}`;
  });

  it('a file deleted on A while B edited it (paused): the edit survives on both', async () => {
    const started = Date.now();
    await mkdir(join(A, 's8'));
    await put(join(A, 's8', 'contested.txt'), 'first version');
    await settle();
    await whilePaused(async () => {
      await unlink(join(A, 's8', 'contested.txt'));
      await put(join(B, 's8', 'contested.txt'), 'edited on B while A deleted it');
    });
    await settle();
    const { onA } = await account('delete on A vs edit on B', 's8', ['edited on B while A deleted it'], started);
    expect(sorted(onA.files)).toEqual(['contested.txt']);
  });

  it(`a ${BIG_BYTES / MiB} MiB file updated in place on A (1 MiB writes at offsets) has the same sha256 on B`, { timeout: 240_000 }, async () => {
    const started = Date.now();
    const big = Buffer.alloc(BIG_BYTES);
    for (let at = 0; at < BIG_BYTES; at += MiB) randomBytes(MiB).copy(big, at);
    await mkdir(join(A, 's7'));
    {
      const handle = await open(join(A, 's7', 'big.bin'), 'w');
      try {
        for (let at = 0; at < BIG_BYTES; at += 4 * MiB) await handle.write(big, at, Math.min(4 * MiB, BIG_BYTES - at), at);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    await settle(120_000);
    expect(await hashFile(join(B, 's7', 'big.bin'))).toBe(sha(big));

    const cipherFile = await onlyFileUnder(cipherA, BIG_BYTES);
    const before = await readFile(cipherFile);
    const offsets = [0, 50 * MiB + 123, 137 * MiB + 4097, BIG_BYTES - MiB];
    {
      const handle = await open(join(A, 's7', 'big.bin'), 'r+');
      try {
        for (const offset of offsets) {
          const patch = randomBytes(MiB);
          patch.copy(big, offset);
          await handle.write(patch, 0, MiB, offset);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    const after = await readFile(cipherFile);
    const changed = changedChunks(before, after);
    await settle(120_000);
    const expected = sha(big);
    expect(await hashFile(join(A, 's7', 'big.bin'))).toBe(expected);
    expect(await hashFile(join(B, 's7', 'big.bin'))).toBe(expected);
    // Only the chunks the writes touched were re-sealed (17 per unaligned 1 MiB write, 16 aligned).
    expect(changed).toBeLessThanOrEqual(offsets.length * 17);
    outcomes.push({
      scenario: `${BIG_BYTES / MiB} MiB file updated in place on A`,
      files: 1,
      lostOnA: 0,
      lostOnB: 0,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      note: `identical sha256 on A and B; ${changed} of ${Math.ceil(BIG_BYTES / 65536)} stored chunks re-sealed for ${offsets.length} × 1 MiB writes`,
    });
  });
});

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(4 * MiB);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** The one ciphertext file of at least `minSize` bytes under a cipher folder. */
async function onlyFileUnder(dir: string, minSize: number): Promise<string> {
  const found: string[] = [];
  const walk = async (at: string) => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && (await lstat(path)).size >= minSize) found.push(path);
    }
  };
  await walk(dir);
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** Stored chunks (64 KiB + 28) that differ between two versions of a ciphertext file. */
function changedChunks(before: Buffer, after: Buffer): number {
  let changed = 0;
  const end = Math.max(before.length, after.length);
  for (let at = 24; at < end; at += STORED_CHUNK) {
    const a = before.subarray(at, Math.min(at + STORED_CHUNK, before.length));
    const b = after.subarray(at, Math.min(at + STORED_CHUNK, after.length));
    if (!a.equals(b)) changed++;
  }
  return changed;
}
