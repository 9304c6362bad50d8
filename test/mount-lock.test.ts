/**
 * One server per vault on a machine (issue 12 item 3): two servers of one vault lose writes,
 * so a second mount is refused, by whatever path it reaches the vault folder (a symlink, a
 * symlinked parent, a bind mount), with one line naming the mount point and server pid and
 * exit code 11 (EXIT.IN_USE). The lock is the kernel's (a flock on the vault folder): it
 * goes with a server killed with SIGKILL, and nothing is left in the cipher folder. A repair,
 * which writes to the cipher folder, is refused while the vault is mounted.
 */
import { readdir, mkdir, symlink, writeFile, readFile, rename, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { parseLockHolder } from '../src/vault/vaultlock.js';
import { alive, FUSE_PROBLEM, isMounted, mountRows, useMountHarness, waitFor, type TestVault } from './mount-helpers.js';
import { forceUnmount } from '../bench/lib/proc.js';

const h = useMountHarness('mount-lock');
if (FUSE_PROBLEM) console.warn(`mount-lock: skipped: ${FUSE_PROBLEM}`);

const isRoot = process.getuid?.() === 0;

/** `sealfs mount CIPHER MNT` with the vault's key store and passphrase file. */
function mountVia(v: TestVault, cipher: string, mnt: string, passFile = v.pass) {
  return h.sealfs(['mount', cipher, mnt, '--keystore', v.keystore, '--passphrase-file', passFile], { timeoutMs: 60_000 });
}

/** The one-line refusal of a second mount of `v` (mounted at `mnt` by server `pid`). */
function refusal(shownAs: string, mnt: string, pid: number): string {
  return (
    `sealfs: ${shownAs} is already mounted at ${mnt} (server pid ${pid}): one vault has one mount at a time, ` +
    `as two would overwrite each other's writes; use that mount, or unmount it first: sealfs unmount ${mnt}\n`
  );
}

describe('parseLockHolder', () => {
  it('finds the pid holding a flock of the folder in /proc/locks, not a waiter or another file', () => {
    const folder = { major: 254, minor: 0, ino: 2146311 };
    const text = [
      '1: POSIX  ADVISORY  WRITE 77 fe:00:2146311 0 EOF',
      '2: FLOCK  ADVISORY  WRITE 88 fe:00:999 0 EOF',
      '3: FLOCK  ADVISORY  WRITE 689 fe:00:2146311 0 EOF',
      '3: -> FLOCK  ADVISORY  WRITE 700 fe:00:2146311 0 EOF',
    ].join('\n');
    expect(parseLockHolder(text, folder)).toBe(689);
    expect(parseLockHolder(text.split('\n').slice(0, 2).join('\n'), folder)).toBeUndefined();
    // btrfs: /proc/locks names the file system's device, stat the subvolume's; one lock on that inode is the one.
    expect(parseLockHolder('1: FLOCK  ADVISORY  WRITE 5 00:1f:2146311 0 EOF\n', folder)).toBe(5);
  });
});

describe.skipIf(FUSE_PROBLEM !== undefined)('one mount per vault', { timeout: 120_000 }, () => {
  it('refuses a second mount of a mounted vault with one line naming the mount point and server pid (exit 11), before asking for the passphrase', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const mnt2 = join(v.dir, 'mnt2');
    await mkdir(mnt2);
    const again = await mountVia(v, v.cipher, mnt2);
    expect(again.code, again.stderr).toBe(EXIT.IN_USE);
    expect(again.stderr).toBe(refusal(v.cipher, v.mnt, pid));
    expect(await isMounted(mnt2)).toBe(false);
    // Said before the key is asked for: a wrong passphrase changes nothing.
    const wrongPass = join(v.dir, 'wrong');
    await writeFile(wrongPass, 'not the passphrase\n');
    const wrong = await mountVia(v, v.cipher, mnt2, wrongPass);
    expect(wrong.code, wrong.stderr).toBe(EXIT.IN_USE);
    // In the foreground too.
    const fg = await h.sealfs(['mount', '-f', v.cipher, mnt2, '--keystore', v.keystore, '--passphrase-file', v.pass], { timeoutMs: 60_000 });
    expect(fg.code, fg.stderr).toBe(EXIT.IN_USE);
    expect(await isMounted(mnt2)).toBe(false);
    // The first mount serves on, and nothing was added to the cipher folder.
    await writeFile(join(v.mnt, 'still.txt'), 'served');
    expect(await readFile(join(v.mnt, 'still.txt'), 'utf8')).toBe('served');
    expect((await readdir(v.cipher)).some((name) => /lock/i.test(name))).toBe(false);
    await h.unmountOk(v, pid);
    // Unmounted, the vault mounts at the other place.
    const later = await mountVia(v, v.cipher, mnt2);
    expect(later.code, later.stderr).toBe(EXIT.OK);
    expect(await isMounted(mnt2)).toBe(true);
    await forceUnmount(mnt2);
  });

  it('catches the same vault folder reached through a symlink, a symlinked parent folder and a bind mount', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    const mnt2 = join(v.dir, 'mnt2');
    await mkdir(mnt2);
    const linked = join(h.root, `link-to-${v.dir.split('/').pop()}`);
    await symlink(v.cipher, linked);
    const viaLink = await mountVia(v, linked, mnt2);
    expect(viaLink.code, viaLink.stderr).toBe(EXIT.IN_USE);
    // The vault folder by its real path (mount resolves links, as gocryptfs does).
    expect(viaLink.stderr).toBe(refusal(v.cipher, v.mnt, pid));
    const parentLink = join(h.root, `parent-of-${v.dir.split('/').pop()}`);
    await symlink(v.dir, parentLink);
    const viaParent = await mountVia(v, join(parentLink, 'cipher'), mnt2);
    expect(viaParent.code, viaParent.stderr).toBe(EXIT.IN_USE);
    expect(await isMounted(mnt2)).toBe(false);
    if (!isRoot) return; // a bind mount needs root
    const bind = join(v.dir, 'bind');
    await mkdir(bind);
    const bound = await h.spawn('mount', ['--bind', v.cipher, bind]);
    expect(bound.code, bound.stderr).toBe(0);
    try {
      const viaBind = await mountVia(v, bind, mnt2);
      expect(viaBind.code, viaBind.stderr).toBe(EXIT.IN_USE);
      // A bind mount is a path of its own: named as given, and the mount it collides with by its own.
      expect(viaBind.stderr).toBe(refusal(bind, v.mnt, pid));
      expect(await isMounted(mnt2)).toBe(false);
    } finally {
      await h.spawn('umount', [bind]);
    }
  });

  it('lets the vault mount again once its server was killed (SIGKILL): the lock goes with the process', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    process.kill(pid, 'SIGKILL');
    await waitFor(`server ${pid} to end`, () => !alive(pid), 15_000);
    // Its mount is dead but still there; the vault mounts elsewhere at once…
    const mnt2 = join(v.dir, 'mnt2');
    await mkdir(mnt2);
    const elsewhere = await mountVia(v, v.cipher, mnt2);
    expect(elsewhere.code, elsewhere.stderr).toBe(EXIT.OK);
    await writeFile(join(mnt2, 'after-kill.txt'), 'ok');
    await forceUnmount(mnt2);
    // …and, once the dead mount is cleared (fuse-unstick), at its old place.
    await forceUnmount(v.mnt);
    expect(await isMounted(v.mnt)).toBe(false);
    const pid2 = await h.mountOk(v);
    expect(pid2).not.toBe(pid);
    expect(await readFile(join(v.mnt, 'after-kill.txt'), 'utf8')).toBe('ok');
    await h.unmountOk(v, pid2);
  });

  it('refuses a repair of a mounted vault (exit 11, naming the mount); unmounted, the repair runs', async () => {
    const v = await h.vault();
    const pid = await h.mountOk(v);
    await writeFile(join(v.mnt, 'f.txt'), 'data');
    const backup = join(v.dir, 'no-backup-needed');
    const refused = await h.sealfs(['repair', v.cipher, '--from', backup, '--keystore', v.keystore, '--passphrase-file', v.pass], { timeoutMs: 60_000 });
    expect(refused.code, refused.stderr).toBe(EXIT.IN_USE);
    expect(refused.stderr).toBe(refusal(v.cipher, v.mnt, pid));
    await h.unmountOk(v, pid);
    const repair = await h.sealfs(['repair', v.cipher, '--from', backup, '--keystore', v.keystore, '--passphrase-file', v.pass], { timeoutMs: 60_000 });
    expect(repair.code, repair.stderr).toBe(EXIT.OK);
    expect(repair.stderr).toContain('nothing to repair');
  });

  it('mounts a vault folder given as a symlink (or under a symlinked folder) by its real path, and serves every request', async () => {
    const v = await h.vault();
    const linked = join(h.root, `sym-${v.dir.split('/').pop()}`);
    await symlink(v.dir, linked); // a symlinked parent…
    const vaultLink = join(v.dir, 'vault-link');
    await symlink('cipher', vaultLink); // …and a relative link to the vault folder itself
    const m = await mountVia(v, join(linked, 'vault-link'), v.mnt);
    expect(m.code, m.stderr).toBe(EXIT.OK);
    expect(m.stderr).toContain(`Mounted ${v.cipher} at ${v.mnt}`);
    const row = (await mountRows()).find((r) => r.mountpoint === v.mnt);
    expect(row?.source).toBe(`sealfs:${v.cipher}`);
    await mkdir(join(v.mnt, 'dir'));
    await writeFile(join(v.mnt, 'dir', 'a.txt'), 'through a link');
    await rename(join(v.mnt, 'dir', 'a.txt'), join(v.mnt, 'b.txt'));
    expect(await readFile(join(v.mnt, 'b.txt'), 'utf8')).toBe('through a link');
    expect(await readdir(v.mnt)).toEqual(expect.arrayContaining(['dir', 'b.txt']));
    expect((await statfs(v.mnt)).blocks).toBeGreaterThan(0);
    expect((await readdir(v.cipher)).length).toBeGreaterThanOrEqual(3); // vault file, folder, file
    const u = await h.sealfs(['unmount', v.mnt], { timeoutMs: 30_000 });
    expect(u.code, u.stderr).toBe(0);
  });
});
