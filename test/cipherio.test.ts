/**
 * The confined cipher-folder calls (src/vault/cipherio.ts, native/sealfs_fsat.c): no path,
 * planted link or swapped folder in the vault makes them read, write, chmod, chown, utime,
 * create or delete anything outside it. Played on real files, with a decoy tree outside the
 * vault whose contents and modes must not change; for both direct and queued calls, and for
 * both resolvers (openat2, and the component walk that kernels without openat2 get).
 */
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { contentContext } from '../src/crypto/context.js';
import { verifySealedFile } from '../src/tools/scrub.js';
import { cipherIoFor, type CipherIo } from '../src/vault/cipherio.js';
import { fsatAddon } from '../src/vault/fsat.js';
import { ALLOW_NO_NATIVE } from './helpers.js';

const addon = fsatAddon();
if (!addon && !ALLOW_NO_NATIVE) throw new Error('the native addon is not built: the confined calls cannot be tested');

/** Every file and folder under `dir` with its mode, size, times and contents' hash. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string, rel: string) => {
    const st = fs.lstatSync(path);
    let what = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs}`;
    if (st.isFile()) what += ' ' + createHash('sha256').update(fs.readFileSync(path)).digest('hex');
    if (st.isSymbolicLink()) what += ' -> ' + fs.readlinkSync(path);
    out[rel] = what;
    if (st.isDirectory()) for (const name of fs.readdirSync(path)) walk(join(path, name), `${rel}/${name}`);
  };
  walk(dir, '.');
  return out;
}

let base: string;
let vault: string;
let decoy: string;
const servers: ReturnType<typeof createServer>[] = [];

beforeEach(async () => {
  base = fs.mkdtempSync(join(tmpdir(), 'sealfs-cipherio-'));
  vault = join(base, 'vault');
  decoy = join(base, 'decoy');
  fs.mkdirSync(join(decoy, 'sub'), { recursive: true });
  for (let i = 0; i < 5; i++) fs.writeFileSync(join(decoy, `f${i}`), `decoy ${i}\n`, { mode: 0o640 });
  fs.writeFileSync(join(decoy, 'sub', 'deep'), 'deep\n', { mode: 0o600 });
  fs.mkdirSync(join(vault, 'd'), { recursive: true });
  fs.writeFileSync(join(vault, 'd', 'file'), 'inside\n');
  // The provider's plants: a folder and a file swapped for links out of the vault, a folder
  // where a file was, a socket (a special file that Node can make in this process).
  fs.symlinkSync(decoy, join(vault, 'ld'));
  fs.symlinkSync(join(decoy, 'f0'), join(vault, 'lf'));
  fs.symlinkSync('../../decoy', join(vault, 'd', 'up'));
  fs.mkdirSync(join(vault, 'dirfile'));
  const server = createServer();
  servers.push(server);
  await new Promise<void>((done) => server.listen(join(vault, 'sock'), done));
});

afterEach(() => {
  for (const server of servers.splice(0)) server.close();
  addon?.fsatForceWalk(false);
  fs.rmSync(base, { recursive: true, force: true });
});

afterAll(() => addon?.fsatForceWalk(false));

async function code(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

const MODES = [
  { name: 'direct, openat2', direct: true, walk: false },
  { name: 'queued, openat2', direct: false, walk: false },
  { name: 'direct, component walk', direct: true, walk: true },
  { name: 'queued, component walk', direct: false, walk: true },
];

describe.skipIf(!addon).each(MODES)('confined cipher io ($name)', ({ direct, walk }) => {
  let io: CipherIo;
  beforeEach(() => {
    addon!.fsatForceWalk(walk);
    io = cipherIoFor({ directIo: direct }, vault);
  });

  it('sets the vault root folder\'s own mode, owner and times (the mount root\'s chmod, chown, touch)', async () => {
    const before = snapshot(decoy);
    await io.lstat(vault);
    await io.chmod(vault, 0o710);
    expect(fs.statSync(vault).mode & 0o7777).toBe(0o710);
    await io.lchown(vault, process.getuid!(), process.getgid!());
    await io.lutimes(vault, new Date(1_000_000_000_500), 1_200_000_000.25);
    const st = fs.statSync(vault);
    expect([st.atimeMs, st.mtimeMs]).toEqual([1_000_000_000_500, 1_200_000_000_250]);
    expect(snapshot(decoy)).toEqual(before);
  });

  it('stats many entries of one folder in one call, each without following it; a name that is not one entry is refused', async () => {
    const before = snapshot(decoy);
    const got = await io.lstatMany(vault, ['d', 'lf', 'ld', 'sock', 'missing', '..', '.', 'd/file', '']);
    const kinds = got.slice(0, 4).map((st) => st && [st.isDirectory(), st.isSymbolicLink(), st.isSocket()]);
    expect(kinds).toEqual([[true, false, false], [false, true, false], [false, true, false], [false, false, true]]);
    expect(got[1]!.ino).toBe(fs.lstatSync(join(vault, 'lf')).ino);
    expect(got.slice(4)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect((await io.lstatMany(join(vault, 'd'), ['up', 'file'])).map((st) => st?.isSymbolicLink())).toEqual([true, false]);
    expect(await code(io.lstatMany(join(vault, 'ld'), ['f0']))).toBe('ELOOP');
    expect(await io.lstatMany(vault, [])).toEqual([]);
    expect(snapshot(decoy)).toEqual(before);
  });

  it('does its ordinary work inside the vault', async () => {
    const v = (p: string) => join(vault, p);
    expect(io.direct).toBe(direct);
    await io.mkdir(v('new'), 0o750);
    await io.writeText(v('new/a'), 'text');
    expect(fs.readFileSync(v('new/a'), 'utf8')).toBe('text');
    await io.writeText(v('new/a'), 'te');
    expect(fs.readFileSync(v('new/a'), 'utf8')).toBe('te');
    expect((await io.readdir(v('new'))).sort()).toEqual(['a']);
    const listed = await io.readdirTypes(vault);
    const kinds = Object.fromEntries(listed.map((e) => [e.name, [e.isFile(), e.isDirectory(), e.isSymbolicLink(), e.isSocket()]]));
    expect(kinds).toEqual({
      d: [false, true, false, false], new: [false, true, false, false], ld: [false, false, true, false],
      lf: [false, false, true, false], dirfile: [false, true, false, false], sock: [false, false, false, true],
    });
    const st = await io.lstat(v('new/a'));
    expect([st.isFile(), st.size, st.ino]).toEqual([true, 2, fs.lstatSync(v('new/a')).ino]);
    expect((await io.lstat(vault)).isDirectory()).toBe(true);
    expect((await io.lstat(v('lf'))).isSymbolicLink()).toBe(true);
    const fd = await io.open(v('new/a'), fs.constants.O_RDWR);
    expect((await io.fstat(fd)).size).toBe(2);
    await io.close(fd);
    const created = await io.open(v('new/b'), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    await io.close(created);
    expect(await code(io.open(v('new/b'), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600))).toBe('EEXIST');
    await io.chmod(v('new/b'), 0o640);
    expect(fs.statSync(v('new/b')).mode & 0o777).toBe(0o640);
    await io.lchown(v('new/b'), process.getuid!(), process.getgid!());
    await io.lutimes(v('new/b'), new Date(1_000_000_000_500), 1_200_000_000.25);
    const times = fs.statSync(v('new/b'));
    expect([times.atimeMs, times.mtimeMs]).toEqual([1_000_000_000_500, 1_200_000_000_250]);
    await io.link(v('new/b'), v('new/c'));
    expect(fs.statSync(v('new/c')).nlink).toBe(2);
    await io.rename(v('new/c'), v('d/c'));
    await io.symlink('opaque target', v('new/s'));
    expect(await io.readlink(v('new/s'))).toBe('opaque target');
    await io.unlink(v('d/c'));
    expect((await io.statfs(vault)).bsize).toBeGreaterThan(0);
    for (const name of await io.readdir(v('new'))) await io.unlink(v(`new/${name}`));
    await io.rmdir(v('new'));
    expect(fs.existsSync(v('new'))).toBe(false);
    await io.rmdir(v('dirfile'));
  });

  it('never goes through a folder swapped for a link, nor up and out', async () => {
    const before = snapshot(decoy);
    // Raw strings, not path.join: the '..' must reach the calls as the provider wrote it.
    const ways = [`${vault}/ld`, `${vault}/d/up`, `${vault}/d/../../decoy`, `${vault}/d/up/../decoy`, `${vault}/ld/sub/..`];
    for (const dir of ways) {
      const f = `${dir}/f1`;
      const calls: [string, () => Promise<unknown>][] = [
        ['lstat', () => io.lstat(f)],
        ['readdir', () => io.readdir(dir)],
        ['readdirTypes', () => io.readdirTypes(`${dir}/sub`)],
        ['writeText', () => io.writeText(f, 'pwned')],
        ['open', () => io.open(f, fs.constants.O_RDWR | fs.constants.O_TRUNC)],
        ['create', () => io.open(`${dir}/new`, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o666)],
        ['mkdir', () => io.mkdir(`${dir}/newdir`, 0o777)],
        ['rmdir', () => io.rmdir(`${dir}/sub`)],
        ['unlink', () => io.unlink(f)],
        ['rename from', () => io.rename(f, join(vault, 'stolen'))],
        ['rename to', () => io.rename(join(vault, 'd', 'file'), `${dir}/f2`)],
        ['link from', () => io.link(f, join(vault, 'stolen'))],
        ['link to', () => io.link(join(vault, 'd', 'file'), `${dir}/planted`)],
        ['symlink', () => io.symlink('x', `${dir}/planted`)],
        ['readlink', () => io.readlink(f)],
        ['chmod', () => io.chmod(f, 0o777)],
        ['lchown', () => io.lchown(f, 65534, 65534)],
        ['lutimes', () => io.lutimes(f, 0, 0)],
        ['statfs', () => io.statfs(dir)],
      ];
      for (const [what, call] of calls) {
        expect([dir, what, await code(call())]).toEqual([dir, what, expect.stringMatching(/^(ELOOP|EXDEV|ENOTDIR)$/)]);
      }
    }
    expect(snapshot(decoy)).toEqual(before);
    expect(fs.readFileSync(join(vault, 'd', 'file'), 'utf8')).toBe('inside\n');
  });

  it('acts on a planted link itself, never on its target', async () => {
    const before = snapshot(decoy);
    const lf = join(vault, 'lf');
    expect(await code(io.open(lf, fs.constants.O_RDWR))).toBe('ELOOP');
    expect(await code(io.open(lf, fs.constants.O_RDONLY))).toBe('ELOOP');
    expect(await code(io.writeText(lf, 'pwned'))).toBe('ELOOP');
    expect(await code(io.chmod(lf, 0o777))).toMatch(/^(ENOTSUP|EOPNOTSUPP)$/);
    expect(await code(io.readdir(join(vault, 'ld')))).toBe('ELOOP');
    await io.lutimes(lf, 5, 5);
    expect(fs.lstatSync(lf).mtimeMs).toBe(5000);
    await io.lchown(lf, 65534, 65534);
    expect(fs.lstatSync(lf).uid).toBe(65534);
    await io.unlink(join(vault, 'ld'));
    await io.unlink(lf);
    expect(fs.existsSync(lf) || fs.existsSync(join(vault, 'ld'))).toBe(false);
    expect(snapshot(decoy)).toEqual(before);
  });

  it('sets times to the nanosecond (utimens, futimens), leaves an undefined one, never follows a link, and gives times only to an open regular file', async () => {
    const before = snapshot(decoy);
    const file = join(vault, 'd', 'file');
    const ns = (path: string) => fs.lstatSync(path, { bigint: true });
    // Exact times, also before 1970 (negative seconds, nanoseconds counted forward).
    await io.utimens(file, 981173106_123456789n, -1_000_000_001n);
    expect([ns(file).atimeNs, ns(file).mtimeNs]).toEqual([981173106_123456789n, -1_000_000_001n]);
    const st = await io.lstat(file);
    expect(st.mtimeMs).toBeCloseTo(-1000.000001, 6);
    expect(((await io.lstat(file)) as fs.Stats & { atimeNs: bigint }).atimeNs).toBe(981173106_123456789n);
    // An undefined time stays (UTIME_OMIT).
    await io.utimens(file, undefined, 1_500_000_000_999999999n);
    expect([ns(file).atimeNs, ns(file).mtimeNs]).toEqual([981173106_123456789n, 1_500_000_000_999999999n]);
    // A planted link gets the time itself; its target outside is untouched.
    await io.utimens(join(vault, 'lf'), 7n, 8n);
    expect(ns(join(vault, 'lf')).mtimeNs).toBe(8n);
    // Through the descriptor of a file opened with open(); fstat answers the exact times too.
    const fd = await io.open(file, fs.constants.O_RDWR);
    try {
      await io.futimens(fd, file, 1_600_000_000_000000001n, undefined);
      expect([ns(file).atimeNs, ns(file).mtimeNs]).toEqual([1_600_000_000_000000001n, 1_500_000_000_999999999n]);
      expect(((await io.fstat(fd)) as fs.Stats & { atimeNs: bigint }).atimeNs).toBe(1_600_000_000_000000001n);
    } finally {
      await io.close(fd);
    }
    // A descriptor that is not a regular file (a folder, here one outside the vault) gets no time.
    const dirFd = fs.openSync(decoy, 'r');
    try {
      expect(await code(io.futimens(dirFd, file, 1n, 1n))).toBe('EBADF');
    } finally {
      fs.closeSync(dirFd);
    }
    expect(io.now()).toBeGreaterThan(BigInt(Date.now() - 10_000) * 1_000_000n);
    expect(snapshot(decoy)).toEqual(before);
  });

  it('reads a control file only when it is a regular file inside the vault, and only so much', async () => {
    const before = snapshot(decoy);
    fs.writeFileSync(join(vault, 'd', 'big'), Buffer.alloc(100_000, 7));
    expect(Buffer.from(await io.readBounded(join(vault, 'd', 'big'), 10))).toEqual(Buffer.alloc(10, 7));
    expect(Buffer.from(await io.readBounded(join(vault, 'd', 'file'), 100)).toString()).toBe('inside\n');
    expect(await code(io.readBounded(join(vault, 'lf'), 100))).toBe('ELOOP');
    expect(await code(io.readBounded(`${vault}/ld/f1`, 100))).toBe('ELOOP');
    expect(await code(io.readBounded(join(vault, 'sock'), 100))).toBe('EIO');
    expect(await code(io.readBounded(join(vault, 'dirfile'), 100))).toBe('EIO');
    expect(snapshot(decoy)).toEqual(before);
  });

  it('refuses to open anything but a regular file, without blocking', async () => {
    for (const name of ['dirfile', 'sock']) {
      for (const flags of [fs.constants.O_RDONLY, fs.constants.O_RDWR]) {
        expect([name, flags, await code(io.open(join(vault, name), flags))]).toEqual([name, flags, 'EIO']);
      }
      expect([name, await code(io.writeText(join(vault, name), 'x'))]).toEqual([name, 'EIO']);
    }
  });

  it('lists folders and reads file contents on the thread pool, never on the calling thread; metadata as the mode says', async () => {
    fs.writeFileSync(join(vault, 'small'), 'small');
    await io.lstat(vault);
    // Occupy libuv's whole pool (4 threads) for a while: a queued call waits behind that work,
    // a direct one does not. A file added after the listing was asked for then shows whether
    // the listing ran at once (on this thread) or later (queued).
    const busy = Array.from({ length: 4 }, () => new Promise((done) => crypto.pbkdf2('x', 'salt', 300_000, 32, 'sha256', done)));
    const order: string[] = [];
    const listing = io.readdir(vault).then((names) => (order.push('readdir'), names));
    const content = io.readBounded(join(vault, 'small'), 100).then((bytes) => (order.push('readBounded'), bytes));
    const meta = io.lstat(join(vault, 'small')).then(() => order.push('lstat'));
    fs.writeFileSync(join(vault, 'added later'), '');
    fs.writeFileSync(join(vault, 'small'), 'changed');
    const [names, bytes] = await Promise.all([listing, content, meta]);
    await Promise.all(busy);
    expect(names).toContain('added later');
    expect(Buffer.from(bytes).toString()).toBe('changed');
    if (direct) expect(order[0]).toBe('lstat');
  });

  it('refuses paths outside the vault and the names . and ..', async () => {
    const before = snapshot(decoy);
    expect(await code(io.unlink(join(decoy, 'f1')))).toBe('EXDEV');
    expect(await code(io.rename(join(vault, 'd', 'file'), join(decoy, 'f1')))).toBe('EXDEV');
    expect(await code(io.lstat(`${vault}-other/x`))).toBe('EXDEV');
    expect(await code(io.rmdir(join(vault, 'd') + '/..'))).toBe('EINVAL');
    expect(await code(io.rmdir(join(vault, 'd') + '/.'))).toBe('EINVAL');
    expect(snapshot(decoy)).toEqual(before);
  });

  it('keeps to the vault folder it opened when the root path is swapped for a link', async () => {
    await io.lstat(vault); // the root is opened at the first call
    const before = snapshot(decoy);
    fs.renameSync(vault, join(base, 'moved'));
    fs.symlinkSync(decoy, vault);
    await io.unlink(join(vault, 'd', 'file'));
    expect(fs.existsSync(join(base, 'moved', 'd', 'file'))).toBe(false);
    expect(snapshot(decoy)).toEqual(before);
  });
});

describe('scrub reads cipher files without following links', () => {
  it('a cipher file that is a symlink out of the vault, a folder or a socket is unreadable, and nothing outside is read', async () => {
    const ctx = contentContext(new Uint8Array(32).fill(1), { backend: 'node' });
    const results: Record<string, string> = {};
    for (const name of ['lf', 'dirfile', 'sock']) {
      const verdict = await verifySealedFile(join(vault, name), ctx);
      results[name] = `${verdict.failure?.kind}: ${verdict.failure?.detail}`;
    }
    expect(results).toEqual({
      lf: expect.stringMatching(/^unreadable: cannot open: ELOOP/),
      dirfile: 'unreadable: cannot open: not a regular file',
      sock: expect.stringMatching(/^unreadable: cannot open: ENXIO/),
    });
  });

  it.skipIf(!addon)('through the vault\'s confined calls, a folder on the way swapped for a link is not followed either', async () => {
    const ctx = contentContext(new Uint8Array(32).fill(1), { backend: 'node' });
    const io = cipherIoFor({ directIo: false }, vault);
    const verdict = await verifySealedFile(`${vault}/ld/f1`, ctx, undefined, undefined, io);
    expect(verdict.failure).toEqual({ kind: 'unreadable', chunk: null, detail: expect.stringMatching(/^cannot open: ELOOP/) });
    expect((await verifySealedFile(`${vault}/d/file`, ctx, undefined, undefined, io)).failure?.kind).not.toBe('unreadable');
  });
});
