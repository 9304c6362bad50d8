/**
 * Issue 10 items 1–3 played for real against a mounted vault: the provider plants symlinks in
 * the cipher folder (a long-name sidecar, a cipher file, a whole cipher directory) pointing
 * at a decoy tree outside the vault, and a user works through the mount as usual. Nothing
 * outside the vault may be written, chmod-ed or deleted (the decoy tree's contents and modes
 * are compared before and after), and the server must go on answering other requests.
 * Also: a cipher file turned into a FIFO or a folder is EIO at once, and the offline tools
 * refuse a swapped folder as the mount does.
 *
 * The mount runs with a 10 s cache time so that the attacks that rely on a cached listing
 * (a swapped entry still resolved through it) happen deterministically, as they do within
 * the default 1 s for a provider that times them.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { chmod, link, mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT_DIR_ID } from '../src/vault/names.js';
import { openVault } from '../src/vault/vault.js';
import { FUSE_PROBLEM, useMountHarness, type TestVault } from './mount-helpers.js';

const h = useMountHarness('hostile-paths');
if (FUSE_PROBLEM) console.warn(`hostile-paths: skipped: ${FUSE_PROBLEM}`);

const CACHE_ARGS = ['--cache-time', '10'];
/** A name long enough to be stored as <hash>.sfl with its encoded name in <hash>.sfn. */
const longName = (tag: string) => `${tag}-${'l'.repeat(200)}`;
/** How long the server may take to answer an ordinary request after an attack. */
const ANSWER_MS = 2000;

/** Every entry under `dir`: mode, and contents' hash for files (a decoy's fingerprint). */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string, rel: string) => {
    const st = fs.lstatSync(path);
    out[rel] = st.mode.toString(8) + (st.isFile() ? ' ' + createHash('sha256').update(fs.readFileSync(path)).digest('hex') : '');
    if (st.isDirectory()) for (const name of fs.readdirSync(path)) walk(join(path, name), `${rel}/${name}`);
  };
  walk(dir, '.');
  return out;
}

/** A decoy folder outside the vault holding `count` files, and its fingerprint. */
function decoyTree(v: TestVault, name: string, count: number, names?: readonly string[]): { dir: string; before: Record<string, string> } {
  const dir = join(v.dir, name);
  fs.mkdirSync(dir);
  for (let i = 0; i < count; i++) fs.writeFileSync(join(dir, names?.[i] ?? `precious-${i}`), `precious data ${i}\n`, { mode: 0o640 });
  return { dir, before: fingerprint(dir) };
}

/** The server still answers: a stat and a read of another file, each within ANSWER_MS. */
async function expectServing(v: TestVault, path: string, content: string): Promise<void> {
  const start = Date.now();
  expect((await stat(join(v.mnt, path))).isFile()).toBe(true);
  expect(await readFile(join(v.mnt, path), 'utf8')).toBe(content);
  expect(Date.now() - start).toBeLessThan(ANSWER_MS);
}

