/**
 * Every fault of issue 3 §4 against the built CLI and a real FUSE mount: what `sealfs mount`
 * refuses (wrong passphrase, missing or foreign cipher folder, an edited or newer vault file,
 * a bad mount point) with its documented exit code, one line, and nothing mounted; what the
 * mount does with damage found while serving (a corrupted chunk: EIO for that read only, one
 * log line, never wrong bytes; a name that does not decrypt: shown, logged, removable); what
 * happens after the server is killed; and what a sync client does underneath a live mount
 * (replacing or deleting ciphertext files): seen within the documented 2 s, never a mix of
 * two versions.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { alive, FUSE_PROBLEM, isMounted, knownBug, mountRows, serversFor, sleep, SYNC_VISIBLE_MS, useMountHarness, waitFor, type Run, type TestVault } from './mount-helpers.js';

const h = useMountHarness('mount-faults');
if (FUSE_PROBLEM) console.warn(`mount-faults: skipped: ${FUSE_PROBLEM}`);

const CHUNK = 64 * 1024;
const EXIT = { USAGE: 2, VAULT: 6, KEY: 5, MOUNT: 7 };

/** A refusal: the exit code, one line on stderr, nothing mounted, no server, no pid file. */
async function expectRefused(v: TestVault, run: Run, code: number, message: RegExp, mnt = v.mnt): Promise<void> {
  expect(run.code, run.stderr).toBe(code);
  const lines = run.stderr.trim().split('\n');
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(await isMounted(mnt)).toBe(false);
  expect(await readFile(v.pidFile, 'utf8').catch(() => 'none')).toBe('none');
  expect(await serversFor(h.cli, v.cipher)).toEqual([]);
}

/** File content whose every byte says which version and which chunk it belongs to. */
function versioned(version: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let c = 0; c * CHUNK < size; c++) out.fill(version * 16 + c, c * CHUNK, Math.min(size, (c + 1) * CHUNK));
  return out;
}

/**
 * The one version a read shows, or a description of what is wrong with it. With `partial`,
 * a read cut short at a chunk boundary counts as its version too (within the attribute
 * timeout the kernel may still hold the old size).
 */
function versionOf(data: Buffer, sizes: Record<number, number>, partial = false): number | string {
  const versions = new Set<number>();
  for (let c = 0; c * CHUNK < data.length; c++) {
    const chunk = data.subarray(c * CHUNK, Math.min(data.length, (c + 1) * CHUNK));
    const byte = chunk[0]!;
    if ((byte & 15) !== c || !chunk.equals(Buffer.alloc(chunk.length, byte))) return `chunk ${c} is not a chunk of any version`;
    versions.add(byte >> 4);
  }
  if (versions.size !== 1) return `a mix of versions ${[...versions].join(', ')}`;
  const [version] = versions;
  const complete = sizes[version!] === data.length;
  const cut = partial && data.length < sizes[version!]! && data.length % CHUNK === 0;
  if (!complete && !cut) return `version ${version} with ${data.length} bytes instead of ${sizes[version!]}`;
  return version!;
}

