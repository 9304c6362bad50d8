/**
 * fallocate through a real mount (issue 12 item 2, docs/FORMAT.md §14.3), with util-linux's
 * `fallocate` and coreutils' `cp --sparse=always` as other processes: mode 0 reserves and
 * extends, --keep-size reserves only, --punch-hole and --zero-range make ranges read as zeros
 * (sealed zeros that scrub verifies), --dig-holes keeps contents, collapse and insert are
 * refused; and on a full cipher folder (a small tmpfs of its own) fallocate is ENOSPC with the
 * file unchanged.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sealedSize as sealedSizeOf } from '../src/crypto/geometry.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, sha256, freshFolders, useMountHarness, type TestVault } from './mount-helpers.js';

const h = useMountHarness('mount-fallocate');
if (FUSE_PROBLEM) console.warn(`mount-fallocate: skipped: ${FUSE_PROBLEM}`);

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
/** Ciphertext size of a plaintext of `size` bytes with 64 KiB chunks (docs/FORMAT.md §4). */
const sealedSize = (size: number) => sealedSizeOf(size, CHUNK);

let v: TestVault;
let M: string;
const fresh = freshFolders(() => M);

/** st_blocks of a cipher file (512-byte units): what fallocate reserved. */
async function blocksOf(path: string): Promise<number> {
  return (await stat(path)).blocks;
}

