/**
 * Extended attributes through a real mount (issue 12 item 2, docs/FORMAT.md §14.2), as programs
 * use them: setfattr/getfattr (Debian package attr), python3's os.*xattr and libc's getxattr
 * with size probing from another process, cp --preserve=xattr, rsync -X, setfacl. Plaintext
 * names and values must be absent from the cipher folder in every readable form; the
 * provider's tricks (a sealed value copied to another file or name, planted names) must give
 * EIO or nothing, never other bytes. The large-value test keeps its cipher folder on a tmpfs
 * of its own (ext4, where the other tests run, keeps an inode's attributes in one 4 KiB block).
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { link, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { base32nopad, base64, base64urlnopad } from '@scure/base';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, freshFolders, useMountHarness, walk, type TestVault } from './mount-helpers.js';

const h = useMountHarness('mount-xattr');
if (FUSE_PROBLEM) console.warn(`mount-xattr: skipped: ${FUSE_PROBLEM}`);
const HAVE_ATTR = !FUSE_PROBLEM && hasCommand('setfattr') && hasCommand('getfattr');
if (!FUSE_PROBLEM && !HAVE_ATTR) console.warn('mount-xattr: setfattr/getfattr missing (Debian package attr; scripts/setup.sh --tests installs it)');

function hasCommand(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      return statSync(join(dir, name)).isFile();
    } catch {
      return false;
    }
  });
}

let v: TestVault;
let M: string;
const fresh = freshFolders(() => M);

/**
 * Python helper run in another process: `op path [name [value-hex [flags]]]`; prints JSON
 * {ok, value|names|size, errno}. Sizes are probed with libc's getxattr/listxattr (size 0, then
 * a buffer one byte too small: ERANGE).
 */
const PY = String.raw`
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
op, path = sys.argv[1], sys.argv[2]
name = bytes.fromhex(sys.argv[3]) if len(sys.argv) > 3 else b''
try:
    if op == 'get': print(json.dumps({'ok': True, 'value': os.getxattr(path, name).hex()}))
    elif op == 'set': os.setxattr(path, name, bytes.fromhex(sys.argv[4]), int(sys.argv[5])); print(json.dumps({'ok': True}))
    elif op == 'remove': os.removexattr(path, name); print(json.dumps({'ok': True}))
    elif op == 'list': print(json.dumps({'ok': True, 'names': [n.encode('utf-8', 'surrogateescape').hex() for n in os.listxattr(path)]}))
    elif op == 'probe':
        need = libc.getxattr(path.encode(), name, None, 0)
        small = ctypes.create_string_buffer(max(need - 1, 1))
        r = libc.getxattr(path.encode(), name, small, max(need - 1, 1)) if need > 0 else 0
        e = ctypes.get_errno()
        lneed = libc.listxattr(path.encode(), None, 0)
        lsmall = ctypes.create_string_buffer(max(lneed - 1, 1))
        lr = libc.listxattr(path.encode(), lsmall, max(lneed - 1, 1))
        le = ctypes.get_errno()
        print(json.dumps({'ok': True, 'size': need, 'small': [r, errno.errorcode.get(e)], 'listSize': lneed, 'listSmall': [lr, errno.errorcode.get(le)]}))
except OSError as e:
    print(json.dumps({'ok': False, 'errno': errno.errorcode.get(e.errno)}))
`;
interface PyResult {
  ok: boolean;
  value?: string;
  names?: string[];
  errno?: string;
  size?: number;
  small?: [number, string];
  listSize?: number;
  listSmall?: [number, string];
}
const hex = (s: string | Uint8Array) => Buffer.from(s).toString('hex');
async function py(op: string, path: string, name?: string | Uint8Array, value?: string | Uint8Array, flags = 0): Promise<PyResult> {
  const args = [op, path, ...(name === undefined ? [] : [hex(name)]), ...(value === undefined ? [] : [hex(value), String(flags)])];
  const r = await h.python(PY, args);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as PyResult;
}
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

