/**
 * A real FUSE mount through the built CLI (test/build.ts; `node …/src/cli/main.js` in
 * child processes), the way a user runs it: mount, use the plaintext view, check that only
 * ciphertext reaches the cipher folder, unmount; recover from a killed server; refuse a wrong
 * passphrase and a non-empty mount point; end the server when something else unmounts it.
 * (The answers of PlainFs to each request, without mounting, are in plainfs.test.ts.)
 *
 * Every test unmounts whatever it mounted and ends whatever it started, also when it fails
 * (afterEach: `fusermount -u -z`, then shared/tools/fuse-unstick as a last resort). This test
 * process never serves a mount, so it may touch the mount freely; it still uses async calls.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, readlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { loadFuseBinding } from '../src/fs/kernel.js';
import { fuseOptionList } from '../src/fs/mount.js';
import { parseMountinfo, readMounts } from '../src/fs/mountinfo.js';
import { VAULT_FILE } from '../src/vault/vaultfile.js';
import { CLI } from './build.js';
import { alive, forceUnmount, fuseProblem, isMounted, runDetached, waitFor, type Run } from '../bench/lib/proc.js';

const PASSPHRASE = 'mount smoke test passphrase';

const PROBLEM = fuseProblem();
if (PROBLEM) console.warn(`mount-smoke: skipped: ${PROBLEM}`);

let root: string;
let counter = 0;
/** What the current test mounted and started: cleaned up in afterEach, whatever happened. */
const mounted = new Set<string>();
const pids = new Set<number>();

function run(args: string[], timeoutMs = 60_000): Promise<Run> {
  return runDetached(process.execPath, [CLI, ...args], { ...process.env, HOME: join(root, 'home'), XDG_STATE_HOME: join(root, 'state'), XDG_CONFIG_HOME: join(root, 'config') }, timeoutMs);
}

function exec(command: string, args: string[]): Promise<Pick<Run, 'code' | 'stdout' | 'stderr'>> {
  return new Promise((resolvePromise) => {
    execFile(command, args, { encoding: 'buffer', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolvePromise({ code, stdout: stdout.toString('latin1'), stderr: stderr.toString('utf8') });
    });
  });
}




interface Setup {
  dir: string;
  cipher: string;
  mnt: string;
  keystore: string;
  pass: string;
  pidFile: string;
}

