/**
 * The hostile provider against a real mount (issue 10, items 6 and 7): modes and owners it
 * plants in the cipher folder must never give another local user more than the mount owner
 * allowed (--allow-other, --others-mode), and names the kernel passes that are not UTF-8 are
 * refused with EILSEQ instead of being merged into one U+FFFD name.
 *
 * Every attack runs from other processes (python3, as root or as nobody), the way programs
 * use the mount; each test checks that a decoy tree outside the vault is unchanged and that
 * the server still answers within a bound afterwards.
 */
import { createHash } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shownAccess, type PermissionRule } from '../src/fs/permissions.js';
import { FUSE_PROBLEM, SHORT_CACHE_ARGS, SHORT_CACHE_MS, sleep, useMountHarness, walk, type TestVault } from './mount-helpers.js';

const h = useMountHarness('hostile-perms');
if (FUSE_PROBLEM) console.warn(`hostile-perms: skipped: ${FUSE_PROBLEM}`);

const NOBODY = 65534;
const IS_ROOT = process.getuid?.() === 0;
/** How long the server may take to answer a plain request after an attack. */
const ANSWER_MS = 2000;

/** A folder outside the vault with files, modes and owners: what no attack may change. */
async function decoy(): Promise<{ dir: string; state: () => Promise<string> }> {
  const dir = join(h.root, `decoy-${Math.random().toString(36).slice(2)}`);
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'secret.txt'), 'decoy secret', { mode: 0o600 });
  await writeFile(join(dir, 'sub', 'other.txt'), 'decoy other', { mode: 0o640 });
  const state = async () => {
    const hash = createHash('sha256');
    for (const e of await walk(dir)) {
      const full = join(dir, e.path);
      const st = await lstat(full);
      hash.update(`${e.path} ${e.kind} ${st.mode.toString(8)} ${st.uid}:${st.gid}\n`);
      if (e.kind === 'file') hash.update(await readFile(full));
    }
    return hash.digest('hex');
  };
  return { dir, state };
}

/** The mount still answers a new request (a fresh folder listed) within ANSWER_MS. */
async function answers(v: TestVault): Promise<void> {
  const started = Date.now();
  const r = await h.python('import os,sys; os.listdir(sys.argv[1]); print("ok")', [v.mnt], { timeoutMs: ANSWER_MS + 5000 });
  expect(r.stdout.trim(), r.stderr).toBe('ok');
  expect(Date.now() - started).toBeLessThan(ANSWER_MS + 1000); // python3's own start-up included
}

