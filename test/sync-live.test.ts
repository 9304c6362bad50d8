/**
 * Live changes from a sync client while the vault is mounted. The "other machine" is a
 * second replica of the vault (same key) that this test process writes with PlainFs, no
 * mount; the "sync client" is this test copying the resulting ciphertext into the mounted
 * cipher folder the way sync clients do (a temporary file renamed into place, renames,
 * deletes), with plain node fs calls. The mount is served by a `sealfs mount` child process.
 *
 * The documented bound: a change a sync client makes in the cipher folder shows through the
 * mount within twice the cache time, 2 s by default (a directory listing is trusted for the
 * cache time, MountSettings.listingTtlMs; the kernel keeps entries and attributes as long,
 * attr_timeout/entry_timeout; an open file checks its ciphertext as often, revalidateMs).
 * This file mounts with a short cache time (`--cache-time`, CACHE_MS) so as not to wait
 * seconds for every change; mount-faults checks the default 2 s bound. The test polls every
 * 50 ms and requires each change within the bound plus 0.5 s, then keeps polling for three
 * cache times: once seen, the new state never flips back.
 * Reads of multi-chunk files made while a file is replaced return the old or the new
 * version, whole, never a mix (while the sync client rewrites a file in place, a read may
 * also fail or end early, but never returns bytes of both versions).
 *
 * One test reproduces a known limitation and runs only with SEALFS_TEST_KNOWN_BUGS=1:
 * concurrent readers share one kernel page cache per path, so while a file is replaced a
 * read may get pages another program brought in from the other version.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlainFs } from '../src/vault/plainfs.js';
import { parseRecoveryKey } from '../src/vault/recovery.js';
import { openVault, type Vault } from '../src/vault/vault.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import { forceUnmount, fuseProblem, initVault, Mounts, mountsUnder, SealfsCli, sleep, type VaultFiles } from './helpers-syncthing.js';
import { SHORT_CACHE_ARGS, SHORT_CACHE_MS } from './mount-helpers.js';

const FUSE = fuseProblem();
if (FUSE) console.warn(`sync-live: skipped: ${FUSE}`);

/** The mount's cache time (--cache-time): every cache of the mount expires after it. */
const CACHE_MS = SHORT_CACHE_MS;
/** The documented bound is twice the cache time; allow 0.5 s for the polling itself and a loaded machine. */
const LIMIT_MS = 2 * CACHE_MS + 500;
const POLL_MS = 50;
/** How long a change, once seen, is watched for flipping back. */
const WATCH_MS = 3 * CACHE_MS;

let root = '';
let cli: SealfsCli | undefined;
let mounts: Mounts | undefined;
let mnt = '';
let cipher = '';
let replicaDir = '';
let replica: PlainFs;
let replicaVault: Vault;
const latencies: { change: string; ms: number }[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-live-'));
  if (FUSE) return;
  cli = await SealfsCli.create(join(root, 'cli'));
  mounts = new Mounts(cli);
  cipher = join(root, 'cipher');
  mnt = join(root, 'plain');
  const v: VaultFiles = { cipher, keystore: join(root, 'keystore'), pass: join(root, 'pass') };
  const recoveryKey = await initVault(cli, v);
  // The other machine: a replica with the same vault file and key, written without a mount.
  replicaDir = join(root, 'replica');
  await mkdir(replicaDir);
  await copyFile(join(cipher, VAULT_FILE), join(replicaDir, VAULT_FILE));
  replicaVault = await openVault(replicaDir, parseRecoveryKey(recoveryKey), { backend: 'node' });
  replica = new PlainFs(replicaVault);
  await mounts.mount(v, mnt, [...SHORT_CACHE_ARGS]);
}, 240_000);

afterAll(async () => {
  try {
    await replica?.releaseAll();
    await mounts?.cleanup();
  } finally {
    for (const m of root ? await mountsUnder(root) : []) await forceUnmount(m);
    if (latencies.length) console.log(`sync-live: change → visible through the mount (ms): ${latencies.map((l) => `${l.change} ${l.ms}`).join(', ')}`);
    if (root && (await mountsUnder(root)).length === 0) await rm(root, { recursive: true, force: true });
  }
}, 120_000);

