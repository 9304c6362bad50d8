/**
 * `sealfs status` against real mounts served by background servers (issue 13 §4): two mounts
 * listed with their figures, the JSON shape, one mount by path, the counters moving when the
 * provider plants an undecryptable name, a conflict copy and a damaged chunk, open files
 * while another process holds one, a read-only mount, a dead mount (server killed) shown with
 * the command that clears it, and paths that are not sealfs mounts. `sealfs info` on a
 * vault, a folder that is none, a missing folder and a vault file swapped for a link.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, open, readdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runInProcess } from './helpers-cli.js';
import { alive, FUSE_PROBLEM, SHORT_CACHE_ARGS, useMountHarness, waitFor, type TestVault } from './mount-helpers.js';

const h = useMountHarness('status');
if (FUSE_PROBLEM) console.warn(`status: skipped: ${FUSE_PROBLEM}`);

// Status files go to a runtime folder of this file's own, so the test can look into it.
const harnessEnv = h.env.bind(h);
const runDir = () => join(h.root, 'run');
h.env = () => ({ ...harnessEnv(), XDG_RUNTIME_DIR: runDir() });
const statusDir = () => join(runDir(), 'sealfs');

interface Problems {
  integrityFailures: number;
  lastIntegrityFailure: string | null;
  undecryptableNames: number;
  conflictCopies: number;
}
interface MountJson {
  mountpoint: string;
  vault: string;
  state: 'alive' | 'dead' | 'hung';
  fix: string | null;
  readOnly: boolean;
  pid: number | null;
  since: string | null;
  backend: string | null;
  openFiles: number | null;
  problems: Problems | null;
  updated: string | null;
}

/** This file's mounts in `sealfs status --json` (other test files may mount at the same time). */
async function ours(): Promise<MountJson[]> {
  const r = await h.sealfs(['status', '--json']);
  expect(r.code, r.stderr).toBe(0);
  const parsed = JSON.parse(r.stdout) as { mounts: MountJson[] };
  expect(Object.keys(parsed)).toEqual(['mounts']);
  return parsed.mounts.filter((m) => m.mountpoint.startsWith(h.root + '/'));
}

async function one(mnt: string): Promise<{ code: number; json: MountJson }> {
  const r = await h.sealfs(['status', mnt, '--json']);
  return { code: r.code, json: JSON.parse(r.stdout) as MountJson };
}

/** Polls the published figures of `mnt` until `ok` holds (they follow within about a second). */
async function figuresUntil(mnt: string, what: string, ok: (m: MountJson) => boolean | Promise<boolean>): Promise<MountJson> {
  let last: MountJson | undefined;
  await waitFor(what, async () => ok((last = (await one(mnt)).json)), 10_000, 200).catch((err: Error) => {
    throw new Error(`${err.message}; last: ${JSON.stringify(last)}`);
  });
  return last!;
}

async function vaultIn(): Promise<TestVault> {
  await mkdir(runDir(), { recursive: true, mode: 0o700 });
  return h.vault();
}