async function errorOf(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

/** Where a new entry `name` of the root folder keeps its long name (offline, with the key). */
async function sidecarOf(v: TestVault, name: string, kind: 'file' | 'dir'): Promise<string> {
  const vault = await openVault(v.cipher, await h.masterKey(v), { backend: 'node' });
  const dirId = kind === 'dir' ? vault.names.deriveDirId(ROOT_DIR_ID, name) : undefined;
  const { sidecar } = vault.tree.decoder.cipherNameFor(ROOT_DIR_ID, name, dirId);
  expect(sidecar, `${name} must be a long name`).toBeDefined();
  return join(v.cipher, sidecar!.name);
}

describe.skipIf(FUSE_PROBLEM !== undefined)('a provider\'s symlinks lead nowhere outside the vault', { timeout: 120_000 }, () => {
  let v: TestVault;
  beforeAll(async () => {
    v = await h.vault();
    await h.masterKey(v);
  });

  /** Item 1's operations, each planting the sidecar of the long name it is about to write. */
  const SIDECAR_ATTACKS: { what: string; kind: 'file' | 'dir'; run: (name: string) => Promise<unknown> }[] = [
    {
      // An existing long-named file; the editor's save writes a temporary file and renames it over.
      what: 'editor-style save over an existing long name',
      kind: 'file',
      run: (name) => rename(join(v.mnt, '.save.tmp'), join(v.mnt, name)),
    },
    { what: 'create', kind: 'file', run: async (name) => (await open(join(v.mnt, name), 'wx')).close() },
    { what: 'link', kind: 'file', run: (name) => link(join(v.mnt, 'short'), join(v.mnt, name)) },
    { what: 'mkdir', kind: 'dir', run: (name) => mkdir(join(v.mnt, name)) },
    { what: 'rename', kind: 'file', run: (name) => rename(join(v.mnt, 'short'), join(v.mnt, name)) },
  ];

  it.each(SIDECAR_ATTACKS.map((a, i) => ({ ...a, i })))('item 1: a long-name sidecar is a symlink out of the vault: $what writes nothing outside', async ({ what, kind, run, i }) => {
    await h.mountOk(v, { args: CACHE_ARGS });
    const { dir: decoy, before } = decoyTree(v, `decoy-sidecar-${i}`, 1);
    await writeFile(join(v.mnt, 'other'), 'other file\n');
    await writeFile(join(v.mnt, 'short'), 'short file\n');
    const name = longName(`item1-${i}`);
    const sidecar = await sidecarOf(v, name, kind);
    if (i === 0) {
      await writeFile(join(v.mnt, name), 'version 1\n');
      expect(fs.readFileSync(sidecar, 'utf8').length).toBeGreaterThan(0);
      fs.rmSync(sidecar);
      await writeFile(join(v.mnt, '.save.tmp'), 'version 2\n');
    }
    // The provider's plant: the sidecar the operation will write is a symlink to the decoy.
    fs.symlinkSync(join(decoy, 'precious-0'), sidecar);
    const code = await errorOf(run(name));
    expect([what, fingerprint(decoy)]).toEqual([what, before]);
    expect([what, code]).toEqual([what, 'ELOOP']);
    expect(fs.lstatSync(sidecar).isSymbolicLink()).toBe(true);
    await expectServing(v, 'other', 'other file\n');
  });

  it('item 2: a cipher file replaced by a symlink: chmod by path and fchmod of a held handle change no mode outside', async () => {
    await h.mountOk(v, { args: CACHE_ARGS });
    const { dir: decoy, before } = decoyTree(v, 'decoy-mode', 2);
    await writeFile(join(v.mnt, 'other2'), 'other file\n');
    await writeFile(join(v.mnt, 'by-path'), 'by path\n');
    await writeFile(join(v.mnt, 'held'), 'held\n');
    const held = await open(join(v.mnt, 'held'), 'r+');
    let byPath: string | undefined;
    let byHandle: string | undefined;
    try {
      await stat(join(v.mnt, 'by-path')); // listed and cached by the server
      for (const [name, i] of [['by-path', 0], ['held', 1]] as const) {
        const cipherPath = await h.cipherPathOf(v, name);
        fs.rmSync(cipherPath);
        fs.symlinkSync(join(decoy, `precious-${i}`), cipherPath);
      }
      byPath = await errorOf(chmod(join(v.mnt, 'by-path'), 0o777));
      byHandle = await errorOf(held.chmod(0o777));
    } finally {
      // The handle's file was swapped under it: closing may report that, which is no concern here.
      await held.close().catch(() => undefined);
    }
    expect(fingerprint(decoy)).toEqual(before);
    // The link itself cannot take a mode (EOPNOTSUPP); a symlink in the path is ELOOP.
    expect([byPath, byHandle]).toEqual([expect.stringMatching(/^(ELOOP|EOPNOTSUPP|ENOTSUP)$/), expect.stringMatching(/^(ELOOP|EOPNOTSUPP|ENOTSUP)$/)]);
    await expectServing(v, 'other2', 'other file\n');
  });

  it('a cipher file turned into a FIFO or a folder: opening it through the mount is EIO at once, and the server goes on serving', async () => {
    await h.mountOk(v, { args: CACHE_ARGS });
    await writeFile(join(v.mnt, 'other4'), 'other file\n');
    for (const [name, plant] of [
      ['became-fifo', async (path: string) => expect((await h.spawn('mkfifo', [path])).code).toBe(0)],
      ['became-dir', async (path: string) => fs.mkdirSync(path)],
    ] as const) {
      await writeFile(join(v.mnt, name), 'contents\n');
      await stat(join(v.mnt, name)); // listed and cached by the server as a file
      const cipherPath = await h.cipherPathOf(v, name);
      fs.rmSync(cipherPath);
      await plant(cipherPath);
      // From another process, with a time limit: the old server blocked for ever on the FIFO.
      const start = Date.now();
      const cat = await h.spawn('cat', [join(v.mnt, name)], { timeoutMs: 10_000 });
      expect([name, cat.code, cat.stderr]).toEqual([name, 1, expect.stringMatching(/Input\/output error/)]);
      expect(Date.now() - start).toBeLessThan(ANSWER_MS + 1000);
      await expectServing(v, 'other4', 'other file\n');
    }
  });

  it('item 3: a cipher directory swapped for a symlink to a folder of 300 files: unlinks through the mount delete none of them', async () => {
    await h.mountOk(v, { args: CACHE_ARGS });
    await writeFile(join(v.mnt, 'other3'), 'other file\n');
    await mkdir(join(v.mnt, 'victim'));
    const plainNames = Array.from({ length: 300 }, (_, i) => `file-${i}`);
    for (const name of plainNames) await writeFile(join(v.mnt, 'victim', name), `${name}\n`);
    const cipherDir = await h.cipherPathOf(v, 'victim');
    // The decoy holds files under the very cipher names the mount will unlink.
    const cipherNames = fs.readdirSync(cipherDir);
    expect(cipherNames).toHaveLength(300);
    const { dir: decoy, before } = decoyTree(v, 'decoy-dir', 300, cipherNames);
    expect((await readdir(join(v.mnt, 'victim'))).sort()).toEqual([...plainNames].sort()); // listing cached
    fs.renameSync(cipherDir, join(v.dir, 'victim-moved-away'));
    fs.symlinkSync(decoy, cipherDir);
    const codes = await Promise.all(plainNames.map((name) => errorOf(unlink(join(v.mnt, 'victim', name)))));
    expect(fingerprint(decoy)).toEqual(before);
    expect(codes.filter((c) => c === undefined)).toEqual([]);
    await expectServing(v, 'other3', 'other file\n');
    // The offline tools go through the same calls: no listing of the decoy, an error naming the path.
    const ls = await h.sealfsKeyed(v, 'ls', ['/victim']);
    expect([ls.code === 0, ls.stdout, ls.stderr]).toEqual([false, '', expect.stringContaining('victim')]);
    expect(fingerprint(decoy)).toEqual(before);
  });
});