describe.skipIf(FUSE_PROBLEM !== undefined)('fallocate through the mount', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    v = await h.vault();
    await h.mountOk(v, { scope: 'file' });
    M = v.mnt;
  }, 60_000);

  it('fallocate -l extends with zeros, -n reserves cipher space without changing the size, -p and -z read as zeros; offline, sealfs cat verifies every chunk', async () => {
    const d = await fresh('modes');
    const f = join(d, 'data.bin');
    let model: Buffer = randomBytes(300_000);
    await writeFile(f, model);
    const cipherFile = await h.cipherPathOf(v, f.slice(M.length));
    const run = async (...args: string[]) => {
      const r = await h.spawn('fallocate', [...args, f]);
      expect(r.code, `fallocate ${args.join(' ')}: ${r.stderr}`).toBe(0);
    };
    // Mode 0 within the file changes nothing; past the end it grows the file with zeros.
    await run('-o', '1000', '-l', '5000');
    expect(sha256(await readFile(f))).toBe(sha256(model));
    await run('-l', String(MiB));
    model = Buffer.concat([model, Buffer.alloc(MiB - model.length)]);
    expect((await stat(f)).size).toBe(MiB);
    expect(sha256(await readFile(f))).toBe(sha256(model));
    expect((await stat(cipherFile)).size).toBe(sealedSize(MiB));
    // --keep-size: 8 MiB reserved in the cipher folder, the size as it was.
    const before = await blocksOf(cipherFile);
    await run('-n', '-l', String(8 * MiB));
    expect((await stat(f)).size).toBe(MiB);
    expect((await stat(cipherFile)).size).toBe(sealedSize(MiB));
    expect(await blocksOf(cipherFile)).toBeGreaterThanOrEqual(before + (7 * MiB) / 512);
    // --punch-hole (keeps the size) across chunk boundaries, and one reaching past the end.
    model.fill(0x5a, 400_000, MiB);
    const fh = await open(f, 'r+');
    await fh.write(model, 400_000, MiB - 400_000, 400_000);
    await fh.close();
    await run('-p', '-o', '10000', '-l', '200000');
    model.fill(0, 10_000, 210_000);
    await run('-p', '-o', String(MiB - 1000), '-l', '50000');
    model.fill(0, MiB - 1000, MiB);
    expect((await stat(f)).size).toBe(MiB);
    expect(sha256(await readFile(f))).toBe(sha256(model));
    // --zero-range past the end grows the file; with --keep-size it does not.
    await run('-z', '-o', String(MiB - 5000), '-l', '20000');
    model = Buffer.concat([model.subarray(0, MiB - 5000), Buffer.alloc(20_000)]);
    expect((await stat(f)).size).toBe(MiB + 15_000);
    await run('-z', '-n', '-o', '500000', '-l', String(2 * MiB));
    model.fill(0, 500_000);
    expect((await stat(f)).size).toBe(MiB + 15_000);
    expect(sha256(await readFile(f))).toBe(sha256(model));
    expect((await stat(cipherFile)).size).toBe(sealedSize(MiB + 15_000));
    // Offline, every chunk of the cipher file verifies and decrypts to the same bytes.
    const cat = await h.sealfsKeyed(v, 'cat', [f.slice(M.length)]);
    expect(cat.code, cat.stderr).toBe(0);
    expect(sha256(cat.out)).toBe(sha256(model));
  });

  it('cp --sparse=always copies files with holes byte for byte, and fallocate --dig-holes keeps contents', async () => {
    const d = await fresh('sparse');
    const src = join(h.root, 'sparse-src');
    await mkdir(src, { recursive: true });
    const model = Buffer.alloc(3 * MiB);
    randomBytes(100_000).copy(model, 0);
    randomBytes(70_000).copy(model, 2 * MiB + 5);
    await writeFile(join(src, 'holey.bin'), model);
    const cpIn = await h.spawn('cp', ['--sparse=always', join(src, 'holey.bin'), join(d, 'holey.bin')]);
    expect(cpIn.code, cpIn.stderr).toBe(0);
    expect(sha256(await readFile(join(d, 'holey.bin')))).toBe(sha256(model));
    const dig = await h.spawn('fallocate', ['--dig-holes', join(d, 'holey.bin')]);
    expect(dig.code, dig.stderr).toBe(0);
    expect(sha256(await readFile(join(d, 'holey.bin')))).toBe(sha256(model));
    const cpOut = await h.spawn('cp', ['--sparse=always', join(d, 'holey.bin'), join(src, 'back.bin')]);
    expect(cpOut.code, cpOut.stderr).toBe(0);
    expect(sha256(await readFile(join(src, 'back.bin')))).toBe(sha256(model));
    // Within the mount, too.
    const cpWithin = await h.spawn('cp', ['--sparse=always', join(d, 'holey.bin'), join(d, 'copy.bin')]);
    expect(cpWithin.code, cpWithin.stderr).toBe(0);
    expect(sha256(await readFile(join(d, 'copy.bin')))).toBe(sha256(model));
  });

  it('collapse-range and insert-range are EOPNOTSUPP; the file is unchanged', async () => {
    const d = await fresh('refused');
    const f = join(d, 'f');
    const model = randomBytes(3 * CHUNK);
    await writeFile(f, model);
    for (const flag of ['--collapse-range', '--insert-range']) {
      const r = await h.spawn('fallocate', [flag, '-o', '0', '-l', String(CHUNK), f]);
      expect(r.code, flag).not.toBe(0);
      expect(r.stderr, flag).toMatch(/Operation not supported/);
    }
    expect(sha256(await readFile(f))).toBe(sha256(model));
    // The kernel keeps asking (an ENOSYS would have made it give up until unmount).
    const ok = await h.spawn('fallocate', ['-n', '-l', String(CHUNK), f]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)('on a full cipher folder (16 MiB tmpfs): fallocate beyond the free space is ENOSPC and changes nothing; within it, it works', async () => {
    const w = await h.vault({ init: false });
    await mkdir(w.cipher);
    const tm = await h.spawn('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'sealfs-test-fallocate', w.cipher]);
    expect(tm.code, tm.stderr).toBe(0);
    try {
      const init = await h.sealfs(['init', w.cipher, '--keystore', w.keystore, '--passphrase-file', w.pass, '--kdf-target-ms', '20']);
      expect(init.code, init.stderr).toBe(0);
      const pid = await h.mountOk(w);
      const f = join(w.mnt, 'f.bin');
      const model = randomBytes(MiB + 1234);
      await writeFile(f, model);
      // The one cipher file (not through an opened vault: its descriptor of the folder would keep the tmpfs busy).
      const cipherFile = join(w.cipher, (await readdir(w.cipher)).find((name) => name !== 'sealfs.vault')!);
      const cipherBefore = sha256(await readFile(cipherFile));
      for (const args of [['-l', String(64 * MiB)], ['-n', '-l', String(64 * MiB)], ['-z', '-o', String(MiB), '-l', String(64 * MiB)]]) {
        const r = await h.spawn('fallocate', [...args, f]);
        expect(r.code, args.join(' ')).not.toBe(0);
        expect(r.stderr, args.join(' ')).toMatch(/No space left on device/);
        expect((await stat(f)).size).toBe(model.length);
        expect(sha256(await readFile(f))).toBe(sha256(model));
        expect(sha256(await readFile(cipherFile))).toBe(cipherBefore);
      }
      // Space that is there can be taken.
      const ok = await h.spawn('fallocate', ['-l', String(4 * MiB), f]);
      expect(ok.code, ok.stderr).toBe(0);
      expect((await stat(f)).size).toBe(4 * MiB);
      expect(sha256(await readFile(f))).toBe(sha256(Buffer.concat([model, Buffer.alloc(4 * MiB - model.length)])));
      await h.unmountOk(w, pid);
      const scrub = await h.sealfsKeyed(w, 'scrub');
      expect(scrub.code, scrub.stdout + scrub.stderr).toBe(0);
    } finally {
      if ((await h.spawn('umount', [w.cipher])).code !== 0) await h.spawn('umount', ['-l', w.cipher]);
    }
  });
});