describe.skipIf(FUSE_PROBLEM !== undefined)('sealfs status', { timeout: 120_000 }, () => {
  it('lists two mounts with their figures in a stable JSON shape, one by path, and read-only', async () => {
    const a = await vaultIn();
    const b = await vaultIn();
    const pidA = await h.mountOk(a);
    const pidB = await h.mountOk(b, { args: ['--read-only'] });

    const mounts = (await ours()).sort((x, y) => x.mountpoint.localeCompare(y.mountpoint));
    expect(mounts.map((m) => m.mountpoint)).toEqual([a.mnt, b.mnt]);
    for (const m of mounts) {
      expect(Object.keys(m)).toEqual(['mountpoint', 'vault', 'state', 'fix', 'readOnly', 'pid', 'since', 'backend', 'openFiles', 'problems', 'updated']);
      expect(m).toMatchObject({ state: 'alive', fix: null, openFiles: 0, problems: { integrityFailures: 0, lastIntegrityFailure: null, undecryptableNames: 0, conflictCopies: 0 } });
      expect(['native', 'node', 'noble']).toContain(m.backend);
      expect(Date.now() - Date.parse(m.since!)).toBeLessThan(120_000);
    }
    expect(mounts[0]).toMatchObject({ vault: a.cipher, pid: pidA, readOnly: false });
    expect(mounts[1]).toMatchObject({ vault: b.cipher, pid: pidB, readOnly: true });

    const byPath = await one(b.mnt);
    expect(byPath.code).toBe(0);
    expect(byPath.json).toEqual(mounts[1]);
    const text = await h.sealfs(['status', a.mnt]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${a.mnt}: mounted`);
    expect(text.stdout).toMatch(new RegExp(`server: +pid ${pidA}, since `));
    expect(text.stdout).toMatch(/access: +read-write/);
    expect(text.stdout).toMatch(/problems: +none seen/);
    expect((await h.sealfs(['status', b.mnt])).stdout).toMatch(/access: +read-only/);

    // Another user's: not listed among theirs; asked by path, shown without figures (theirs are private).
    const asNobody = (args: string[]) =>
      h.spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, h.cli, ...args], { env: { PATH: process.env.PATH, HOME: '/nonexistent' }, cwd: '/' });
    const theirs = await asNobody(['status', '--json']);
    expect(theirs.code, theirs.stderr).toBe(0);
    expect((JSON.parse(theirs.stdout) as { mounts: MountJson[] }).mounts.filter((m) => m.mountpoint.startsWith(h.root))).toEqual([]);
    const seen = await asNobody(['status', a.mnt, '--json']);
    expect(seen.code, seen.stderr).toBe(0);
    expect(JSON.parse(seen.stdout)).toMatchObject({ mountpoint: a.mnt, vault: a.cipher, state: 'alive', pid: null, openFiles: null, problems: null });

    // Published in the runtime folder, gone with the mount.
    expect((await readdir(statusDir())).filter((n) => n.startsWith(`mount-${pidA}-`))).toHaveLength(1);
    await h.unmountOk(a, pidA);
    expect((await readdir(statusDir())).filter((n) => n.startsWith(`mount-${pidA}-`))).toEqual([]);
    expect((await ours()).map((m) => m.mountpoint)).toEqual([b.mnt]);
    await h.unmountOk(b, pidB);
  });

  it('counts undecryptable names, conflict copies, integrity failures and open files as they happen', async () => {
    const v = await vaultIn();
    await h.mountOk(v, { args: [...SHORT_CACHE_ARGS] });
    await writeFile(join(v.mnt, 'report.txt'), 'report\n');
    await writeFile(join(v.mnt, 'big.bin'), Buffer.alloc(200_000, 7));
    const report = await h.cipherPathOf(v, '/report.txt');

    // The provider plants a name that does not decrypt and a sync client's conflict copy.
    await writeFile(join(v.cipher, 'A'.repeat(36)), 'junk');
    await copyFile(report, `${report} (conflicted copy 2026-11-22)`);
    // A listing is what finds them.
    let m = await figuresUntil(v.mnt, 'one undecryptable name and one conflict copy', async (x) => {
      await readdir(v.mnt);
      return x.problems?.undecryptableNames === 1 && x.problems.conflictCopies === 1;
    });
    expect(m.problems!.integrityFailures).toBe(0);

    // A damaged chunk: every read of it fails, each counted, the last path named.
    const big = await h.cipherPathOf(v, '/big.bin');
    const fh = await open(big, 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, 100);
    await fh.write(Buffer.from([byte[0]! ^ 1]), 0, 1, 100);
    await fh.close();
    await expect(readFile(join(v.mnt, 'big.bin'))).rejects.toMatchObject({ code: 'EIO' });
    m = await figuresUntil(v.mnt, 'the integrity failure to be counted', (x) => (x.problems?.integrityFailures ?? 0) >= 1);
    expect(m.problems!.lastIntegrityFailure).toBe('/big.bin');
    const text = await h.sealfs(['status', v.mnt]);
    expect(text.stdout).toMatch(/problems: +\d+ integrity failures? \(last: "\/big\.bin"\), 1 undecryptable name, 1 conflict copy/);

    // The conflict copy resolved through the mount: its count goes with the next listing.
    await unlink(join(v.mnt, 'report (conflict 2026-11-22).txt'));
    await figuresUntil(v.mnt, 'the conflict copy to be gone from the count', async (x) => {
      await readdir(v.mnt);
      return x.problems?.conflictCopies === 0 && x.problems.undecryptableNames === 1;
    });

    // Another process holds a file open: counted while it does, not after.
    const handle = await open(join(v.mnt, 'report.txt'), 'r');
    const holder = spawn('sleep', ['60'], { stdio: [handle.fd, 'ignore', 'ignore'], detached: true });
    await handle.close();
    try {
      await figuresUntil(v.mnt, 'one open file', (x) => x.openFiles === 1);
    } finally {
      holder.kill('SIGKILL');
    }
    await figuresUntil(v.mnt, 'no open file', (x) => x.openFiles === 0);
  });

  it('shows a mount whose server was killed as dead, with the command that clears it, quoted', async () => {
    const v = await vaultIn();
    const mnt = join(v.dir, "my 'private' files");
    await mkdir(mnt);
    const m = await h.mount(v, { mnt });
    expect(m.code, m.stderr).toBe(0);
    const pid = m.pid!;
    expect(alive(pid)).toBe(true);
    process.kill(pid, 'SIGKILL');
    await waitFor(`server ${pid} to end`, () => !alive(pid), 10_000);

    // As if it had been killed while writing its figures.
    const partial = join(statusDir(), `mount-${pid}-1.json.partial`);
    await writeFile(partial, '{"format":');

    const fix = `fusermount3 -u '${v.dir}/my '\\''private'\\'' files'`;
    const listed = (await ours()).find((x) => x.mountpoint === mnt);
    expect(listed).toMatchObject({ state: 'dead', fix, pid });
    const single = await h.sealfs(['status', mnt]);
    expect(single.code).toBe(7);
    expect(single.stdout).toContain(`${mnt}: DEAD: its server ended`);
    expect(single.stdout).toContain(`clear it:   ${fix}`);
    // The fix as printed works when pasted into a shell.
    const cleared = await h.spawn('sh', ['-c', `${fix} -z`]);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect((await ours()).find((x) => x.mountpoint === mnt)).toBeUndefined();
    // The killed server's status file goes with the next look.
    expect((await readdir(statusDir())).filter((n) => n.startsWith(`mount-${pid}-`))).toEqual([]);
  });

  it('shows a mount whose server stopped answering as hung, with `sealfs unmount`, and alive again once it answers', async () => {
    const v = await vaultIn();
    const pid = await h.mountOk(v);
    process.kill(pid, 'SIGSTOP');
    try {
      const stuck = await h.sealfs(['status', v.mnt, '--json'], { timeoutMs: 30_000 });
      expect(stuck.code, stuck.stderr).toBe(7);
      expect(JSON.parse(stuck.stdout)).toMatchObject({ state: 'hung', fix: `sealfs unmount ${v.mnt}`, pid });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect((await one(v.mnt)).json).toMatchObject({ state: 'alive', fix: null });
  });

  it('a path that is not a sealfs mount: exit 7 and what is there', async () => {
    const v = await vaultIn();
    const plain = await h.sealfs(['status', v.dir]);
    expect(plain.code).toBe(7);
    expect(plain.stderr).toContain(`${v.dir} is not a sealfs mount (nothing is mounted there)`);
    const missing = await h.sealfs(['status', join(v.dir, 'nowhere')]);
    expect(missing.code).toBe(7);
    expect(missing.stderr).toContain(join(v.dir, 'nowhere'));
    const proc = await h.sealfs(['status', '/proc', '--json']);
    expect(proc.code).toBe(7);
    expect(proc.stderr).toContain('/proc is mounted as proc');
    expect(proc.stdout).toBe('');

    await h.mountOk(v);
    await mkdir(join(v.mnt, 'inner'));
    const inside = await h.sealfs(['status', join(v.mnt, 'inner')]);
    expect(inside.code).toBe(7);
    expect(inside.stderr).toContain(`lies inside the sealfs mount ${v.mnt}`);
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('sealfs info', { timeout: 60_000 }, () => {
  it("prints the vault file's settings, unauthenticated, and where the key is", async () => {
    const v = await h.vault({ initArgs: ['--cipher', 'chacha20-poly1305', '--max-name-length', '64'] });
    const env = h.env();
    const r = await runInProcess(['info', v.cipher, '--keystore', v.keystore, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    const vaultFile = JSON.parse((await readFile(join(v.cipher, 'sealfs.vault'), 'utf8')).split('\n')[0]!) as Record<string, unknown>;
    expect(info).toEqual({
      vault: v.cipher,
      vaultFile: join(v.cipher, 'sealfs.vault'),
      authenticated: false,
      format: 'sealfs-vault',
      version: 1,
      vaultId: vaultFile.vaultId,
      cipher: 'chacha20-poly1305',
      chunkSize: 65536,
      nameScheme: 'aes-siv-base32',
      maxNameLength: 64,
      keyFile: join(v.keystore, `${String(vaultFile.vaultId)}.key`),
      key: 'present',
      keyProblem: null,
    });
    const text = await runInProcess(['info', v.cipher, '--keystore', v.keystore], env);
    expect(text.stdout).toContain('NOT AUTHENTICATED');
    expect(text.stdout).toMatch(/chunk size: +65536 bytes \(64 KiB\)/);
    expect(text.stdout).toMatch(/key: +present/);

    // Another machine's key store: no key, and the command that rebuilds it.
    const elsewhere = await runInProcess(['info', v.cipher, '--keystore', join(v.dir, 'other'), '--json'], env);
    expect(JSON.parse(elsewhere.stdout)).toMatchObject({ key: 'missing', keyProblem: null });
    const told = await runInProcess(['info', v.cipher, '--keystore', join(v.dir, 'other')], env);
    expect(told.stdout).toContain(`sealfs key import ${v.cipher}`);
  });

  it('a folder that is no vault, a missing folder and a vault file swapped for a link: the exit codes of the table', async () => {
    const v = await h.vault();
    const env = h.env();
    const empty = join(v.dir, 'empty');
    await mkdir(empty);
    const none = await runInProcess(['info', empty], env);
    expect(none.code).toBe(6);
    expect(none.stderr).toContain(`${empty} is not a sealfs vault (it has no sealfs.vault)`);
    const missing = await runInProcess(['info', join(v.dir, 'gone')], env);
    expect(missing.code).toBe(6);
    expect(missing.stderr).toContain(`${join(v.dir, 'gone')} does not exist`);

    // The vault file is hostile input: a link in its place is not followed.
    const file = join(v.cipher, 'sealfs.vault');
    const copy = join(v.dir, 'vault-copy');
    await copyFile(file, copy);
    await rm(file);
    await symlink(copy, file);
    const linked = await runInProcess(['info', v.cipher, '--keystore', v.keystore], env);
    expect(linked.code).toBe(6);
    expect(linked.stderr).toContain('symbolic link');
    expect(linked.stdout).toBe('');
  });
});
