/**
 * Issue 12 item 4: full disks and crashes, against a real mount whose cipher folder lies on a
 * small tmpfs of its own (64 MiB), so the disk can be filled without touching anything else.
 *
 * - A write that needs room the disk does not have fails at write() with ENOSPC, the file
 *   stays as it was and verifies (`sealfs scrub` exit 0), before and after space is freed,
 *   and the mount goes on working.
 * - `touch` on a full disk fails and leaves no entry (a 0-byte cipher file reads as truncated).
 * - A writer racing a program that fills the disk: afterwards every file verifies, and every
 *   64 KiB chunk of every file holds either its old or its new bytes.
 * - close() means the data is in the cipher folder: the server killed with SIGKILL right after
 *   close() returned, the file reads back whole offline (`sealfs cat`).
 * - The server killed at random moments while programs append, fsync and grow files by
 *   many batches: every file verifies afterwards and every fsync'd byte is there.
 *
 * Every tmpfs is unmounted after its test, also when the test fails.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, FUSE_PROBLEM, sleep, useMountHarness, waitFor, type TestVault } from './mount-helpers.js';

const h = useMountHarness('mount-fulldisk');
if (FUSE_PROBLEM) console.warn(`mount-fulldisk: skipped: ${FUSE_PROBLEM}`);

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;
const SCRUB_CLEAN = 0;

/** tmpfs mounts made by this file's tests: lazily unmounted after each test, whatever happened. */
const disks: string[] = [];
afterEach(async () => {
  // The FUSE mounts on top go first (the harness's own afterEach may run after this one).
  await h.cleanUp('test');
  for (const disk of disks.splice(0)) {
    try {
      execFileSync('umount', ['-l', disk], { stdio: 'ignore' });
    } catch {
      // not mounted (the test failed before mounting it)
    }
    await rm(disk, { recursive: true, force: true });
  }
}, 90_000);

/** A tmpfs of `size` (mount -o size=…) in a folder of its own. */
async function smallDisk(size = '64m'): Promise<string> {
  const disk = await mkdtemp(join('/tmp', 'fulldisk-disk-'));
  disks.push(disk);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', disk]);
  return disk;
}

/** A vault whose cipher folder is `disk`/vault (its key store, pid and log files elsewhere). */
async function vaultOn(disk: string): Promise<TestVault> {
  const made = await h.vault({ init: false });
  const v: TestVault = { ...made, cipher: join(disk, 'vault') };
  const init = await h.sealfs(['init', v.cipher, '--keystore', v.keystore, '--passphrase-file', v.pass, '--kdf-target-ms', '20']);
  expect(init.code, init.stderr).toBe(0);
  return v;
}

/** Fills the disk with `disk`/filler until ENOSPC (large writes, then single pages). */
async function fill(disk: string): Promise<void> {
  const r = await h.python(
    `import os, sys, errno
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for size in (1 << 20, 4096, 512, 1):
    block = b'\\0' * size
    while True:
        try:
            os.write(fd, block)
        except OSError as e:
            if e.errno != errno.ENOSPC: raise
            break
os.close(fd)`,
    [join(disk, 'filler')],
  );
  expect(r.code, r.stderr).toBe(0);
}