describe.skipIf(FUSE_PROBLEM !== undefined)('names from the kernel that are not UTF-8 (real FUSE mount)', { timeout: 60_000 }, () => {
  it('refuses them with EILSEQ in every operation that takes a name: two such names never become one file', async () => {
    const v = await h.vault();
    const outside = await decoy();
    const before = await outside.state();
    const pid = await h.mountOk(v);
    await mkdir(join(v.mnt, 'd'));
    await writeFile(join(v.mnt, 'd', 'plain.txt'), 'plain');
    const cipherBefore = (await walk(v.cipher)).map((e) => e.path);

    // Each attempt prints the errno name it met, or "ok".
    const r = await h.python(
      [
        'import os,sys,json,errno',
        'd=os.fsencode(sys.argv[1])',
        'def attempt(fn):',
        '    try:',
        '        fn(); return "ok"',
        '    except OSError as e: return errno.errorcode[e.errno]',
        'def create(name, data):',
        '    fd=os.open(os.path.join(d, name), os.O_CREAT|os.O_WRONLY|os.O_TRUNC, 0o644); os.write(fd, data); os.close(fd)',
        'out={}',
        'out["create ff"]=attempt(lambda: create(b"x\\xff", b"first"))',
        'out["create fe"]=attempt(lambda: create(b"x\\xfe", b"second"))',
        // Overlong "/" (C0 AF), a surrogate (ED A0 80), past U+10FFFF (F4 90 80 80), a cut sequence.
        'for label, name in [("overlong", b"a\\xc0\\xafb"), ("surrogate", b"a\\xed\\xa0\\x80"), ("too big", b"a\\xf4\\x90\\x80\\x80"), ("cut", b"a\\xe2\\x82")]:',
        '    out["create "+label]=attempt(lambda: create(name, b"x"))',
        'out["stat"]=attempt(lambda: os.stat(os.path.join(d, b"x\\xff")))',
        'out["mkdir"]=attempt(lambda: os.mkdir(os.path.join(d, b"dir\\xff")))',
        'out["symlink name"]=attempt(lambda: os.symlink(b"plain.txt", os.path.join(d, b"l\\xff")))',
        'out["symlink target"]=attempt(lambda: os.symlink(b"t\\xff", os.path.join(d, b"link")))',
        'out["link"]=attempt(lambda: os.link(os.path.join(d, b"plain.txt"), os.path.join(d, b"h\\xff")))',
        'out["rename to"]=attempt(lambda: os.rename(os.path.join(d, b"plain.txt"), os.path.join(d, b"r\\xff")))',
        'out["rename from"]=attempt(lambda: os.rename(os.path.join(d, b"r\\xfe"), os.path.join(d, b"r")))',
        'out["unlink"]=attempt(lambda: os.unlink(os.path.join(d, b"x\\xfe")))',
        'out["rmdir"]=attempt(lambda: os.rmdir(os.path.join(d, b"dir\\xfe")))',
        'out["valid"]=attempt(lambda: create("é ✓ 𝄞.txt".encode(), b"valid"))',
        'out["listing"]=sorted(n.decode() for n in os.listdir(d))',
        'print(json.dumps(out, ensure_ascii=False))',
      ].join('\n'),
      [join(v.mnt, 'd')],
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    const { valid, listing, ...refused } = out;
    for (const [what, code] of Object.entries(refused)) expect(code, what).toBe('EILSEQ');
    expect(valid).toBe('ok');
    expect(listing).toEqual(['plain.txt', 'é ✓ 𝄞.txt'].sort());
    expect(await readFile(join(v.mnt, 'd', 'é ✓ 𝄞.txt'), 'utf8')).toBe('valid');
    expect(await readFile(join(v.mnt, 'd', 'plain.txt'), 'utf8')).toBe('plain');
    // Nothing but the valid name reached the cipher folder.
    expect((await walk(v.cipher)).length).toBe(cipherBefore.length + 1);

    await answers(v);
    expect(await outside.state()).toBe(before);
    await h.unmountOk(v, pid);
  });
});

describe('the permission rule (src/fs/permissions.ts)', () => {
  const FILE = 0o100000;
  const DIR = 0o040000;
  const asRoot = (othersMode: number): PermissionRule => ({ mountOwner: { uid: 0, gid: 0 }, recordedOwners: true, othersMode });
  const asUser: PermissionRule = { mountOwner: { uid: 1000, gid: 1000 }, recordedOwners: false, othersMode: 0o755 };

  it("caps group and other bits by --others-mode and keeps the mount owner's owner bits", () => {
    expect(shownAccess({ mode: FILE | 0o644, uid: 0, gid: 0 }, asRoot(0o701))).toEqual({ mode: FILE | 0o600, uid: 0, gid: 0 });
    expect(shownAccess({ mode: DIR | 0o777, uid: 0, gid: 0 }, asRoot(0o751))).toEqual({ mode: DIR | 0o751, uid: 0, gid: 0 });
    expect(shownAccess({ mode: FILE | 0o640, uid: 0, gid: 0 }, asRoot(0o777))).toEqual({ mode: FILE | 0o640, uid: 0, gid: 0 });
  });

  it("caps another user's owner bits by the owner digit", () => {
    expect(shownAccess({ mode: FILE | 0o777, uid: NOBODY, gid: NOBODY }, asRoot(0o501))).toEqual({ mode: FILE | 0o501, uid: NOBODY, gid: NOBODY });
    expect(shownAccess({ mode: FILE | 0o777, uid: NOBODY, gid: NOBODY }, asRoot(0))).toEqual({ mode: FILE, uid: NOBODY, gid: NOBODY });
  });

  it('never shows setuid or setgid; shows the sticky bit as stored', () => {
    expect(shownAccess({ mode: FILE | 0o6777, uid: 0, gid: 0 }, asRoot(0o777)).mode).toBe(FILE | 0o777);
    expect(shownAccess({ mode: DIR | 0o3777, uid: 0, gid: 0 }, asRoot(0o777)).mode).toBe(DIR | 0o1777);
  });

  it('not running as root, every entry belongs to the mount owner whatever owner the cipher folder names', () => {
    expect(shownAccess({ mode: FILE | 0o666, uid: NOBODY, gid: 4 }, asUser)).toEqual({ mode: FILE | 0o644, uid: 1000, gid: 1000 });
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('sealfs mount --others-mode', () => {
  it('is refused without --allow-other and outside 0-777, before anything is mounted', async () => {
    const v = await h.vault();
    for (const args of [['--others-mode', '750'], ['--allow-other', '--others-mode', '1777'], ['--allow-other', '--others-mode', 'rwx']]) {
      const r = await h.mount(v, { args });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/--others-mode/);
    }
    expect((await walk(v.mnt)).length).toBe(0);
  });
});

/**
 * Runs `ops` as nobody in the mount's folder `dir` (opened as root first: the test's temp
 * folders are private) and returns each result: the data read, "ok", an octal mode, or the
 * errno name. ops: [op, name] with op read | write | stat | create.
 */
async function asNobody(dir: string, ops: [string, string][]): Promise<string[]> {
  const r = await h.python(
    [
      'import os,sys,json,errno',
      'd=os.open(sys.argv[1], os.O_RDONLY)',
      'os.setgroups([]); os.setgid(65534); os.setuid(65534)',
      'def run(op, name):',
      '    try:',
      '        if op == "read":',
      '            fd=os.open(name, os.O_RDONLY, dir_fd=d); data=os.read(fd, 100); os.close(fd); return data.decode()',
      '        if op == "write":',
      '            fd=os.open(name, os.O_WRONLY, dir_fd=d); os.close(fd); return "ok"',
      '        if op == "create":',
      '            fd=os.open(name, os.O_CREAT|os.O_WRONLY|os.O_EXCL, 0o600, dir_fd=d); os.write(fd, b"nobody wrote this"); os.close(fd); return "ok"',
      '        if op == "stat":',
      '            st=os.stat(name, dir_fd=d, follow_symlinks=False); return "%o %d" % (st.st_mode & 0o7777, st.st_uid)',
      '    except OSError as e: return errno.errorcode[e.errno]',
      'print(json.dumps([run(op, name) for op, name in json.loads(sys.argv[2])]))',
    ].join('\n'),
    [dir, JSON.stringify(ops)],
  );
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as string[];
}

/** Past the mount's attribute cache time, so that the kernel asks again. */
const expire = () => sleep(SHORT_CACHE_MS * 2 + 100);

describe.skipIf(FUSE_PROBLEM !== undefined || !IS_ROOT)('modes and owners planted by the provider (--allow-other, real FUSE mount, as root)', { timeout: 60_000 }, () => {
  it('a chmod of the cipher files never gives nobody more than --others-mode; what nobody creates stays theirs', async () => {
    const v = await h.vault();
    const outside = await decoy();
    const before = await outside.state();
    const pid = await h.mountOk(v, { args: ['--allow-other', '--others-mode', '701', ...SHORT_CACHE_ARGS] });
    await chmod(v.mnt, 0o711);
    await writeFile(join(v.mnt, 'secret.txt'), 'root only');
    await chmod(join(v.mnt, 'secret.txt'), 0o600);
    await mkdir(join(v.mnt, 'nobodys'));
    await chown(join(v.mnt, 'nobodys'), NOBODY, NOBODY);
    await chmod(join(v.mnt, 'nobodys'), 0o700);
    const cipherSecret = await h.cipherPathOf(v, '/secret.txt');
    const cipherDir = await h.cipherPathOf(v, '/nobodys');

    // Before any attack: nobody is kept out of the secret, and owns what it creates.
    expect(await asNobody(v.mnt, [['read', 'secret.txt'], ['stat', 'secret.txt'], ['create', 'nobodys/mine.txt'], ['read', 'nobodys/mine.txt']])).toEqual([
      'EACCES',
      '600 0',
      'ok',
      'nobody wrote this',
    ]);
    expect((await lstat(await h.cipherPathOf(v, '/nobodys/mine.txt'))).uid).toBe(NOBODY);

    // The provider opens the secret up (as Syncthing would apply a remote chmod).
    await chmod(cipherSecret, 0o644);
    await expire();
    expect(await asNobody(v.mnt, [['read', 'secret.txt'], ['stat', 'secret.txt']])).toEqual(['EACCES', '600 0']);
    await chmod(cipherSecret, 0o4777);
    await chmod(cipherDir, 0o2777);
    await expire();
    expect(await asNobody(v.mnt, [['read', 'secret.txt'], ['write', 'secret.txt'], ['stat', 'secret.txt'], ['stat', 'nobodys']])).toEqual([
      'EACCES',
      'EACCES',
      '701 0',
      `701 ${NOBODY}`,
    ]);
    // Root sees the same: no provider-set setuid or setgid, nothing beyond the cap.
    expect((await stat(join(v.mnt, 'secret.txt'))).mode & 0o7777).toBe(0o701);
    expect((await stat(join(v.mnt, 'nobodys'))).mode & 0o7777).toBe(0o701);
    expect(await readFile(join(v.mnt, 'secret.txt'), 'utf8')).toBe('root only');

    await answers(v);
    expect(await outside.state()).toBe(before);
    await h.unmountOk(v, pid);
  });

  it('with --allow-other alone other users get nothing, whatever modes and owners the provider sets', async () => {
    const v = await h.vault();
    const outside = await decoy();
    const before = await outside.state();
    const pid = await h.mountOk(v, { args: ['--allow-other', ...SHORT_CACHE_ARGS] });
    await writeFile(join(v.mnt, 'secret.txt'), 'root only');
    await chmod(join(v.mnt, 'secret.txt'), 0o600);
    const cipherSecret = await h.cipherPathOf(v, '/secret.txt');

    // The provider makes the file nobody's, setuid and open to all, and the root folder too.
    await chown(cipherSecret, NOBODY, NOBODY);
    await chmod(cipherSecret, 0o4777);
    await chmod(v.cipher, 0o777);
    await expire();
    expect(await asNobody(v.mnt, [['read', 'secret.txt'], ['write', 'secret.txt'], ['create', 'new.txt']])).toEqual(['EACCES', 'EACCES', 'EACCES']);
    const st = await stat(join(v.mnt, 'secret.txt'));
    expect({ mode: st.mode & 0o7777, uid: st.uid }).toEqual({ mode: 0, uid: NOBODY });
    expect((await stat(v.mnt)).mode & 0o7777).toBe(0o700);

    await answers(v);
    expect(await outside.state()).toBe(before);
    await h.unmountOk(v, pid);
  });

  it('setuid and setgid set through the mount are neither stored nor shown; the sticky bit is', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v, { args: SHORT_CACHE_ARGS.slice() });
    const file = join(v.mnt, 'f');
    await writeFile(file, 'x');
    await mkdir(join(v.mnt, 'd'));
    const cipherFile = await h.cipherPathOf(v, '/f');
    const cipherDir = await h.cipherPathOf(v, '/d');
    for (const [path, cipher, asked, kept] of [
      [file, cipherFile, 0o4755, 0o755],
      [file, cipherFile, 0o2750, 0o750],
      [join(v.mnt, 'd'), cipherDir, 0o3775, 0o1775],
    ] as const) {
      await chmod(path, asked);
      expect((await stat(path)).mode & 0o7777, asked.toString(8)).toBe(kept);
      expect((await stat(cipher)).mode & 0o7777, asked.toString(8)).toBe(kept);
    }
    await h.unmountOk(v, pid);
  });
});