/** Every name, symlink target, file byte, and xattr name and value of the cipher folder: what a provider sees. */
async function cipherHaystack(cipherDir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  const paths = [cipherDir, ...(await walk(cipherDir)).map((e) => join(cipherDir, e.path))];
  for (const entry of await walk(cipherDir)) {
    parts.push(Buffer.from(entry.name));
    if (entry.kind === 'file') parts.push(await readFile(join(cipherDir, entry.path)));
  }
  // Every attribute of every entry, in the dump format of getfattr (names and hex values).
  const dump = await h.spawn('getfattr', ['--absolute-names', '-h', '-d', '-m', '-', '-e', 'hex', ...paths]);
  expect(dump.code, dump.stderr).toBe(0);
  parts.push(Buffer.from(dump.stdout));
  for (const line of dump.stdout.split('\n')) {
    const m = /^([^=]+)=0x([0-9a-f]*)$/.exec(line);
    if (m) parts.push(Buffer.from(m[1]!), Buffer.from(m[2]!, 'hex'));
  }
  return Buffer.concat(parts);
}

/** The readable forms a secret could take: raw, hex, base64 (both alphabets), base32 (both cases). */
function forms(secret: Buffer): Buffer[] {
  const b32 = base32nopad.encode(secret);
  return [secret, Buffer.from(secret.toString('hex')), Buffer.from(secret.toString('hex').toUpperCase()), Buffer.from(base64.encode(secret).replace(/=+$/, '')), Buffer.from(base64urlnopad.encode(secret)), Buffer.from(b32), Buffer.from(b32.toLowerCase())];
}