/** A new vault (fast KDF, temp key store) and an empty mount point. */
async function setup(): Promise<Setup> {
  const dir = join(root, `t${counter++}`);
  const s: Setup = {
    dir,
    cipher: join(dir, 'cipher'),
    mnt: join(dir, 'mnt'),
    keystore: join(dir, 'keystore'),
    pass: join(dir, 'pass'),
    pidFile: join(dir, 'server.pid'),
  };
  await mkdir(s.mnt, { recursive: true });
  await writeFile(s.pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  const init = await run(['init', s.cipher, '--keystore', s.keystore, '--passphrase-file', s.pass, '--kdf-target-ms', '20']);
  expect(init.code, init.stderr).toBe(EXIT.OK);
  return s;
}

/** `sealfs mount` (daemon); registers the mount and its server for cleanup. */
async function mount(s: Setup, extra: string[] = []): Promise<{ run: Run; pid?: number }> {
  mounted.add(s.mnt);
  const result = await run(['mount', s.cipher, s.mnt, '--keystore', s.keystore, '--passphrase-file', s.pass, '--pid-file', s.pidFile, ...extra]);
  const text = await readFile(s.pidFile, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  if (Number.isInteger(pid) && pid > 0) pids.add(pid);
  return { run: result, ...(Number.isInteger(pid) && pid > 0 ? { pid } : {}) };
}

async function serverPid(s: Setup): Promise<number> {
  const pid = Number.parseInt((await readFile(s.pidFile, 'utf8')).trim(), 10);
  expect(Number.isInteger(pid) && pid > 0).toBe(true);
  return pid;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-mount-'));
  if (PROBLEM) return;
  await stat(CLI);
}, 180_000);

afterEach(async () => {
  for (const mnt of mounted) {
    if (await isMounted(mnt)) {
      await run(['unmount', mnt], 15_000).catch(() => undefined);
      await forceUnmount(mnt);
    }
  }
  mounted.clear();
  for (const pid of pids) {
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    await waitFor(`server ${pid} to exit`, () => !alive(pid), 5000).catch(() => {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
  }
  pids.clear();
}, 60_000);

afterAll(async () => {
  // Never delete through a mount that is still there.
  for (const entry of await readMounts()) if (root && entry.mountpoint.startsWith(root + '/')) await forceUnmount(entry.mountpoint);
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(PROBLEM !== undefined)('sealfs mount (real FUSE mount, built CLI)', { timeout: 90_000 }, () => {
  it('shows plaintext at the mount point while only ciphertext reaches the cipher folder; unmount ends it all', async () => {
    const s = await setup();
    const { run: m, pid } = await mount(s);
    expect(m.code, m.stderr).toBe(EXIT.OK);
    expect(await isMounted(s.mnt)).toBe(true);
    expect(pid).toBeDefined();
    expect(pid).not.toBe(process.pid);
    expect(alive(pid!)).toBe(true);
    const entry = (await readMounts()).find((e) => e.mountpoint === s.mnt)!;
    expect(entry.fstype).toBe('fuse.sealfs');
    expect(entry.source).toBe(`sealfs:${s.cipher}`);

    // Write through async fs calls and through ordinary programs.
    const marker = 'PLAINTEXT-MARKER-0123456789';
    const big = Buffer.concat([Buffer.from(marker), randomBytes(3 * 1024 * 1024 + 12345)]);
    await writeFile(join(s.mnt, 'report.txt'), big);
    await mkdir(join(s.mnt, 'Secret Folder'));
    const src = join(s.dir, 'source.bin');
    await writeFile(src, randomBytes(200_000));
    expect((await exec('cp', [src, join(s.mnt, 'Secret Folder', 'copy.bin')])).code).toBe(0);
    const dd = await exec('dd', ['if=/dev/zero', `of=${join(s.mnt, 'zeros.bin')}`, 'bs=64k', 'count=40', 'conv=fsync', 'status=none']);
    expect(dd.code, dd.stderr).toBe(0);

    // Read back, by async fs and by programs.
    expect((await readFile(join(s.mnt, 'report.txt'))).equals(big)).toBe(true);
    const cat = await exec('cat', [join(s.mnt, 'Secret Folder', 'copy.bin')]);
    expect(Buffer.from(cat.stdout, 'latin1').equals(await readFile(src))).toBe(true);
    expect((await stat(join(s.mnt, 'zeros.bin'))).size).toBe(40 * 65536);
    expect((await exec('cmp', [src, join(s.mnt, 'Secret Folder', 'copy.bin')])).code).toBe(0);

    // File times: both set (touch -d), and the modification time alone (touch -m: atime
    // UTIME_OMIT, as `tar x` does), which libfuse passes as UTIME_OMIT.
    expect((await exec('touch', ['-d', '2001-02-03 04:05:06 UTC', join(s.mnt, 'report.txt')])).code).toBe(0);
    expect((await stat(join(s.mnt, 'report.txt'))).mtime.toISOString()).toBe('2001-02-03T04:05:06.000Z');
    expect((await exec('touch', ['-m', '-d', '2002-03-04 05:06:07 UTC', join(s.mnt, 'report.txt')])).code).toBe(0);
    expect((await stat(join(s.mnt, 'report.txt'))).mtime.toISOString()).toBe('2002-03-04T05:06:07.000Z');

    // Names, renames, symlinks.
    await rename(join(s.mnt, 'zeros.bin'), join(s.mnt, 'Secret Folder', 'renamed.bin'));
    await symlink('report.txt', join(s.mnt, 'link'));
    expect(await readlink(join(s.mnt, 'link'))).toBe('report.txt');
    expect((await readFile(join(s.mnt, 'link'))).subarray(0, marker.length).toString()).toBe(marker);
    expect((await readdir(s.mnt)).sort()).toEqual(['Secret Folder', 'link', 'report.txt']);
    expect((await readdir(join(s.mnt, 'Secret Folder'))).sort()).toEqual(['copy.bin', 'renamed.bin']);
    const ls = await exec('ls', ['-1', s.mnt]);
    expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual(['Secret Folder', 'link', 'report.txt']);

    // The cipher folder: the vault file and base32 names only, no plaintext name or content.
    const cipherNames = await readdir(s.cipher);
    expect(cipherNames).toContain(VAULT_FILE);
    for (const name of cipherNames.filter((n) => n !== VAULT_FILE)) expect(name).toMatch(/^[a-z2-7]+$/);
    expect(cipherNames.length).toBe(4);
    const grep = await exec('grep', ['-r', '-l', '-a', marker, s.cipher]);
    expect(grep.stdout).toBe('');
    expect((await exec('grep', ['-r', '-l', '-a', 'Secret Folder', s.cipher])).stdout).toBe('');

    const u = await run(['unmount', s.mnt]);
    expect(u.code, u.stderr).toBe(EXIT.OK);
    expect(await isMounted(s.mnt)).toBe(false);
    await waitFor('the server to exit after unmount', () => !alive(pid!));
    expect(existsSync(s.pidFile)).toBe(false);
    expect(await readdir(s.mnt)).toEqual([]);

    // The background server logged, with timestamps, and nothing secret.
    const logs = (await readdir(join(root, 'state', 'sealfs'))).filter((name) => name.endsWith('.log'));
    const log = (await Promise.all(logs.map((name) => readFile(join(root, 'state', 'sealfs', name), 'utf8')))).join('');
    expect(log).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z sealfs\[\d+\] mounted /m);
    expect(log).not.toContain(PASSPHRASE);
  });

  it('recovers from a killed server: sealfs unmount clears the dead mount, and it mounts again', async () => {
    const s = await setup();
    const first = await mount(s);
    expect(first.run.code, first.run.stderr).toBe(EXIT.OK);
    await writeFile(join(s.mnt, 'kept.txt'), 'still here');
    const pid = await serverPid(s);
    process.kill(pid, 'SIGKILL');
    await waitFor('the killed server to go', () => !alive(pid));
    await expect(stat(join(s.mnt, 'kept.txt'))).rejects.toMatchObject({ code: expect.stringMatching(/^(ENOTCONN|ECONNABORTED)$/) });

    const again = await run(['mount', s.cipher, s.mnt, '--keystore', s.keystore, '--passphrase-file', s.pass]);
    expect(again.code).toBe(EXIT.MOUNT);
    expect(again.stderr).toMatch(/dead sealfs mount.*sealfs unmount/);

    const u = await run(['unmount', s.mnt]);
    expect(u.code, u.stderr).toBe(EXIT.OK);
    expect(await isMounted(s.mnt)).toBe(false);

    const second = await mount(s);
    expect(second.run.code, second.run.stderr).toBe(EXIT.OK);
    expect(await readFile(join(s.mnt, 'kept.txt'), 'utf8')).toBe('still here');
    const u2 = await run(['unmount', s.mnt]);
    expect(u2.code, u2.stderr).toBe(EXIT.OK);
    expect(await isMounted(s.mnt)).toBe(false);
  });

  it('refuses to unmount while a program holds a file open (exit 7, "busy"), keeps serving, and unmounts once it ends', async () => {
    const s = await setup();
    const { run: m } = await mount(s);
    expect(m.code, m.stderr).toBe(EXIT.OK);
    await writeFile(join(s.mnt, 'held.txt'), 'held open');
    // A program in another process keeps the file open for as long as this test wants.
    const holder = spawn('sh', ['-c', 'exec 3<"$1"; echo ready; exec sleep 60', 'holder', join(s.mnt, 'held.txt')], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolveReady, reject) => {
        holder.stdout.once('data', () => resolveReady());
        holder.once('exit', (code) => reject(new Error(`holder exited early (${code})`)));
      });
      const started = Date.now();
      const u = await run(['unmount', s.mnt]);
      expect(u.code).toBe(EXIT.MOUNT);
      expect(u.stderr).toMatch(/is busy \(close the programs using it/);
      // Busy is retried briefly (the kernel closes an ended program's files a moment later), then reported.
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
      expect(await isMounted(s.mnt)).toBe(true);
      expect(await readFile(join(s.mnt, 'held.txt'), 'utf8')).toBe('held open');
    } finally {
      holder.kill('SIGKILL');
      await waitFor('the holder to end', () => holder.exitCode !== null || holder.signalCode !== null);
    }
    const u = await run(['unmount', s.mnt]);
    expect(u.code, u.stderr).toBe(EXIT.OK);
    expect(await isMounted(s.mnt)).toBe(false);
  });

  it('refuses a wrong passphrase with exit 5 and mounts nothing', async () => {
    const s = await setup();
    const wrong = join(s.dir, 'wrong');
    await writeFile(wrong, 'not the passphrase\n');
    const m = await run(['mount', s.cipher, s.mnt, '--keystore', s.keystore, '--passphrase-file', wrong, '--pid-file', s.pidFile]);
    mounted.add(s.mnt);
    expect(m.code).toBe(EXIT.KEY);
    expect(m.stderr.trim().split('\n')).toHaveLength(1);
    expect(m.stderr).not.toContain('not the passphrase');
    expect(await isMounted(s.mnt)).toBe(false);
    expect(existsSync(s.pidFile)).toBe(false);
  });

  it('refuses a mount point that is not empty (exit 7) or missing, and a folder that is not a vault (exit 6)', async () => {
    const s = await setup();
    await writeFile(join(s.mnt, 'already-here.txt'), 'x');
    const m = await run(['mount', s.cipher, s.mnt, '--keystore', s.keystore, '--passphrase-file', s.pass]);
    mounted.add(s.mnt);
    expect(m.code).toBe(EXIT.MOUNT);
    expect(m.stderr).toMatch(/not empty/);
    expect(await isMounted(s.mnt)).toBe(false);

    const missing = await run(['mount', s.cipher, join(s.dir, 'nowhere'), '--keystore', s.keystore, '--passphrase-file', s.pass]);
    expect(missing.code).toBe(EXIT.MOUNT);
    expect(missing.stderr).toMatch(/does not exist/);

    const empty = join(s.dir, 'empty-mnt');
    const plainFolder = join(s.dir, 'plain-folder');
    await mkdir(empty);
    await mkdir(plainFolder);
    const notVault = await run(['mount', plainFolder, empty, '--keystore', s.keystore, '--passphrase-file', s.pass]);
    mounted.add(empty);
    expect(notVault.code).toBe(EXIT.VAULT);
    expect(await isMounted(empty)).toBe(false);
  });

  it('ends the server cleanly when something else unmounts it (fusermount -u)', async () => {
    const s = await setup();
    const m = await mount(s);
    expect(m.run.code, m.run.stderr).toBe(EXIT.OK);
    const pid = await serverPid(s);
    await writeFile(join(s.mnt, 'a.txt'), 'a');
    const fm = await exec('fusermount3', ['-u', s.mnt]);
    expect(fm.code, fm.stderr).toBe(0);
    expect(await isMounted(s.mnt)).toBe(false);
    await waitFor('the server to notice and exit', () => !alive(pid), 10_000);
    expect(existsSync(s.pidFile)).toBe(false);
    const logs = (await readdir(join(root, 'state', 'sealfs'))).filter((name) => name.endsWith('.log'));
    const log = (await Promise.all(logs.map((name) => readFile(join(root, 'state', 'sealfs', name), 'utf8')))).join('');
    expect(log).toMatch(new RegExp(`sealfs\\[${pid}\\] unmounted `));
  });

  it('serves in the foreground with -f and unmounts on SIGTERM', async () => {
    const s = await setup();
    mounted.add(s.mnt);
    const child = spawn(process.execPath, [CLI, 'mount', '-f', s.cipher, s.mnt, '--keystore', s.keystore, '--passphrase-file', s.pass], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    pids.add(child.pid!);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await waitFor('the foreground mount', () => isMounted(s.mnt), 20_000);
    await writeFile(join(s.mnt, 'fg.txt'), 'foreground');
    expect(await readFile(join(s.mnt, 'fg.txt'), 'utf8')).toBe('foreground');
    child.kill('SIGTERM');
    expect(await exited).toBe(EXIT.OK);
    expect(await isMounted(s.mnt)).toBe(false);
    expect(stderr).toMatch(/SIGTERM: unmounting/);
  });
});

describe('mount options and mountinfo, without mounting', () => {
  it('reads the opcode, stat, statfs and setattr tables from the FUSE addon, complete and consistent', () => {
    const native = loadFuseBinding();
    const isIndexTable = (table: Readonly<Record<string, number>>, size: number) =>
      expect(Object.values(table).sort((a, b) => a - b)).toEqual(Array.from({ length: size }, (_, i) => i));
    // Operations are added at the end of the table (MKNOD and others after READDIRPLUS).
    isIndexTable(native.opcodes, Object.keys(native.opcodes).length);
    expect(native.opcodes).toMatchObject({ END: 0, LOOKUP: 1, FORGET: 2, CREATE: 22, READDIRPLUS: 23 });
    expect(native.opcodes.MKNOD).toBeGreaterThan(23);
    expect(native.opcodes).toMatchObject({ SETXATTR: native.opcodes.MKNOD + 1, GETXATTR: native.opcodes.MKNOD + 2, LISTXATTR: native.opcodes.MKNOD + 3, REMOVEXATTR: native.opcodes.MKNOD + 4, FALLOCATE: native.opcodes.MKNOD + 5 });
    isIndexTable(native.statFields, 15);
    expect(Object.keys(native.statFields)).toEqual(expect.arrayContaining(['INO', 'MODE', 'SIZE', 'MTIME_S', 'MTIME_NS']));
    isIndexTable(native.statfsFields, 8);
    // fuse_lowlevel.h's FUSE_SET_ATTR_* and renameat2's flags, as the kernel's ABI fixes them.
    expect(native.setattrBits).toEqual({ MODE: 1, UID: 2, GID: 4, SIZE: 8, ATIME: 16, MTIME: 32, ATIME_NOW: 128, MTIME_NOW: 256 });
    expect(native.renameFlags).toEqual({ NOREPLACE: 1, EXCHANGE: 2 });
    // sys/xattr.h's XATTR_CREATE and XATTR_REPLACE; linux/falloc.h's FALLOC_FL_*.
    expect(native.xattrFlags).toEqual({ CREATE: 1, REPLACE: 2 });
    expect(native.fallocateFlags).toEqual({ KEEP_SIZE: 1, PUNCH_HOLE: 2, ZERO_RANGE: 16, COLLAPSE_RANGE: 8, INSERT_RANGE: 32 });
    // fuse_add_direntry_plus's size of an entry with an empty name: fuse_entry_out (128) + fuse_dirent's header (24).
    expect(native.direntPlusHeader).toBe(152);
    expect(native.unknownIno).toBe(0xffffffff);
  });

  it('builds the raw mount options and reads mountinfo', () => {
    const list = fuseOptionList({ cipherDir: '/home/me/Drop box/va,ult', readOnly: true, allowOther: true });
    expect(list).toEqual(expect.arrayContaining(['subtype=sealfs', 'ro', 'allow_other', 'default_permissions']));
    expect(list).toContain('fsname=sealfs:/home/me/Drop_box/va_ult');
    expect(list.join(',')).not.toMatch(/direct_io|hard_remove/);
    const [entry] = parseMountinfo('44 27 0:39 / /tmp/a\\040b rw,nosuid,nodev,relatime shared:1 - fuse.sealfs sealfs:/c rw,user_id=0,group_id=0\n');
    expect(entry).toEqual({
      device: '0:39',
      mountpoint: '/tmp/a b',
      fstype: 'fuse.sealfs',
      source: 'sealfs:/c',
      options: ['rw', 'nosuid', 'nodev', 'relatime'],
      superOptions: ['rw', 'user_id=0', 'group_id=0'],
    });
  });
});