describe.skipIf(FUSE_PROBLEM !== undefined)('sealfs mount refuses bad input: exit code, one line, nothing mounted', { timeout: 60_000 }, () => {
  it('a wrong passphrase: exit 5', async () => {
    const v = await h.vault();
    const wrong = join(v.dir, 'wrong');
    await writeFile(wrong, 'not the passphrase\n');
    const m = await h.mount(v, { passFile: wrong });
    await expectRefused(v, m, EXIT.KEY, /wrong passphrase/i);
    expect(m.stderr).not.toContain('not the passphrase');
  });

  it('a --cache-time that is not a number of seconds from 0 to 3600: exit 2', async () => {
    const v = await h.vault();
    for (const bad of ['soon', '-1', '1e3', '3601']) {
      await expectRefused(v, await h.mount(v, { args: ['--cache-time', bad] }), EXIT.USAGE, /cache-time.*expected seconds from 0 to 3600/);
    }
  });

  it('a cipher folder that is missing, or is not a vault: exit 6 naming it', async () => {
    const v = await h.vault({ init: false });
    const missing = await h.mount(v);
    await expectRefused(v, missing, EXIT.VAULT, new RegExp(`${v.cipher}.*(does not exist|not a sealfs vault)`));
    await mkdir(v.cipher);
    await writeFile(join(v.cipher, 'holiday.jpg'), randomBytes(1000));
    const foreign = await h.mount(v);
    await expectRefused(v, foreign, EXIT.VAULT, /not a sealfs vault/);
    // A vault file that is not one.
    await writeFile(join(v.cipher, 'sealfs.vault'), '{"format":"something-else"}\nhmac-sha256:00\n');
    await expectRefused(v, await h.mount(v), EXIT.VAULT, /not a sealfs vault/);
  });

  it('an edited vault file (chunk size, cipher, MAC) is refused with exit 6; a newer version says "newer"', async () => {
    const v = await h.vault();
    const path = join(v.cipher, 'sealfs.vault');
    const original = await readFile(path, 'utf8');
    const [body, mac] = original.split('\n');
    const edit = async (change: (config: Record<string, unknown>) => void, macLine = mac) => {
      const config = JSON.parse(body!) as Record<string, unknown>;
      change(config);
      await writeFile(path, `${JSON.stringify(config)}\n${macLine}\n`);
    };
    await edit((c) => (c.chunkSize = 32768));
    await expectRefused(v, await h.mount(v), EXIT.VAULT, /vault file was modified|MAC/);
    await edit((c) => (c.cipher = c.cipher === 'aes-256-gcm' ? 'chacha20-poly1305' : 'aes-256-gcm'));
    await expectRefused(v, await h.mount(v), EXIT.VAULT, /vault file was modified|MAC/);
    await edit(() => undefined, mac!.replace(/.$/, (ch) => (ch === '0' ? '1' : '0')));
    await expectRefused(v, await h.mount(v), EXIT.VAULT, /vault file was modified|MAC/);
    await edit((c) => (c.version = 2));
    await expectRefused(v, await h.mount(v), EXIT.VAULT, /newer/);
    // Put back, it mounts.
    await writeFile(path, original);
    await h.mountOk(v);
  });

  it('a mount point that is missing, not empty, a file, or already mounted: exit 7; the mount that is there keeps working', async () => {
    const v = await h.vault();
    await rm(v.mnt, { recursive: true });
    await expectRefused(v, await h.mount(v), EXIT.MOUNT, /does not exist/);
    await mkdir(v.mnt);
    await writeFile(join(v.mnt, 'already-here.txt'), 'x');
    await expectRefused(v, await h.mount(v), EXIT.MOUNT, /not empty/);
    await rm(join(v.mnt, 'already-here.txt'));
    const file = join(v.dir, 'a-file');
    await writeFile(file, '');
    await expectRefused(v, await h.mount(v, { mnt: file }), EXIT.MOUNT, /not a folder/, file);

    const pid = await h.mountOk(v);
    await writeFile(join(v.mnt, 'kept.txt'), 'kept');
    const twice = await h.mount(v);
    expect(twice.code, twice.stderr).toBe(EXIT.MOUNT);
    expect(twice.stderr.trim().split('\n')).toHaveLength(1);
    expect(twice.stderr).toMatch(/already mounted/);
    const other = await h.vault();
    const onTop = await h.mount(other, { mnt: v.mnt });
    expect(onTop.code, onTop.stderr).toBe(EXIT.MOUNT);
    expect(onTop.stderr).toMatch(/already mounted/);
    expect(await serversFor(h.cli, other.cipher)).toEqual([]);
    // Still the one mount, still served by the same server.
    expect(await serversFor(h.cli, v.cipher)).toEqual([pid]);
    expect(await readFile(join(v.mnt, 'kept.txt'), 'utf8')).toBe('kept');
    await h.unmountOk(v, pid);
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('damage found while serving', { timeout: 60_000 }, () => {
  it('a corrupted chunk: EIO for reads of that chunk only, one log line naming the path and chunk, never wrong bytes; other files unaffected', async () => {
    const v = await h.vault();
    await h.mountOk(v);
    const d = join(v.mnt, 'docs');
    await mkdir(d);
    const content = randomBytes(5 * CHUNK + 1000);
    await writeFile(join(d, 'damaged.bin'), content);
    await writeFile(join(d, 'healthy.bin'), content);
    // One bit of chunk 2's ciphertext flips (behind the mount's back, with the file closed).
    const cipherFile = await h.cipherPathOf(v, '/docs/damaged.bin');
    const fh = await open(cipherFile, 'r+');
    const at = 24 + 2 * (CHUNK + 28) + 12 + 100;
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, at);
    await fh.write(Buffer.from([byte[0]! ^ 1]), 0, 1, at);
    await fh.close();
    const path = join(d, 'damaged.bin');
    const integrityLines = async () => (await h.logLines(v)).filter((l) => /integrity/.test(l));

    // dd of chunk 2: fails with EIO, and gives no byte of it.
    const bad = await h.spawn('dd', [`if=${path}`, 'bs=64k', 'skip=2', 'count=1', 'status=none']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/Input\/output error/);
    expect(bad.out.length).toBe(0);
    const lines = await integrityLines();
    expect(lines.length).toBeGreaterThanOrEqual(1);
    for (const line of lines) expect(line).toMatch(/integrity: \/docs\/damaged\.bin \(chunk 2\)/);
    // The kernel may retry a failed read, but it is one message (the same line each time).
    expect(new Set(lines.map((l) => l.replace(/^\S+ sealfs\[\d+\] /, ''))).size).toBe(1);

    // The chunks before and after read fine, with the right bytes.
    const head = await h.spawn('dd', [`if=${path}`, 'bs=64k', 'count=2', 'status=none']);
    expect(head.code, head.stderr).toBe(0);
    expect(head.out.equals(content.subarray(0, 2 * CHUNK))).toBe(true);
    const tail = await h.spawn('dd', [`if=${path}`, 'bs=64k', 'skip=3', 'status=none']);
    expect(tail.code, tail.stderr).toBe(0);
    expect(tail.out.equals(content.subarray(3 * CHUNK))).toBe(true);
    // cat stops with an error; whatever it printed is the true beginning of the file.
    const cat = await h.spawn('cat', [path]);
    expect(cat.code).not.toBe(0);
    expect(cat.out.length).toBeLessThanOrEqual(2 * CHUNK);
    expect(cat.out.equals(content.subarray(0, cat.out.length))).toBe(true);
    // One descriptor: EIO in chunk 2, the next read elsewhere works.
    const py = await h.python(
      [
        'import os,sys,errno',
        'fd=os.open(sys.argv[1], os.O_RDONLY)',
        'try:',
        '    os.pread(fd, 100, 2*65536+50); print("read")',
        'except OSError as e:',
        '    print(errno.errorcode[e.errno])',
        'print(os.pread(fd, 16, 65536+7).hex(), os.pread(fd, 16, 4*65536).hex())',
      ].join('\n'),
      [path],
    );
    expect(py.code, py.stderr).toBe(0);
    expect(py.stdout.trim().split('\n')).toEqual(['EIO', `${content.subarray(CHUNK + 7, CHUNK + 23).toString('hex')} ${content.subarray(4 * CHUNK, 4 * CHUNK + 16).toString('hex')}`]);
    // The size is still right; every other file is unaffected.
    expect((await stat(path)).size).toBe(content.length);
    expect((await readFile(join(d, 'healthy.bin'))).equals(content)).toBe(true);
    expect((await readdir(d)).sort()).toEqual(['damaged.bin', 'healthy.bin']);
    await writeFile(join(d, 'new.txt'), 'still writable');
    expect(await readFile(join(d, 'new.txt'), 'utf8')).toBe('still writable');
    for (const line of await integrityLines()) expect(line).toContain('/docs/damaged.bin');
  });

  it('a ciphertext name that does not decrypt is listed as "UNDECRYPTABLE …", logged, and can be deleted through the mount', async () => {
    const v = await h.vault();
    await h.mountOk(v);
    await writeFile(join(v.mnt, 'fine.txt'), 'fine');
    const junkFile = 'thisisnotanencryptedname';
    const junkDir = 'notanencryptedfolderatall';
    await writeFile(join(v.cipher, junkFile), 'dropped in by someone');
    await mkdir(join(v.cipher, junkDir));
    const shownFile = `UNDECRYPTABLE ${junkFile}`;
    const shownDir = `UNDECRYPTABLE ${junkDir}`;
    const took = await waitFor('the junk to show in the mount', async () => {
      const names = await readdir(v.mnt);
      return names.includes(shownFile) && names.includes(shownDir);
    }, SYNC_VISIBLE_MS);
    expect(took).toBeLessThanOrEqual(SYNC_VISIBLE_MS);
    const ls = await h.spawn('ls', ['-1', v.mnt]);
    expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual([shownFile, shownDir, 'fine.txt'].sort());
    const log = (await h.logLines(v)).filter((l) => /undecryptable/i.test(l));
    // One line for the directory, naming its cipher folder and both names.
    expect(log.some((l) => l.includes(JSON.stringify(v.cipher)) && l.includes(JSON.stringify(junkFile)) && l.includes(JSON.stringify(junkDir)))).toBe(true);
    // It cannot be read as if it were plaintext...
    await expect(readFile(join(v.mnt, shownFile))).rejects.toMatchObject({ code: 'EIO' });
    // ...but the user can remove it.
    const rmFile = await h.spawn('rm', [join(v.mnt, shownFile)]);
    expect(rmFile.code, rmFile.stderr).toBe(0);
    const rmDir = await h.spawn('rmdir', [join(v.mnt, shownDir)]);
    expect(rmDir.code, rmDir.stderr).toBe(0);
    expect(await readdir(v.mnt)).toEqual(['fine.txt']);
    expect((await readdir(v.cipher)).filter((n) => n === junkFile || n === junkDir)).toEqual([]);
    expect(await readFile(join(v.mnt, 'fine.txt'), 'utf8')).toBe('fine');
  });

  it('after SIGKILL of the server: the dead mount is reported, `sealfs unmount` clears it, `sealfs mount` works again, fsynced data intact', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const data = randomBytes(300_000);
    const fh = await open(join(v.mnt, 'synced.bin'), 'w');
    await fh.write(data, 0, data.length, 0);
    await fh.sync();
    process.kill(Number((await readFile(v.pidFile, 'utf8')).trim()), 'SIGKILL');
    await waitFor('the killed server to go', () => !alive(pid), 5000);
    await fh.close().catch(() => undefined);
    // ENOTCONN; ECONNABORTED for a request caught in flight as the kernel tore the connection down.
    expect(['ENOTCONN', 'ECONNABORTED']).toContain(await stat(join(v.mnt, 'synced.bin')).then(() => 'ok', (e: NodeJS.ErrnoException) => e.code));
    const again = await h.mount(v);
    expect(again.code).toBe(EXIT.MOUNT);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/dead sealfs mount.*sealfs unmount/);
    const u = await h.sealfs(['unmount', v.mnt]);
    expect(u.code, u.stderr).toBe(0);
    expect(await isMounted(v.mnt)).toBe(false);
    const second = await h.mountOk(v);
    expect(second).not.toBe(pid);
    expect((await readFile(join(v.mnt, 'synced.bin'))).equals(data)).toBe(true);
    await h.unmountOk(v, second);
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('unmounted from outside, mounted again at once', { timeout: 150_000 }, () => {
  /**
   * The kernel hands a freed FUSE connection number to the next mount, so after
   * `fusermount -u MNT` and at once a new `sealfs mount … MNT`, the new mount can look exactly
   * like the old one (same place, same device number). The old server must tell them apart
   * (its secret probe name), end by itself, and never unmount the new mount.
   *
   * Which number a mount gets is not left to luck (other test files mount and unmount at the
   * same time, leaving free numbers below ours that the new mount would take): anonymous
   * device numbers (FUSE's and tmpfs's alike) are handed out lowest free first, so before
   * each unmount every free number below the old mount's is taken by a tmpfs of our own;
   * the freed number is then the lowest, and the new mount gets it unless another test
   * mounts in between (then the next attempt).
   */
  it('the old server ends after fusermount -u and an immediate remount at the same place, and never unmounts the new mount', async () => {
    const v = await h.vault();
    const deviceAt = async (path: string) => (await mountRows()).find((r) => r.mountpoint === path)?.device;
    const minor = (device: string | undefined) => Number(device?.split(':')[1]);
    const fillers: string[] = [];
    /** Takes every free anonymous device number below `device` with a tmpfs mount. */
    const fillBelow = async (device: string | undefined) => {
      for (;;) {
        const dir = join(v.dir, `filler-${fillers.length}`);
        await mkdir(dir);
        const m = await h.spawn('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'sealfs-test-filler', dir]);
        expect(m.code, m.stderr).toBe(0);
        fillers.push(dir);
        if (minor(await deviceAt(dir)) > minor(device)) return;
        expect(fillers.length, 'free device numbers below the mount').toBeLessThan(2000);
      }
    };
    let first = 0;
    let second = 0;
    let reused = false;
    try {
      for (let attempt = 0; attempt < 10 && !reused; attempt++) {
        if (second) await h.unmountOk(v, second);
        first = await h.mountOk(v);
        const before = await deviceAt(v.mnt);
        await fillBelow(before);
        const u = await h.spawn('fusermount3', ['-u', v.mnt]);
        expect(u.code, u.stderr).toBe(0);
        second = await h.mountOk(v);
        reused = (await deviceAt(v.mnt)) === before;
      }
    } finally {
      for (const dir of fillers.splice(0).reverse()) await h.spawn('umount', [dir]);
    }
    expect(reused, 'the new mount got the same FUSE connection number').toBe(true);
    await sleep(3000);
    const firstEndedByItself = !alive(first);
    if (!firstEndedByItself) {
      process.kill(first, 'SIGTERM');
      await waitFor('the old server to end after SIGTERM', () => !alive(first), 15_000);
    }
    await sleep(1500);
    expect({ firstEndedByItself, secondStillMounted: await isMounted(v.mnt), secondServerRunning: alive(second) }).toEqual({
      firstEndedByItself: true,
      secondStillMounted: true,
      secondServerRunning: true,
    });
    await h.unmountOk(v, second);
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('a sync client changing ciphertext files under a live mount', { timeout: 60_000 }, () => {
  /** One mount for these tests, each in a folder of its own. */
  let shared: TestVault;
  let folders = 0;
  beforeAll(async () => {
    shared = await h.vault();
    await h.mountOk(shared, { scope: 'file' });
  }, 60_000);

  /** A folder with doc.bin, and the cipher file of each of its versions saved aside. */
  async function versions() {
    const v = shared;
    const folder = `sync-${folders++}`;
    await mkdir(join(v.mnt, folder));
    const path = join(v.mnt, folder, 'doc.bin');
    const sizes: Record<number, number> = { 1: 6 * CHUNK, 2: 6 * CHUNK, 3: 7 * CHUNK + 100 };
    const saved: Record<number, string> = {};
    let cipherFile = '';
    for (const version of [1, 2, 3]) {
      await writeFile(path, versioned(version, sizes[version]!));
      cipherFile ||= await h.cipherPathOf(v, `/${folder}/doc.bin`);
      saved[version] = join(v.dir, `${folder}-saved-v${version}`);
      await copyFile(cipherFile, saved[version]!);
    }
    /** What a sync client does: write the download to a temporary name, rename it over. */
    const install = async (version: number) => {
      const temp = join(dirname(cipherFile), `.syncthing.${basename(cipherFile)}.tmp`);
      await copyFile(saved[version]!, temp);
      await rename(temp, cipherFile);
    };
    return { v, folder, path, sizes, saved, cipherFile, install };
  }

  it('a replaced ciphertext file is served within 2 s, every read all-old or all-new; a deleted one is gone within 2 s', async () => {
    const { v, folder, path, sizes, cipherFile, install } = await versions();
    expect(versionOf(await readFile(path), sizes)).toBe(3);
    for (const version of [1, 3, 2, 1]) {
      await install(version);
      const start = Date.now();
      for (;;) {
        const data = await readFile(path);
        const seen = versionOf(data, sizes, true);
        expect(typeof seen, `read ${Date.now() - start} ms after the replacement: ${seen}`).toBe('number');
        if (seen === version && data.length === sizes[version]) break;
        expect(Date.now() - start, `version ${version} not served in full yet (${data.length} bytes of version ${seen})`).toBeLessThanOrEqual(SYNC_VISIBLE_MS);
        await sleep(20);
      }
      await waitFor(`the size of version ${version}`, async () => (await stat(path)).size === sizes[version], SYNC_VISIBLE_MS);
    }

    // Deleted by the sync client: gone from the mount within 2 s.
    await unlink(cipherFile);
    const took = await waitFor(
      'the deleted file to disappear',
      async () => !(await readdir(join(v.mnt, folder))).includes('doc.bin') && (await stat(path).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOENT')),
      SYNC_VISIBLE_MS + 500,
    );
    expect(took).toBeLessThanOrEqual(SYNC_VISIBLE_MS);
    // And a new file of that name can be made: at once through the plaintext view, once the
    // kernel's 1 s entry timeout let go of the old name (until then open(O_CREAT) reaches the
    // server as a plain open of the vanished file and fails with ENOENT).
    await waitFor('creating the name again to work', () => writeFile(path, 'new').then(() => true, () => false), SYNC_VISIBLE_MS);
    expect(await readFile(path, 'utf8')).toBe('new');
  });

  /**
   * KNOWN BUG (src/vault/plainfs.ts openFile / src/vault/openfiles.ts): two programs reading
   * the file while the sync client replaces it get single reads (fresh open, one read() of
   * the whole file) that mix chunks of both versions. The server serves each open handle the
   * version its cipher descriptor has (an older handle: the old inode; a newer one: the new
   * inode), but the kernel's page cache is one per plaintext inode: pages one program's read
   * brought in from the old version are served to the other program's read of the new one.
   * Issue 3 §3: "never mixes chunks of two versions". (Seen here within a few replacements.)
   */
  knownBug('KNOWN BUG: two programs reading while the sync client replaces the file never get a read mixing two versions', async () => {
    const { path, saved, cipherFile } = await versions();
    await writeFile(path, versioned(2, 6 * CHUNK));
    const reader = [
      'import os,sys,time',
      'path,chunk,end=sys.argv[1],int(sys.argv[2]),time.time()+float(sys.argv[3])',
      'reads=0; mixes=0',
      'while time.time()<end and not os.path.exists(sys.argv[4]):',
      '    fd=os.open(path, os.O_RDONLY); d=os.read(fd, 8<<20); os.close(fd); reads+=1',
      '    if len(set(d[c]>>4 for c in range(0, len(d), chunk)))>1:',
      '        mixes+=1; open(sys.argv[4]+"-mixed", "w").close()',
      'print(reads, mixes)',
    ].join('\n');
    const stop = `${saved[1]!}-stop-readers`;
    const readers = [0, 1, 2].map(() => h.python(reader, [path, String(CHUNK), '15', stop], { timeoutMs: 25_000 }));
    const someoneMixed = () => stat(`${stop}-mixed`).then(() => true, () => false);
    // Replace back and forth (an edit in place: one size), until a reader saw a mix, at most 30 times.
    const install = async (version: number) => {
      const temp = join(dirname(cipherFile), `.syncthing.${basename(cipherFile)}.tmp`);
      await copyFile(saved[version]!, temp);
      await rename(temp, cipherFile);
    };
    let mixedHere = 0;
    for (let round = 0; round < 30 && mixedHere === 0 && !(await someoneMixed()); round++) {
      await install(round % 2 ? 2 : 1);
      const until = Date.now() + 400;
      while (Date.now() < until) if (typeof versionOf(await readFile(path), { 1: 6 * CHUNK, 2: 6 * CHUNK }) === 'string') mixedHere++;
    }
    await writeFile(stop, '');
    const results = await Promise.all(readers);
    const mixed = results.map((r) => Number(r.stdout.trim().split(' ')[1] ?? NaN));
    expect({ here: mixedHere, readers: mixed }).toEqual({ here: 0, readers: [0, 0, 0] });
  });

  /**
   * A program that keeps the file open and reads it with O_DIRECT while the sync client
   * replaces it: the kernel splits each 384 KiB read into 128 KiB FUSE requests, and every
   * read must still be one version. (The open handle stays the version it was opened as,
   * so "late" reads of the old version are expected; mixes never are.)
   */
  it('an open O_DIRECT reader never sees a read mixing two versions of a replaced file', async () => {
    const { path, saved, cipherFile } = await versions();
    const script = [
      'import os,sys,time,shutil,mmap,json',
      'path,cipher,v1,v2,chunk,size=sys.argv[1],sys.argv[2],sys.argv[3],sys.argv[4],int(sys.argv[5]),int(sys.argv[6])',
      'tmp=os.path.join(os.path.dirname(cipher), ".syncthing.x.tmp")',
      'fd=os.open(path, os.O_RDONLY|os.O_DIRECT); buf=mmap.mmap(-1, 8<<20)',
      'mixes=[]; late=0; rounds=0',
      'for r in range(12):',
      '    want=1 if r%2==0 else 2',
      '    shutil.copyfile(v1 if want==1 else v2, tmp); os.rename(tmp, cipher); rounds+=1',
      '    t0=time.time()',
      '    while True:',
      '        n=os.preadv(fd, [buf], 0); d=buf[:n]',
      '        tags=sorted(set(d[c]>>4 for c in range(0, n, chunk)))',
      '        if len(tags)>1: mixes.append(tags)',
      '        if tags==[want]: break',
      '        if time.time()-t0>2: late+=1; break',
      '    if mixes: break',
      'print(json.dumps({"rounds": rounds, "mixes": len(mixes), "late": late}))',
    ].join('\n');
    // Versions 1 and 2 have one size, as after an edit in place.
    await writeFile(path, versioned(2, 6 * CHUNK));
    const r = await h.python(script, [path, cipherFile, saved[1]!, saved[2]!, String(CHUNK), String(6 * CHUNK)], { timeoutMs: 40_000 });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { rounds: number; mixes: number; late: number };
    expect({ rounds: result.rounds, mixes: result.mixes }).toEqual({ rounds: 12, mixes: 0 });
  });

  /**
   * KNOWN LIMITATION, by design: a program that keeps the file open keeps reading the version
   * it opened, as on a local disk when another program renames a new file over it. The kernel
   * side would allow more (libfuse3 asks for FUSE_CAP_AUTO_INVAL_DATA, so cached pages go once
   * the modification time changes), but the handle's own ciphertext descriptor still reads the
   * replaced file: no read ever mixes two versions; new opens get the new one.
   * The same affects a file open under one hard-link name changed through another name.
   */
  knownBug('KNOWN LIMITATION: a program holding the file open sees a same-size replacement within 2 s', async () => {
    const { path, saved, cipherFile } = await versions();
    await writeFile(path, versioned(2, 6 * CHUNK));
    const script = [
      'import os,sys,time,shutil',
      'path,cipher,v1,chunk=sys.argv[1],sys.argv[2],sys.argv[3],int(sys.argv[4])',
      'fd=os.open(path, os.O_RDONLY)',
      'assert os.pread(fd, 1, 0)[0]>>4 == 2',
      'os.pread(fd, 8<<20, 0)',
      'tmp=os.path.join(os.path.dirname(cipher), ".syncthing.y.tmp")',
      'shutil.copyfile(v1, tmp); os.rename(tmp, cipher); t0=time.time()',
      'while time.time()-t0 < 2.2:',
      '    d=os.pread(fd, 8<<20, 0)',
      '    if d[0]>>4 == 1: print(round(time.time()-t0, 3)); break',
      '    time.sleep(0.05)',
      'else: print("never")',
    ].join('\n');
    const r = await h.python(script, [path, cipherFile, saved[1]!, String(CHUNK)], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    const seconds = Number(r.stdout.trim());
    expect(Number.isFinite(seconds), `new version seen after: ${r.stdout.trim()}`).toBe(true);
    expect(seconds).toBeLessThanOrEqual(SYNC_VISIBLE_MS / 1000);
  });
});