describe.skipIf(!HAVE_ATTR)('extended attributes through the mount', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    v = await h.vault();
    await h.mountOk(v, { scope: 'file' });
    M = v.mnt;
  }, 60_000);

  it('setfattr, getfattr and python3 set, read, list and remove user.* attributes of files, folders and the mount root; XATTR_CREATE/REPLACE; ENODATA; ERANGE probing; nothing readable in the cipher folder', async () => {
    const d = await fresh('basic');
    const f = join(d, 'tagged.txt');
    await writeFile(f, 'content');
    await mkdir(join(d, 'folder'));
    const secretName = `user.xdg.tags.${randomBytes(6).toString('hex')}`;
    const secretValue = `XATTR-VALUE-${randomBytes(8).toString('hex')}`;
    const binaryName = Buffer.concat([Buffer.from('user.'), randomBytes(6), Buffer.from([0xff])]).filter((b) => b !== 0);
    const binaryValue = Buffer.concat([randomBytes(40), Buffer.from([0, 0, 0])]);
    for (const path of [f, join(d, 'folder'), M]) {
      const set = await h.spawn('setfattr', ['-n', secretName, '-v', secretValue, path]);
      expect(set.code, set.stderr).toBe(0);
      const get = await h.spawn('getfattr', ['--absolute-names', '--only-values', '-n', secretName, path]);
      expect(get.code, get.stderr).toBe(0);
      expect(get.stdout).toBe(secretValue);
      const dump = await h.spawn('getfattr', ['--absolute-names', '-d', path]);
      expect(dump.stdout).toContain(`${secretName}="${secretValue}"`);
      expect((await py('set', path, binaryName, binaryValue)).ok).toBe(true);
      expect((await py('get', path, binaryName)).value).toBe(hex(binaryValue));
      expect((await py('list', path)).names!.sort()).toEqual([hex(binaryName), hex(secretName)].sort());
      // XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one.
      expect(await py('set', path, secretName, 'x', XATTR_CREATE)).toEqual({ ok: false, errno: 'EEXIST' });
      expect(await py('set', path, 'user.absent', 'x', XATTR_REPLACE)).toEqual({ ok: false, errno: 'ENODATA' });
      expect(await py('get', path, 'user.absent')).toEqual({ ok: false, errno: 'ENODATA' });
      // Size probing: size 0 answers the size, one byte short is ERANGE.
      const probe = await py('probe', path, secretName);
      expect(probe.size).toBe(secretValue.length);
      expect(probe.small).toEqual([-1, 'ERANGE']);
      expect(probe.listSize).toBe(secretName.length + 1 + binaryName.length + 1);
      expect(probe.listSmall).toEqual([-1, 'ERANGE']);
      expect(await py('remove', path, binaryName)).toEqual({ ok: true });
      expect((await py('list', path)).names).toEqual([hex(secretName)]);
      if (path !== M) {
        const removed = await h.spawn('setfattr', ['-x', secretName, path]);
        expect(removed.code, removed.stderr).toBe(0);
        expect((await py('list', path)).names).toEqual([]);
        expect((await h.spawn('setfattr', ['-n', secretName, '-v', secretValue, path])).code).toBe(0);
      }
      expect(await py('remove', path, binaryName)).toEqual({ ok: false, errno: 'ENODATA' });
    }
    // What the provider sees: encrypted names under user.sealfs., sealed values, no plaintext in any form.
    const hay = await cipherHaystack(v.cipher);
    for (const secret of [secretName.slice('user.'.length), secretValue, binaryValue.subarray(0, 20), binaryName.subarray(5)]) {
      for (const form of forms(Buffer.from(secret))) expect(hay.includes(form), `${Buffer.from(secret).toString('hex')} as ${form.toString('latin1')}`).toBe(false);
    }
    const cipherFile = await h.cipherPathOf(v, f.slice(M.length));
    const stored = await h.spawn('getfattr', ['--absolute-names', '-d', '-m', '-', cipherFile]);
    expect(stored.stdout).toMatch(/^user\.sealfs\.[a-z2-7]+=/m);
    expect(stored.stdout).not.toMatch(/^user\.(?!sealfs\.)/m);
  });

  it('a link has no user.* attributes (EPERM, as on Linux); security.*, trusted.* and POSIX ACLs are EOPNOTSUPP, and user.* keeps working after them', async () => {
    const d = await fresh('refused');
    const f = join(d, 'file');
    await writeFile(f, 'x');
    await symlink('file', join(d, 'link'));
    const onLink = await h.spawn('setfattr', ['-h', '-n', 'user.a', '-v', '1', join(d, 'link')]);
    expect(onLink.code).not.toBe(0);
    expect(onLink.stderr).toMatch(/Operation not permitted/);
    // Without -h the link is followed: the file gets it.
    expect((await h.spawn('setfattr', ['-n', 'user.a', '-v', '1', join(d, 'link')])).code).toBe(0);
    expect((await py('get', f, 'user.a')).value).toBe(hex('1'));
    for (const name of ['security.test', 'trusted.test']) {
      expect(await py('set', f, name, 'x'), name).toEqual({ ok: false, errno: 'ENOTSUP' }); // EOPNOTSUPP: one number on Linux
      expect(await py('get', f, name), name).toEqual({ ok: false, errno: 'ENODATA' });
    }
    // The kernel checks an ACL's bytes itself before passing them on: setfacl makes valid ones.
    expect(await py('get', f, 'system.posix_acl_access')).toEqual({ ok: false, errno: 'ENODATA' });
    const acl = await h.spawn('setfacl', ['-m', 'u:nobody:r', f]);
    if (acl.code !== -1) {
      expect(acl.code).not.toBe(0);
      expect(acl.stderr).toMatch(/Operation not supported/);
    }
    // The kernel was never told "no extended attributes here" (ENOSYS would stick until unmount).
    expect((await py('set', f, 'user.after', 'still')).ok).toBe(true);
    expect((await py('get', f, 'user.after')).value).toBe(hex('still'));
    expect((await py('list', f)).names!.sort()).toEqual([hex('user.a'), hex('user.after')]);
  });

  it('attributes stay across a remount and belong to the file, not the name (hard links, rename)', async () => {
    const w = await h.vault();
    const pid = await h.mountOk(w);
    await mkdir(join(w.mnt, 'dir'));
    await writeFile(join(w.mnt, 'dir', 'a'), 'a');
    expect((await py('set', join(w.mnt, 'dir', 'a'), 'user.kept', 'file value')).ok).toBe(true);
    expect((await py('set', join(w.mnt, 'dir'), 'user.kept', 'dir value')).ok).toBe(true);
    await link(join(w.mnt, 'dir', 'a'), join(w.mnt, 'dir', 'b'));
    await h.unmountOk(w, pid);
    await h.mountOk(w);
    expect((await py('get', join(w.mnt, 'dir', 'a'), 'user.kept')).value).toBe(hex('file value'));
    expect((await py('get', join(w.mnt, 'dir', 'b'), 'user.kept')).value).toBe(hex('file value'));
    expect((await py('get', join(w.mnt, 'dir'), 'user.kept')).value).toBe(hex('dir value'));
    const mv = await h.spawn('mv', [join(w.mnt, 'dir'), join(w.mnt, 'renamed')]);
    expect(mv.code, mv.stderr).toBe(0);
    expect((await py('get', join(w.mnt, 'renamed', 'a'), 'user.kept')).value).toBe(hex('file value'));
    expect((await py('get', join(w.mnt, 'renamed'), 'user.kept')).value).toBe(hex('dir value'));
  });

  it('the provider copies a sealed value to another file or name: EIO, logged; foreign attributes are not shown; planted ones are skipped and logged', async () => {
    const d = await fresh('hostile');
    for (const name of ['a', 'b']) await writeFile(join(d, name), name);
    expect((await py('set', join(d, 'a'), 'user.secret', 'belongs to a')).ok).toBe(true);
    expect((await py('set', join(d, 'a'), 'user.other', 'x')).ok).toBe(true);
    const [ca, cb] = [await h.cipherPathOf(v, `${d.slice(M.length)}/a`), await h.cipherPathOf(v, `${d.slice(M.length)}/b`)];
    const listed = (await py('list', ca)).names!.map((n) => Buffer.from(n, 'hex').toString());
    expect(listed).toHaveLength(2);
    const storedValues = await Promise.all(listed.map(async (n) => (await py('get', ca, n)).value!));
    // Which stored name is user.secret's: the one whose value is 12 + 30 bytes long.
    const k = storedValues.findIndex((value) => value.length === 2 * ('belongs to a'.length + 30));
    const [secretName, otherName] = [listed[k]!, listed[1 - k]!];
    // Copied to another file under the same stored name, and to another name of the same file.
    expect((await py('set', cb, secretName, Buffer.from(storedValues[k]!, 'hex'))).ok).toBe(true);
    expect((await py('set', ca, otherName, Buffer.from(storedValues[k]!, 'hex'))).ok).toBe(true);
    expect(await py('get', join(d, 'b'), 'user.secret')).toEqual({ ok: false, errno: 'EIO' });
    expect(await py('get', join(d, 'a'), 'user.other')).toEqual({ ok: false, errno: 'EIO' });
    expect((await py('get', join(d, 'a'), 'user.secret')).value).toBe(hex('belongs to a'));
    // A sync client's own attribute and planted ones of ours.
    expect((await py('set', cb, 'user.com.dropbox.attributes', 'foreign')).ok).toBe(true);
    expect((await py('set', cb, 'user.sealfs.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'planted')).ok).toBe(true);
    expect((await py('set', cb, 'user.sealfs.garbage!', 'planted')).ok).toBe(true);
    expect((await py('list', join(d, 'b'))).names).toEqual([hex('user.secret')]);
    const dump = await h.spawn('getfattr', ['--absolute-names', '-d', '-m', '-', join(d, 'b')]);
    expect(dump.stdout).not.toMatch(/dropbox|sealfs|planted|foreign/);
    const log = (await h.logLines(v)).join('\n');
    expect(log).toMatch(/integrity: .*\/b: extended attribute "user\.secret" does not authenticate/);
    expect(log).toMatch(/integrity: .*\/a: extended attribute "user\.other" does not authenticate/);
    expect(log).toMatch(/extended attribute "user\.sealfs\.garbage!" of .* does not decrypt: not listed/);
    expect(log).not.toContain('belongs to a');
  });

  it('cp --preserve=xattr and rsync -X carry attributes into the mount and out again', async () => {
    const d = await fresh('copies');
    const src = join(h.root, 'xattr-src');
    await mkdir(join(src, 'sub'), { recursive: true });
    const attrs: [string, string, string][] = [
      ['f1', 'user.xdg.comment', 'a comment, with ünïcödé'],
      ['f1', 'user.xdg.origin.url', 'https://example.org/f1'],
      ['sub', 'user.xdg.tags', 'red,blue'],
      ['sub/f2', 'user.mime_type', 'text/plain'],
    ];
    await writeFile(join(src, 'f1'), randomBytes(100_000));
    await writeFile(join(src, 'sub', 'f2'), 'two');
    for (const [path, name, value] of attrs) expect((await py('set', join(src, path), name, value)).ok).toBe(true);
    const expectAttrs = async (root: string) => {
      for (const [path, name, value] of attrs) expect((await py('get', join(root, path), name)).value, `${root}/${path} ${name}`).toBe(hex(value));
    };
    const cpIn = await h.spawn('cp', ['-r', '--preserve=xattr', join(src, '.'), join(d, 'cp')]);
    expect(cpIn.code, cpIn.stderr).toBe(0);
    await expectAttrs(join(d, 'cp'));
    const cpOut = await h.spawn('cp', ['-r', '--preserve=xattr', join(d, 'cp', '.'), join(src, '..', 'xattr-back-cp')]);
    expect(cpOut.code, cpOut.stderr).toBe(0);
    await expectAttrs(join(src, '..', 'xattr-back-cp'));
    const rsync = await h.spawn('rsync', ['--version']);
    if (rsync.code === -1) {
      console.warn('mount-xattr: rsync missing: rsync -X not tried');
      return;
    }
    const rIn = await h.spawn('rsync', ['-aX', `${src}/`, join(d, 'rsync') + '/']);
    expect(rIn.code, rIn.stderr).toBe(0);
    await expectAttrs(join(d, 'rsync'));
    const back = join(src, '..', 'xattr-back-rsync');
    const rOut = await h.spawn('rsync', ['-aX', join(d, 'rsync') + '/', `${back}/`]);
    expect(rOut.code, rOut.stderr).toBe(0);
    await expectAttrs(back);
    // A second run finds nothing to change (the attributes compare equal).
    const again = await h.spawn('rsync', ['-aXi', `${src}/`, join(d, 'rsync') + '/']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe('');
    expect((await readdir(join(d, 'rsync'))).sort()).toEqual(['f1', 'sub']);
  });

  it.skipIf(process.getuid?.() !== 0)('on a cipher folder that allows 64 KiB values (tmpfs): the largest value round trips, one byte more is E2BIG', async () => {
    const w = await h.vault({ init: false });
    await mkdir(w.cipher);
    const tm = await h.spawn('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'sealfs-test-xattr', w.cipher]);
    expect(tm.code, tm.stderr).toBe(0);
    try {
      const init = await h.sealfs(['init', w.cipher, '--keystore', w.keystore, '--passphrase-file', w.pass, '--kdf-target-ms', '20']);
      expect(init.code, init.stderr).toBe(0);
      const pid = await h.mountOk(w);
      await writeFile(join(w.mnt, 'big'), 'x');
      const value = randomBytes(65_506);
      expect((await py('set', join(w.mnt, 'big'), 'user.big', value)).ok).toBe(true);
      expect((await py('get', join(w.mnt, 'big'), 'user.big')).value).toBe(value.toString('hex'));
      expect(await py('set', join(w.mnt, 'big'), 'user.big2', randomBytes(65_507))).toEqual({ ok: false, errno: 'E2BIG' });
      await h.unmountOk(w, pid);
    } finally {
      if ((await h.spawn('umount', [w.cipher])).code !== 0) await h.spawn('umount', ['-l', w.cipher]);
    }
  });
});