async function scrub(v: TestVault): Promise<{ code: number | null; out: string }> {
  const r = await h.sealfsKeyed(v, 'scrub', [], { timeoutMs: 120_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** Every regular file of the cipher folder with its size (the vault's own control file included). */
async function cipherFiles(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const visit = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await visit(p);
      else out.set(p, (await stat(p)).size);
    }
  };
  await visit(dir);
  return out;
}

/**
 * Appends `size` bytes to `path` in 128 KiB write() calls, then close(); says which call
 * failed first and with which errno.
 */
const APPEND = `import os, sys, json
path, size = sys.argv[1], int(sys.argv[2])
data = bytes.fromhex(sys.stdin.read().strip())
out = {'failed': None, 'errno': None, 'written': 0}
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
try:
    while out['written'] < size:
        n = os.write(fd, data[out['written']:out['written'] + 131072])
        out['written'] += n
except OSError as e:
    out['failed'], out['errno'] = 'write', e.errno
try:
    os.close(fd)
except OSError as e:
    if out['failed'] is None: out['failed'], out['errno'] = 'close', e.errno
print(json.dumps(out))`;

async function append(path: string, data: Buffer): Promise<{ failed: string | null; errno: number | null; written: number }> {
  const r = await h.python(APPEND, [path, String(data.length)], { input: data.toString('hex') });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { failed: string | null; errno: number | null; written: number };
}

const ENOSPC = 28;

/**
 * Whether process `pid` is stopped where a kill cannot cut a cipher write short: its main
 * thread, which makes every write to the cipher files (the server's direct calls), stopped
 * (state T in /proc); the pool threads stopped too, or inside a system call that changes no
 * file's contents (an fsync waiting for the disk shows as D).
 */
async function stoppedThreads(pid: number): Promise<boolean> {
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const line = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    const state = line.slice(line.lastIndexOf(')') + 2, line.lastIndexOf(')') + 3);
    const stopped = state === 'T' || state === 't';
    if (line && !stopped && (tid === String(pid) || state !== 'D')) return false;
  }
  return true;
}

describe.skipIf(FUSE_PROBLEM !== undefined)('a full cipher disk', { timeout: 240_000 }, () => {
  it('appending 1 MiB to a 1 MiB file on a full disk fails at write() with ENOSPC, the file stays as it was and verifies; after space is freed the append works', async () => {
    const disk = await smallDisk();
    const v = await vaultOn(disk);
    await h.mountOk(v);
    const a = randomBytes(MiB);
    await writeFile(join(v.mnt, 'a.bin'), a);
    const small = randomBytes(1000);
    await writeFile(join(v.mnt, 'small.bin'), small);
    await fill(disk);

    const more = randomBytes(MiB);
    const result = await append(join(v.mnt, 'a.bin'), more);
    expect(result).toMatchObject({ failed: 'write', errno: ENOSPC, written: 0 });
    const smallResult = await append(join(v.mnt, 'small.bin'), more);
    expect(smallResult).toMatchObject({ failed: 'write', errno: ENOSPC });
    expect((await readFile(join(v.mnt, 'a.bin'))).equals(a)).toBe(true);
    const smallNow = await readFile(join(v.mnt, 'small.bin'));
    // What write() accepted is there (a local disk keeps it too), and nothing else.
    expect(smallNow.equals(Buffer.concat([small, more.subarray(0, smallResult.written)]))).toBe(true);
    const full = await scrub(v);
    expect(full.code, full.out).toBe(SCRUB_CLEAN);

    // Space freed: the mount works on, the same append succeeds, everything verifies.
    await rm(join(disk, 'filler'));
    expect(await append(join(v.mnt, 'a.bin'), more)).toMatchObject({ failed: null, written: MiB });
    expect((await readFile(join(v.mnt, 'a.bin'))).equals(Buffer.concat([a, more]))).toBe(true);
    const freed = await scrub(v);
    expect(freed.code, freed.out).toBe(SCRUB_CLEAN);
  });

  it('a write far past the end of a file on a full disk fails with ENOSPC, and nothing is written', async () => {
    const disk = await smallDisk();
    const v = await vaultOn(disk);
    await h.mountOk(v);
    const a = randomBytes(100_000);
    await writeFile(join(v.mnt, 'a.bin'), a);
    // 1 GiB past the end: it would take 1 GiB of sealed zeros (more than the disk).
    const r = await h.python(
      `import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.pwrite(fd, b'x', 1 << 30)
    print('ok')
except OSError as e:
    print(e.errno)
os.close(fd)`,
      [join(v.mnt, 'a.bin')],
    );
    expect(r.stdout.trim()).toBe(String(ENOSPC));
    expect((await readFile(join(v.mnt, 'a.bin'))).equals(a)).toBe(true);
    const s = await scrub(v);
    expect(s.code, s.out).toBe(SCRUB_CLEAN);
    // Nothing stays allocated for it: the disk is as free as before.
    const df = await h.spawn('df', ['--output=used', '-B1', disk]);
    expect(Number(df.stdout.trim().split('\n')[1])).toBeLessThan(8 * MiB);
  });

  it('touch on a full disk fails and leaves no cipher entry; the mount works on once space is freed', async () => {
    const disk = await smallDisk();
    const v = await vaultOn(disk);
    await h.mountOk(v);
    await writeFile(join(v.mnt, 'a.txt'), 'a');
    await mkdir(join(v.mnt, 'dir'));
    await fill(disk);
    const before = await cipherFiles(v.cipher);
    const t = await h.spawn('touch', [join(v.mnt, 'new.txt'), join(v.mnt, 'dir', 'new.txt'), join(v.mnt, `${'long'.repeat(60)}.txt`)]);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/No space left on device/);
    expect(await cipherFiles(v.cipher)).toEqual(before);
    expect([...(await cipherFiles(v.cipher)).values()].filter((size) => size === 0)).toEqual([]);
    expect((await readdir(v.mnt)).sort()).toEqual(['a.txt', 'dir']);
    const full = await scrub(v);
    expect(full.code, full.out).toBe(SCRUB_CLEAN);

    await rm(join(disk, 'filler'));
    const again = await h.spawn('touch', [join(v.mnt, 'new.txt')]);
    expect(again.code, again.stderr).toBe(0);
    expect((await readdir(v.mnt)).sort()).toEqual(['a.txt', 'dir', 'new.txt']);
    const freed = await scrub(v);
    expect(freed.code, freed.out).toBe(SCRUB_CLEAN);
  });

  it('a writer racing a program that fills the disk: afterwards every file verifies, and every chunk holds its old or its new bytes', async () => {
    const disk = await smallDisk();
    const v = await vaultOn(disk);
    await h.mountOk(v);
    const ref = await mkdtemp(join(h.root, 'ref-'));
    const olds: Buffer[] = [];
    for (let k = 0; k < 4; k++) {
      olds.push(randomBytes(MiB));
      await writeFile(join(v.mnt, `old${k}.bin`), olds[k]!);
    }
    // The writer: new files of 3 MiB in 128 KiB writes, and whole-chunk overwrites of the old
    // files; every byte it means to write is kept in `ref` (outside the small disk).
    const writer = h.python(
      `import os, sys, random, json
mnt, ref = sys.argv[1], sys.argv[2]
rng = random.Random(12)
report = {}
for i in range(40):
    name = 'new%d.bin' % i
    data = rng.randbytes(3 << 20)
    open(os.path.join(ref, name), 'wb').write(data)
    state = 'closed'
    try:
        fd = os.open(os.path.join(mnt, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        report[name] = 'create %d' % e.errno
        continue
    try:
        for off in range(0, len(data), 131072):
            os.write(fd, data[off:off + 131072])
    except OSError as e:
        state = 'write %d' % e.errno
    try:
        os.close(fd)
    except OSError as e:
        if state == 'closed': state = 'close %d' % e.errno
    report[name] = state
    k = i % 4
    new = rng.randbytes(65536)
    c = rng.randrange(16)
    open(os.path.join(ref, 'old%d.chunk%d.%d' % (k, c, i)), 'wb').write(new)
    try:
        fd = os.open(os.path.join(mnt, 'old%d.bin' % k), os.O_WRONLY)
        try:
            os.pwrite(fd, new, c * 65536)
        finally:
            os.close(fd)
    except OSError as e:
        pass
print(json.dumps(report))`,
      [v.mnt, ref],
      { timeoutMs: 180_000 },
    );
    await sleep(300);
    const filler = h.spawn('dd', ['if=/dev/zero', `of=${join(disk, 'filler')}`, 'bs=256k'], { timeoutMs: 120_000 });
    const [w, f] = await Promise.all([writer, filler]);
    expect(w.code, w.stderr).toBe(0);
    expect(f.stderr).toMatch(/No space left on device/);
    const report = JSON.parse(w.stdout) as Record<string, string>;
    // The disk did fill while files were written: some failed with ENOSPC, none with anything else.
    const failures = Object.values(report).filter((state) => state !== 'closed');
    expect(failures.length).toBeGreaterThan(0);
    for (const state of failures) expect(state).toMatch(/ 28$/);

    await rm(join(disk, 'filler'));
    const s = await scrub(v);
    expect(s.code, s.out).toBe(SCRUB_CLEAN);
    for (const [name, state] of Object.entries(report)) {
      if (state.startsWith('create')) continue;
      const want = await readFile(join(ref, name));
      const got = await readFile(join(v.mnt, name));
      if (state === 'closed') expect(got.equals(want), name).toBe(true);
      else expect(got.equals(want.subarray(0, got.length)), `${name} (${state}) holds a prefix of what was written`).toBe(true);
    }
    const refNames = await readdir(ref);
    for (let k = 0; k < 4; k++) {
      const got = await readFile(join(v.mnt, `old${k}.bin`));
      expect(got.length).toBe(MiB);
      for (let c = 0; c < 16; c++) {
        const chunk = got.subarray(c * CHUNK, (c + 1) * CHUNK);
        const candidates = [olds[k]!.subarray(c * CHUNK, (c + 1) * CHUNK)];
        for (const n of refNames.filter((n) => n.startsWith(`old${k}.chunk${c}.`))) candidates.push(await readFile(join(ref, n)));
        expect(candidates.some((cand) => cand.equals(chunk)), `old${k}.bin chunk ${c}`).toBe(true);
      }
    }
    // The mount works on.
    await writeFile(join(v.mnt, 'after.txt'), 'after');
    expect(await readFile(join(v.mnt, 'after.txt'), 'utf8')).toBe('after');
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('a killed server', { timeout: 600_000 }, () => {
  it('close() means the data is in the cipher folder: killed with SIGKILL right after close() returned, the file reads back whole offline', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const data = randomBytes(3 * MiB + 12_345);
    const r = await h.python(
      `import os, sys, signal
data = bytes.fromhex(sys.stdin.read().strip())
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for off in range(0, len(data), 131072):
    os.write(fd, data[off:off + 131072])
small = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(small, data[:5000])
os.close(small)
os.close(fd)
os.kill(int(sys.argv[3]), signal.SIGKILL)`,
      [join(v.mnt, 'big.bin'), join(v.mnt, 'small.bin'), String(pid)],
      { input: data.toString('hex') },
    );
    expect(r.code, r.stderr).toBe(0);
    await waitFor('the killed server to go', () => !alive(pid), 5000);
    const u = await h.sealfs(['unmount', v.mnt]);
    expect(u.code, u.stderr).toBe(0);
    // runDetached keeps stdout as text: digests are compared instead of bytes.
    const cat = await h.spawn('sh', ['-c', `node ${h.cli} cat ${v.cipher} /big.bin --keystore ${v.keystore} --passphrase-file ${v.pass} | sha256sum`]);
    const want = (await h.spawn('sha256sum', [], { input: data })).stdout;
    expect(cat.stdout).toBe(want);
    const catSmall = await h.spawn('sh', ['-c', `node ${h.cli} cat ${v.cipher} /small.bin --keystore ${v.keystore} --passphrase-file ${v.pass} | sha256sum`]);
    expect(catSmall.stdout).toBe((await h.spawn('sha256sum', [], { input: data.subarray(0, 5000) })).stdout);
    const s = await scrub(v);
    expect(s.code, s.out).toBe(SCRUB_CLEAN);
  });

  /**
   * The server is stopped (SIGSTOP) and then killed (SIGKILL): a stopped process is stopped
   * between system calls, so the cipher folder is left as a kill between two calls leaves it,
   * at a random moment (even rounds) or while grow.bin is being grown by 32 MiB (odd rounds,
   * 8 steps of 4 MiB). A SIGKILL that lands inside the write(2) of a step can still tear
   * that step (README, "Full disks and crashes"); this test is about every state between.
   */
  it('killed at random moments while files are appended, fsync’d and grown by many batches: every file verifies and every fsync’d byte is there', async () => {
    const kills = Number(process.env.SEALFS_FULLDISK_KILLS ?? 12);
    const v = await h.vault();
    const ref = await mkdtemp(join(h.root, 'ref-'));
    // The writer: appends to a.bin and b.bin (bytes from a seeded generator, so the content
    // of any length is known), fsyncs now and then and records the length it fsync'd; and
    // grows grow.bin by 24 MiB at a time (many batches of sealed zeros).
    const WRITER = `import os, sys, random
mnt, journal, round_ = sys.argv[1], sys.argv[2], int(sys.argv[3])
streams = {n: random.Random(n).randbytes(16 << 20) for n in ('a.bin', 'b.bin')}
fds = {}
for n in streams:
    fds[n] = os.open(os.path.join(mnt, n), os.O_WRONLY | os.O_CREAT, 0o644)
grow = os.open(os.path.join(mnt, 'grow.bin'), os.O_WRONLY | os.O_CREAT, 0o644)
if os.fstat(grow).st_size > (64 << 20):
    os.ftruncate(grow, 0)
j = open(journal, 'a')
rng = random.Random(round_)
sizes = {n: os.fstat(fds[n]).st_size for n in streams}
step = 0
while True:
    step += 1
    for n, fd in fds.items():
        size = rng.choice((4096, 65536, 131072, 300000))
        if sizes[n] + size > len(streams[n]):
            os.ftruncate(fd, 0); sizes[n] = 0
            j.write('%s 0\\n' % n); j.flush()
        os.pwrite(fd, streams[n][sizes[n]:sizes[n] + size], sizes[n])
        sizes[n] += size
        if rng.random() < 0.3:
            os.fsync(fd)
            j.write('%s %d\\n' % (n, sizes[n])); j.flush()
    if step % 5 == 0:
        os.ftruncate(grow, os.fstat(grow).st_size + (32 << 20))
`;
    const journal = join(ref, 'journal');
    // The files exist from the start (a writer killed before it made them leaves none).
    const first = await h.mountOk(v);
    for (const name of ['a.bin', 'b.bin', 'grow.bin']) await writeFile(join(v.mnt, name), '');
    await h.unmountOk(v, first);
    const growCipher = await h.cipherPathOf(v, '/grow.bin');
    for (let round = 0; round < kills; round++) {
      const pid = await h.mountOk(v);
      await writeFile(journal, '');
      const writer = h.python(WRITER, [v.mnt, journal, String(round)], { timeoutMs: 60_000 });
      await sleep(400 + Math.floor(Math.random() * 800));
      if (round % 2 === 1) {
        let seen = (await stat(growCipher)).size;
        let writerDone: string | undefined;
        void writer.then((w) => (writerDone = w.stderr || `exit ${w.code}`));
        await waitFor(
          'grow.bin to grow',
          async () => {
            if (writerDone !== undefined) throw new Error(`round ${round}: the writer ended: ${writerDone}`);
            const now = (await stat(growCipher)).size;
            const grew = now > seen;
            seen = now;
            return grew;
          },
          30_000,
          1,
        );
      }
      process.kill(pid, 'SIGSTOP');
      // Killed only once every thread has stopped (a thread inside a system call stops when
      // it returns from it); a SIGKILL sent before would cut a write(2) short.
      await waitFor('the server to stop', () => stoppedThreads(pid), 60_000, 1);
      process.kill(pid, 'SIGKILL');
      // The writer ran until the server went (ENOTCONN, or ECONNABORTED for a request in flight).
      // Once (one CI run of many) a writer was still waiting on the dead mount minutes later;
      // cause not found: after 20 s the mount is taken down as a user would (sealfs unmount
      // aborts a dead connection), said in the log, and the round goes on.
      const settled = await Promise.race([writer.then(() => true), sleep(20_000).then(() => false)]);
      if (!settled) {
        console.warn(`mount-fulldisk: round ${round}: the writer still waited on the killed server's mount after 20 s; unmounting it`);
        const early = await h.sealfs(['unmount', v.mnt], { timeoutMs: 30_000 });
        expect(early.code, early.stderr).toBe(0);
      }
      const w = await writer;
      expect(w.stderr, `round ${round}`).toMatch(/Errno (107|103)/);
      await waitFor('the killed server to go', () => !alive(pid), 5000);
      if (settled) {
        const u = await h.sealfs(['unmount', v.mnt]);
        expect(u.code, u.stderr).toBe(0);
      }
      const s = await scrub(v);
      expect(s.code, `round ${round}: ${s.out}`).toBe(SCRUB_CLEAN);
      // Every fsync'd length is there, with the right bytes (checked by their digest).
      const synced = new Map<string, number>();
      for (const line of (await readFile(journal, 'utf8')).split('\n').filter(Boolean)) {
        const [name, length] = line.split(' ');
        synced.set(name!, Number(length));
      }
      for (const [name, length] of synced) {
        const check = await h.spawn('sh', [
          '-c',
          `node ${h.cli} cat ${v.cipher} /${name} --keystore ${v.keystore} --passphrase-file ${v.pass} | python3 -c "import sys, random; got = sys.stdin.buffer.read(); want = random.Random(sys.argv[1]).randbytes(16 << 20); n = int(sys.argv[2]); print('ok' if len(got) >= n and got == want[:len(got)] else 'bad %d' % len(got))" ${name} ${length}`,
        ]);
        expect(check.stdout.trim(), `round ${round}: ${name} fsync'd at ${length}: ${check.stderr}`).toBe('ok');
      }
    }
  });
});
