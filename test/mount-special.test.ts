/**
 * Special files and renameat2's flags through a real mount (issue 12 item 2, FORMAT.md §14):
 * mkfifo with a writer and a reader in two other processes, a Unix socket bound in the mount
 * and reached from another process, mknod of a device as root, what the cipher folder holds
 * for them, that they survive a remount, that tampering with them shows; RENAME_NOREPLACE and
 * RENAME_EXCHANGE (python3's ctypes calls glibc's renameat2, which os.rename cannot) for
 * files, folders, across folders and with long names, checked again after a remount.
 */
import { lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, useMountHarness, waitFor } from './mount-helpers.js';

const h = useMountHarness('mount-special');
if (FUSE_PROBLEM) console.warn(`mount-special: skipped: ${FUSE_PROBLEM}`);
const isRoot = process.getuid?.() === 0;

/** stat(1)'s file type, permissions, size and device numbers (hex) of a path. */
async function statLine(path: string): Promise<string> {
  const r = await h.spawn('stat', ['-c', '%F %a %s %t:%T', path]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** renameat2(AT_FDCWD, a, AT_FDCWD, b, flags) from another process: '' or the errno's name. */
async function renameat2(a: string, b: string, flags: number): Promise<string> {
  const script = [
    'import ctypes, errno, os, sys',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'r = libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), int(sys.argv[3]))',
    "print('' if r == 0 else errno.errorcode[ctypes.get_errno()])",
  ].join('\n');
  const r = await h.python(script, [a, b, String(flags)]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}
const NOREPLACE = 1;
const EXCHANGE = 2;
const WHITEOUT = 4;

/** The cipher folder's entries (without the vault file), recursively, with their types and sizes. */
async function cipherEntries(root: string, rel = ''): Promise<{ rel: string; type: string; size: number }[]> {
  const out: { rel: string; type: string; size: number }[] = [];
  for (const name of await readdir(join(root, rel))) {
    if (name === 'sealfs.vault') continue;
    const path = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, path));
    out.push({ rel: path, type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other', size: st.size });
    if (st.isDirectory()) out.push(...(await cipherEntries(root, path)));
  }
  return out;
}

describe.skipIf(!!FUSE_PROBLEM)('special files in a mount', { timeout: 240_000 }, () => {
  it('mkfifo: a writer and a reader in two other processes meet through it; the cipher folder holds an empty regular file with an undecryptable name; it survives a remount', async () => {
    const v = await h.vault();
    let pid = await h.mountOk(v);
    const fifo = join(v.mnt, 'pipe line');
    const made = await h.spawn('mkfifo', ['-m', '0640', fifo]);
    expect(made.code, made.stderr).toBe(0);
    expect(await statLine(fifo)).toBe('fifo 640 0 0:0');
    // The kernel opens a FIFO itself: the server is never asked (it would refuse with ENXIO).
    const reader = h.spawn('sh', ['-c', 'cat "$1"', 'sh', fifo], { timeoutMs: 20_000 });
    const writer = await h.spawn('sh', ['-c', 'printf "through the pipe\\n" > "$1"', 'sh', fifo], { timeoutMs: 20_000 });
    expect(writer.code, writer.stderr).toBe(0);
    const read = await reader;
    expect([read.code, read.stdout]).toEqual([0, 'through the pipe\n']);
    const entries = await cipherEntries(v.cipher);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.type).toBe('file');
    expect(entries[0]!.size).toBe(0);
    expect(entries[0]!.rel).toMatch(/^[a-z2-7]+$/);
    expect(entries[0]!.rel).not.toMatch(/pipe/i);
    await h.unmountOk(v, pid);
    pid = await h.mountOk(v);
    expect(await statLine(fifo)).toBe('fifo 640 0 0:0');
    const again = h.spawn('cat', [fifo], { timeoutMs: 20_000 });
    await writeFile(fifo, 'after remount');
    expect((await again).stdout).toBe('after remount');
    await h.unmountOk(v, pid);
  });

  it('a Unix socket bound in the mount: a client in another process connects and talks to the server', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const path = join(v.mnt, 'd', 'server.sock');
    await mkdir(join(v.mnt, 'd'));
    const server = h.python(
      [
        'import socket, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
        's.bind(sys.argv[1]); s.listen(1)',
        'c, _ = s.accept(); c.sendall(b"hello " + c.recv(100)); c.close()',
      ].join('\n'),
      [path],
      { timeoutMs: 30_000 },
    );
    await waitFor('the socket to be bound', async () => (await lstat(path).catch(() => undefined))?.isSocket() === true, 15_000);
    const client = await h.python(
      ['import socket, sys', 's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)', 's.connect(sys.argv[1]); s.sendall(b"client")', 'print(s.recv(100).decode())'].join('\n'),
      [path],
      { timeoutMs: 20_000 },
    );
    expect(client.code, client.stderr).toBe(0);
    expect(client.stdout.trim()).toBe('hello client');
    expect((await server).code).toBe(0);
    expect((await statLine(path)).split(' ')[0]).toBe('socket');
    await h.unmountOk(v, pid);
  });

  it.skipIf(!isRoot)('mknod as root: a character device shows its device number and survives a remount; without CAP_MKNOD the kernel refuses it; the mount is nodev, so it never opens the device', async () => {
    const v = await h.vault();
    let pid = await h.mountOk(v);
    const dev = join(v.mnt, 'null');
    const made = await h.spawn('mknod', ['-m', '0666', dev, 'c', '1', '3']);
    expect(made.code, made.stderr).toBe(0);
    expect(await statLine(dev)).toBe('character special file 666 0 1:3');
    const block = await h.spawn('mknod', ['-m', '0600', join(v.mnt, 'disk'), 'b', '8', '1']);
    expect(block.code, block.stderr).toBe(0);
    expect(await statLine(join(v.mnt, 'disk'))).toBe('block special file 600 0 8:1');
    // Without CAP_MKNOD the kernel refuses a device before the server is asked (vfs_mknod).
    const unprivileged = await h.spawn('setpriv', ['--bounding-set=-mknod', 'mknod', join(v.mnt, 'sneaky'), 'c', '1', '3']);
    expect(unprivileged.code).not.toBe(0);
    expect(unprivileged.stderr).toMatch(/Operation not permitted/);
    expect((await readdir(v.mnt)).sort()).toEqual(['disk', 'null']);
    const opened = await h.spawn('sh', ['-c', 'echo x > "$1"', 'sh', dev]);
    expect(opened.code).not.toBe(0);
    expect(opened.stderr).toMatch(/Permission denied/);
    expect((await cipherEntries(v.cipher)).map((e) => [e.type, e.size])).toEqual([
      ['file', 0],
      ['file', 0],
    ]);
    await h.unmountOk(v, pid);
    pid = await h.mountOk(v);
    expect(await statLine(dev)).toBe('character special file 666 0 1:3');
    await h.unmountOk(v, pid);
  });

  it('tampering: a special file\'s cipher file written to, and a real FIFO planted under a special file\'s name, show as empty files that open with EIO (never block)', async () => {
    const v = await h.vault();
    let pid = await h.mountOk(v);
    for (const name of ['written', 'swapped']) expect((await h.spawn('mkfifo', [join(v.mnt, name)])).code).toBe(0);
    await h.unmountOk(v, pid);
    const written = await h.cipherPathOf(v, '/written');
    const swapped = await h.cipherPathOf(v, '/swapped');
    await writeFile(written, 'not empty any more');
    await rm(swapped);
    expect((await h.spawn('mkfifo', [swapped])).code).toBe(0);
    pid = await h.mountOk(v);
    expect((await readdir(v.mnt)).sort()).toEqual(['swapped', 'written']);
    for (const name of ['written', 'swapped']) {
      expect(await statLine(join(v.mnt, name)), name).toBe('regular empty file 0 0 0:0');
      const r = await h.spawn('cat', [join(v.mnt, name)], { timeoutMs: 10_000 });
      expect(r.code, name).not.toBe(0);
      expect(r.stderr, name).toMatch(/Input\/output error|Permission denied/);
    }
    const log = (await h.logLines(v)).join('\n');
    expect(log).toMatch(/integrity: \/written: .*must be empty/);
    await h.unmountOk(v, pid);
    const scrub = await h.sealfsKeyed(v, 'scrub', ['--json']);
    expect(scrub.stdout).toMatch(/special-not-empty/);
    expect(scrub.stdout).toMatch(/unexpected-type/);
  });
});

describe.skipIf(!!FUSE_PROBLEM)('rename flags in a mount', { timeout: 240_000 }, () => {
  it('RENAME_NOREPLACE and RENAME_EXCHANGE: file↔file, file↔folder, across folders, long names; RENAME_WHITEOUT refused; names and contents right after a remount', async () => {
    const v = await h.vault({ initArgs: ['--max-name-length', '64'] });
    let pid = await h.mountOk(v);
    const M = v.mnt;
    const long = 'a long name that the vault stores with a sidecar, over 64 characters.txt';
    await mkdir(join(M, 'A'));
    await mkdir(join(M, 'B'));
    await mkdir(join(M, 'A', 'folder'));
    await writeFile(join(M, 'A', 'folder', 'inside'), 'inside the folder');
    await writeFile(join(M, 'A', 'x'), 'X');
    await writeFile(join(M, 'B', 'y'), 'Y');
    await writeFile(join(M, 'B', long), 'LONG');

    // NOREPLACE: an existing target is EEXIST and nothing moves; a free name is taken.
    expect(await renameat2(join(M, 'A', 'x'), join(M, 'B', 'y'), NOREPLACE)).toBe('EEXIST');
    expect(await readFile(join(M, 'B', 'y'), 'utf8')).toBe('Y');
    expect(await renameat2(join(M, 'A', 'x'), join(M, 'A', 'x2'), NOREPLACE)).toBe('');
    expect(await renameat2(join(M, 'A', 'x2'), join(M, 'A', 'x'), NOREPLACE)).toBe('');

    // EXCHANGE: two files in two folders.
    expect(await renameat2(join(M, 'A', 'x'), join(M, 'B', 'y'), EXCHANGE)).toBe('');
    expect(await readFile(join(M, 'A', 'x'), 'utf8')).toBe('Y');
    expect(await readFile(join(M, 'B', 'y'), 'utf8')).toBe('X');
    // A file and a long-named file.
    expect(await renameat2(join(M, 'A', 'x'), join(M, 'B', long), EXCHANGE)).toBe('');
    // A folder and a file in another folder: the folder takes the file's long name and keeps its contents.
    expect(await renameat2(join(M, 'A', 'folder'), join(M, 'B', long), EXCHANGE)).toBe('');
    // A missing entry, a whiteout.
    expect(await renameat2(join(M, 'A', 'x'), join(M, 'A', 'missing'), EXCHANGE)).toBe('ENOENT');
    expect(['EINVAL', 'EPERM']).toContain(await renameat2(join(M, 'A', 'x'), join(M, 'A', 'w'), WHITEOUT));

    const check = async () => {
      expect((await readdir(join(M, 'A'))).sort()).toEqual(['folder', 'x']);
      expect((await readdir(join(M, 'B'))).sort()).toEqual([long, 'y']);
      expect(await readFile(join(M, 'A', 'x'), 'utf8')).toBe('LONG');
      expect(await readFile(join(M, 'A', 'folder'), 'utf8')).toBe('Y');
      expect(await readFile(join(M, 'B', 'y'), 'utf8')).toBe('X');
      expect((await stat(join(M, 'B', long))).isDirectory()).toBe(true);
      expect(await readFile(join(M, 'B', long, 'inside'), 'utf8')).toBe('inside the folder');
    };
    await check();
    await h.unmountOk(v, pid);
    pid = await h.mountOk(v);
    await check();
    await h.unmountOk(v, pid);
    const scrub = await h.sealfsKeyed(v, 'scrub');
    expect(scrub.code, scrub.stdout + scrub.stderr).toBe(0);
  });
});