// ---------------------------------------------------------------- the other machine

/** Writes a whole file on the other replica, editor style: a new file renamed over the old (a new file id). */
async function replicaPut(path: string, data: Uint8Array): Promise<void> {
  const temp = `${path}.writing`;
  const fh = await replica.create(temp, 0o644);
  try {
    if (data.length) await replica.write(fh, 0, data);
    await replica.fsync(fh);
  } finally {
    await replica.release(fh);
  }
  await replica.rename(temp, path);
}

/** Path of a plaintext entry's ciphertext, relative to the cipher folder (the same on both replicas). */
async function cipherRel(plainPath: string): Promise<string> {
  const found = await replicaVault.tree.resolve(plainPath);
  return relative(replicaDir, found.cipherPath);
}

/** The sync client delivers one ciphertext file: a temporary file renamed into place. */
async function deliver(rel: string): Promise<void> {
  const temp = join(cipher, dirname(rel), `.syncthing.${basename(rel)}.tmp`);
  await copyFile(join(replicaDir, rel), temp);
  await rename(temp, join(cipher, rel));
}

// ---------------------------------------------------------------- watching the mount

async function readOrCode(path: string): Promise<Buffer | string> {
  try {
    return await readFile(path);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

async function names(path: string): Promise<string[] | string> {
  try {
    return (await readdir(path)).sort();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

/**
 * Polls `check` every POLL_MS from `since` (when the change was made): it must hold within
 * LIMIT_MS and then keep holding for WATCH_MS. Returns the delay until it first held.
 */
async function visibleWithin(change: string, since: number, check: () => Promise<boolean>): Promise<number> {
  let seenAt: number | undefined;
  for (;;) {
    const ok = await check();
    const now = Date.now();
    if (ok && seenAt === undefined) seenAt = now;
    if (!ok && seenAt !== undefined) expect.fail(`${change}: seen after ${seenAt - since} ms, then gone again ${now - since} ms after the change (stale view came back)`);
    if (!ok && now - since > LIMIT_MS) expect.fail(`${change}: not visible through the mount ${now - since} ms after the change (limit ${LIMIT_MS} ms)`);
    if (seenAt !== undefined && now - seenAt >= WATCH_MS) break;
    await sleep(POLL_MS);
  }
  latencies.push({ change, ms: seenAt - since });
  return seenAt - since;
}

const same = (a: Buffer | string, b: Uint8Array) => Buffer.isBuffer(a) && a.equals(b);

/** Two versions of a multi-chunk file that differ in every chunk and in length. */
function versions(): [Buffer, Buffer] {
  return [randomBytes(17 * 65536 + 333), randomBytes(18 * 65536 + 70_000)];
}

interface Read {
  start: number;
  end: number;
  what: string;
}

/** One whole-file read through the mount: 'old', 'new', an error code, or MIXED (anything else). */
async function classify(path: string, old: Uint8Array, fresh: Uint8Array): Promise<Read> {
  const start = Date.now();
  const got = await readOrCode(path);
  const what = typeof got === 'string' ? got : same(got, old) ? 'old' : same(got, fresh) ? 'new' : `MIXED (${describeMix(got, old, fresh)})`;
  return { start, end: Date.now(), what };
}

function describeMix(got: Buffer, old: Uint8Array, fresh: Uint8Array): string {
  const prefixOf = (v: Uint8Array) => got.length < v.length && got.equals(v.subarray(0, got.length));
  const what = prefixOf(fresh) ? 'the start of the new version' : prefixOf(old) ? 'the start of the old version' : 'bytes of both versions, or of neither';
  return `${got.length} bytes: ${what}; old ${old.length}, new ${fresh.length} bytes`;
}

/**
 * Puts `old` in place (delivered by the sync client), then reads the file through the mount
 * in a loop (`readers` loops at once) while `replace` makes the sync client put `fresh` in
 * its place. Checks that the new version shows within LIMIT_MS; that no read ever returned
 * anything but one whole version; and that once a loop has read the new version, no read
 * started after that returned the old one. Reads that fail (an error code) are allowed
 * only while a file is being rewritten in place.
 */
async function replaceWhileReading(
  change: string,
  name: string,
  old: Uint8Array,
  fresh: Uint8Array,
  replace: () => Promise<void>,
  options: { readers?: number; partialBefore?: () => number } = {},
): Promise<Read[]> {
  const readers = options.readers ?? 1;
  await replicaPut(`/${name}`, old);
  await deliver(await cipherRel(`/${name}`));
  const path = join(mnt, name);
  await visibleWithin(`${change}: first version`, Date.now(), async () => same(await readOrCode(path), old));
  const reads: Read[][] = Array.from({ length: readers }, () => []);
  let since = Number.POSITIVE_INFINITY;
  let firstNew: number | undefined;
  let running = true;
  const loops = reads.map(async (mine) => {
    while (running) {
      const read = await classify(path, old, fresh);
      mine.push(read);
      if (read.what === 'new' && read.start > since) firstNew ??= read.end;
      if (firstNew !== undefined && Date.now() - firstNew >= WATCH_MS) running = false;
      if (Date.now() - since > LIMIT_MS + WATCH_MS) running = false;
    }
  });
  await sleep(300);
  since = Date.now();
  await replace();
  await Promise.all(loops);
  const all = reads.flat();
  // A file that the sync client is still rewriting in place is, for that moment, a shorter
  // file: a read then may end early (the kernel trusts the size it was told for up to the cache time),
  // but what it returns is the start of one version, never bytes of both.
  const partial = (r: Read) => options.partialBefore !== undefined && r.start < options.partialBefore() && /the start of the (new|old) version/.test(r.what);
  const mixed = all.filter((r) => r.what.startsWith('MIXED') && !partial(r));
  expect(mixed, `${change}: reads that returned neither version whole`).toEqual([]);
  expect(firstNew, `${change}: the new version was not read within ${LIMIT_MS} ms`).toBeDefined();
  expect(firstNew! - since, `${change}: delay until the new version showed`).toBeLessThanOrEqual(LIMIT_MS);
  latencies.push({ change, ms: firstNew! - since });
  for (const mine of reads) {
    const seen = mine.find((r) => r.what === 'new' && r.start > since);
    const staleAfter = mine.filter((r) => seen && r.start > seen.end && r.what !== 'new');
    expect(staleAfter, `${change}: reads after this reader had seen the new version`).toEqual([]);
  }
  expect(all.filter((r) => r.what === 'old').length, `${change}: the old version was read before the change`).toBeGreaterThan(0);
  return all;
}

/** Known sealfs bugs found by this file: their tests run only with SEALFS_TEST_KNOWN_BUGS=1 (see each test). */
const KNOWN_BUGS = process.env.SEALFS_TEST_KNOWN_BUGS === '1';

describe.skipIf(FUSE !== undefined)('changes made by a sync client in the mounted cipher folder', { timeout: 60_000 }, () => {
  it('a file added to the cipher folder shows up within the bound', async () => {
    const data = randomBytes(3 * 65536 + 5);
    // Let the mount see (and cache) the folder without the file first.
    expect(await names(mnt)).not.toContain('added.bin');
    expect(await readOrCode(join(mnt, 'added.bin'))).toBe('ENOENT');
    await replicaPut('/added.bin', data);
    const since = Date.now();
    await deliver(await cipherRel('/added.bin'));
    await visibleWithin('file added', since, async () => same(await readOrCode(join(mnt, 'added.bin')), data) && (await names(mnt)).includes('added.bin'));
  });

  it('a directory with files added to the cipher folder shows up within the bound', async () => {
    const inner = randomBytes(100_000);
    await replica.mkdir('/new folder', 0o755);
    await replicaPut('/new folder/inner.bin', inner);
    await replica.mkdir('/new folder/sub', 0o755);
    await replicaPut('/new folder/sub/deep.txt', Buffer.from('deep'));
    expect(await names(mnt)).not.toContain('new folder');
    const since = Date.now();
    // A sync client creates the directory, then delivers its files.
    await mkdir(join(cipher, await cipherRel('/new folder')));
    await mkdir(join(cipher, await cipherRel('/new folder/sub')));
    await deliver(await cipherRel('/new folder/inner.bin'));
    await deliver(await cipherRel('/new folder/sub/deep.txt'));
    await visibleWithin('directory added', since, async () => {
      const list = await names(join(mnt, 'new folder'));
      return Array.isArray(list) && list.join('/') === 'inner.bin/sub' && same(await readOrCode(join(mnt, 'new folder', 'inner.bin')), inner) && same(await readOrCode(join(mnt, 'new folder', 'sub', 'deep.txt')), Buffer.from('deep'));
    });
  });

  it('a file replaced by rename-over shows the new version within the bound, never mixed with the old', async () => {
    const [v1, v2] = versions();
    const reads = await replaceWhileReading('file replaced (rename over)', 'doc.bin', v1, v2, async () => {
      await replicaPut('/doc.bin', v2);
      await deliver(await cipherRel('/doc.bin'));
    });
    expect(reads.filter((r) => !['old', 'new'].includes(r.what)), 'failed reads').toEqual([]);
    expect((await stat(join(mnt, 'doc.bin'))).size).toBe(v2.length);
  });

  it('a file rewritten in place by the sync client (same inode) shows the new version, never mixed', async () => {
    const [v1, v2] = versions();
    let rewritten = Number.POSITIVE_INFINITY;
    await replaceWhileReading(
      'file rewritten in place',
      'inplace.bin',
      v1,
      v2,
      async () => {
        const rel = await cipherRel('/inplace.bin');
        const inode = (await stat(join(cipher, rel))).ino;
        // rsync --inplace style: the same ciphertext file truncated and rewritten. While it is
        // half-written there is no whole version to read: an error (EIO) or a read that ends
        // early is right then, bytes of two versions never are.
        await replicaPut('/inplace.bin', v2);
        await writeFile(join(cipher, rel), await readFile(join(replicaDir, rel)));
        rewritten = Date.now();
        expect((await stat(join(cipher, rel))).ino).toBe(inode);
      },
      { partialBefore: () => rewritten + 1000 },
    );
  });

  /**
   * KNOWN BUG (reported with this test): two programs reading one file while the sync client
   * replaces it can get a mix of both versions. A handle opened before the replacement reads
   * the old ciphertext, one opened after reads the new, but the kernel keeps ONE page cache
   * per path (libfuse's high-level API gives a path one inode), so pages of both versions
   * end up in it and either reader can get some of each.
   */
  it.runIf(KNOWN_BUGS)('KNOWN BUG: three readers while the file is replaced: each read is one whole version', async () => {
    for (const round of [1, 2, 3]) {
      const [v1, v2] = versions();
      const name = `shared-${round}.bin`;
      await replaceWhileReading(`file replaced under three readers (${round})`, name, v1, v2, async () => {
        await replicaPut(`/${name}`, v2);
        await deliver(await cipherRel(`/${name}`));
      }, { readers: 3 });
    }
  });

  it('a file renamed in the cipher folder moves in the mount within the bound', async () => {
    const data = await readFile(join(mnt, 'added.bin'));
    const from = await cipherRel('/added.bin');
    await replica.rename('/added.bin', '/renamed.bin');
    const to = await cipherRel('/renamed.bin');
    expect(to).not.toBe(from);
    const since = Date.now();
    await rename(join(cipher, from), join(cipher, to));
    await visibleWithin('file renamed', since, async () => {
      const list = await names(mnt);
      return same(await readOrCode(join(mnt, 'renamed.bin')), data) && (await readOrCode(join(mnt, 'added.bin'))) === 'ENOENT' && Array.isArray(list) && list.includes('renamed.bin') && !list.includes('added.bin');
    });
  });

  it('a file deleted from the cipher folder disappears within the bound', async () => {
    const rel = await cipherRel('/renamed.bin');
    await replica.unlink('/renamed.bin');
    expect(await names(mnt)).toContain('renamed.bin');
    const since = Date.now();
    await unlink(join(cipher, rel));
    await visibleWithin('file deleted', since, async () => (await readOrCode(join(mnt, 'renamed.bin'))) === 'ENOENT' && !(await names(mnt)).includes('renamed.bin'));
  });

  it('a directory renamed in the cipher folder moves in the mount, with everything in it', async () => {
    const from = await cipherRel('/new folder');
    await replica.rename('/new folder', '/moved folder');
    const to = await cipherRel('/moved folder');
    const since = Date.now();
    await rename(join(cipher, from), join(cipher, to));
    await visibleWithin('directory renamed', since, async () => {
      const list = await names(mnt);
      return (
        Array.isArray(list) &&
        list.includes('moved folder') &&
        !list.includes('new folder') &&
        (await readOrCode(join(mnt, 'new folder', 'inner.bin'))) === 'ENOENT' &&
        same(await readOrCode(join(mnt, 'moved folder', 'sub', 'deep.txt')), Buffer.from('deep'))
      );
    });
  });

  it('a directory deleted from the cipher folder disappears within the bound', async () => {
    const rel = await cipherRel('/moved folder');
    const since = Date.now();
    await rm(join(cipher, rel), { recursive: true });
    await visibleWithin('directory deleted', since, async () => !(await names(mnt)).includes('moved folder') && (await readOrCode(join(mnt, 'moved folder', 'inner.bin'))) === 'ENOENT');
  });

  it('a conflict copy made by the sync client shows up as a marked, readable copy', async () => {
    const rel = await cipherRel('/doc.bin');
    const since = Date.now();
    await copyFile(join(cipher, rel), join(cipher, `${rel}.sync-conflict-20261122-101010-ABCDEFG`));
    const expected = await readFile(join(mnt, 'doc.bin'));
    await visibleWithin('conflict copy added', since, async () => {
      const list = await names(mnt);
      return Array.isArray(list) && list.includes('doc (conflict 2026-11-22 101010 ABCDEFG).bin') && same(await readOrCode(join(mnt, 'doc (conflict 2026-11-22 101010 ABCDEFG).bin')), expected);
    });
  });

  /**
   * An open handle stays the version it was opened as (as with a file renamed over on a local
   * disk), so a program that reads a file in pieces never gets parts of two versions.
   */
  it('a handle opened before the sync client replaced the file reads one version only, never a mix', async () => {
    const [v1, v2] = versions();
    await replicaPut('/held.bin', v1);
    await deliver(await cipherRel('/held.bin'));
    await visibleWithin('file for held handle added', Date.now(), async () => same(await readOrCode(join(mnt, 'held.bin')), v1));
    const handle = await open(join(mnt, 'held.bin'), constants.O_RDONLY);
    try {
      const half = 8 * 65536;
      const first = Buffer.alloc(half);
      expect((await handle.read(first, 0, half, 0)).bytesRead).toBe(half);
      await replicaPut('/held.bin', v2);
      await deliver(await cipherRel('/held.bin'));
      // Past the bound: the open file has checked its ciphertext since.
      await sleep(2 * CACHE_MS + 200);
      const rest = Buffer.alloc(v1.length - half);
      let second: Buffer | string;
      try {
        const { bytesRead } = await handle.read(rest, 0, rest.length, half);
        second = rest.subarray(0, bytesRead);
      } catch (err) {
        second = (err as NodeJS.ErrnoException).code ?? 'error';
      }
      // POSIX: an open file keeps reading the version it opened. An error would be
      // acceptable; the second half of another version glued to the first is not.
      if (typeof second !== 'string') expect(Buffer.concat([first, second]).equals(v1), 'one handle returned the first half of one version and the rest of another').toBe(true);
    } finally {
      await handle.close();
    }
    // New opens see the new version.
    await visibleWithin('new version after held handle', Date.now(), async () => same(await readOrCode(join(mnt, 'held.bin')), v2));
  });
});
