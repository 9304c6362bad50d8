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
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, useMountHarness, walk, type TestVault } from './mount-helpers.js';

const h = useMountHarness('hostile-perms');
if (FUSE_PROBLEM) console.warn(`hostile-perms: skipped: ${FUSE_PROBLEM}`);

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
