/**
 * The frozen vault test/vectors/vault-v1/ (written once by test/vectors/vault.generate.ts,
 * never regenerated) mounted by today's built CLI through a real FUSE mount: the plaintext
 * view holds exactly the expected tree — every path, type, mode, size, symlink target, every
 * file's bytes (SHA-256), the conflict copies under their display names, and the hard link
 * as one file with two names. Offline reading and scrub of the same vault:
 * test/vault-v1.test.ts.
 */
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, sha256, useMountHarness, walk } from './mount-helpers.js';
import { copyKeystore, copyVault, loadExpected, VAULT_V1, type PlainEntry, type VaultV1 } from './vectors/frozenvault.js';

if (FUSE_PROBLEM) console.warn(`mount-vault-v1: skipped: ${FUSE_PROBLEM}`);
const h = useMountHarness('vault-v1');
const expected = await loadExpected<VaultV1>(VAULT_V1);

describe.skipIf(FUSE_PROBLEM)('frozen vault v1, mounted', { timeout: 120_000 }, () => {
  it('shows exactly the expected tree, and every file reads back exactly', async () => {
    const v = await h.vault({ init: false, passphrase: expected.passphrase });
    await copyVault(VAULT_V1, v.cipher, expected.hardLinks);
    await copyKeystore(VAULT_V1, v.keystore);
    const pid = await h.mountOk(v);

    const seen: PlainEntry[] = [];
    const inodes = new Map<string, { ino: number; nlink: number }>();
    for (const entry of await walk(v.mnt)) {
      const path = `/${entry.path}`;
      const full = join(v.mnt, entry.path);
      const st = await lstat(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (entry.kind === 'dir') seen.push({ path, type: 'dir', mode, size: 0 });
      else if (entry.kind === 'symlink') seen.push({ path, type: 'symlink', mode, size: st.size, target: await readlink(full) });
      else if (entry.kind === 'file') {
        const data = await readFile(full);
        expect(data.length, path).toBe(st.size);
        seen.push({ path, type: 'file', mode, size: st.size, sha256: sha256(data) });
        inodes.set(path, { ino: st.ino, nlink: st.nlink });
      } else expect.fail(`${path}: unexpected ${entry.kind} in the mount`);
    }
    const byPath = (a: PlainEntry, b: PlainEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
    expect(seen.sort(byPath)).toEqual(expected.tree.map(({ links: _links, ...rest }) => rest));

    // A hard link: one file (same inode) with two names, each seeing the other's count.
    const linked = expected.tree.filter((e) => e.links?.length);
    expect(linked.length).toBeGreaterThan(0);
    for (const entry of linked) {
      for (const other of entry.links!) {
        expect(inodes.get(other), `${other} is ${entry.path}`).toEqual(inodes.get(entry.path));
        expect(inodes.get(entry.path)!.nlink).toBe(entry.links!.length + 1);
      }
    }
    // Nothing in the frozen vault is undecryptable or fails authentication.
    expect((await h.logLines(v)).filter((line) => /integrity|undecryptable/.test(line))).toEqual([]);
    await h.unmountOk(v, pid);
  });
});
