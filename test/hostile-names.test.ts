/**
 * Issue 10 item 7 played for real against a mounted vault: the provider plants a FIFO, a
 * listening socket, names that are not UTF-8 (`x\xff`, `x\xfe`) and two conflict copies of a
 * real file differing only in an invalid byte. Another process lists them through the mount
 * (each its own undecryptable placeholder), opening one is EIO at once (never blocking on the
 * FIFO), nothing outside the vault changes, and the server goes on answering.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUSE_PROBLEM, useMountHarness } from './mount-helpers.js';

const h = useMountHarness('hostile-names');
if (FUSE_PROBLEM) console.warn(`hostile-names: skipped: ${FUSE_PROBLEM}`);

const ANSWER_MS = 2000;
const bytes = (dir: string, ...parts: (string | number[])[]) => Buffer.concat([Buffer.from(dir + '/'), ...parts.map((p) => Buffer.from(p as never))]);
const sha = (path: string) => createHash('sha256').update(fs.readFileSync(path)).digest('hex');

describe.skipIf(FUSE_PROBLEM !== undefined)('special files and names that are not UTF-8 in the cipher folder', { timeout: 120_000 }, () => {
  it('are listed as placeholders, open with EIO, change nothing outside, and the server answers', async () => {
    const v = await h.vault();
    const decoy = join(v.dir, 'decoy');
    fs.mkdirSync(decoy);
    fs.writeFileSync(join(decoy, 'precious'), 'precious data\n');
    const before = sha(join(decoy, 'precious'));
    await h.mountOk(v, { args: ['--cache-time', '0'] });
    await fs.promises.writeFile(join(v.mnt, 'real.txt'), 'hello\n');
    const encoded = fs.readdirSync(v.cipher).find((name) => name !== 'sealfs.vault' && !name.startsWith('.'))!;
    expect(spawnSync('mkfifo', [join(v.cipher, 'fifo')]).status).toBe(0);
    const server = createServer();
    await new Promise<void>((done) => server.listen(join(v.cipher, 'sock'), done));
    try {
      fs.writeFileSync(bytes(v.cipher, 'x', [0xff]), 'one');
      fs.writeFileSync(bytes(v.cipher, 'x', [0xfe]), 'two');
      fs.copyFileSync(join(v.cipher, encoded), bytes(v.cipher, encoded, ' (', [0xff], ')'));
      fs.copyFileSync(join(v.cipher, encoded), bytes(v.cipher, encoded, ' (', [0xfe], ')'));

      const placeholders = ['UNDECRYPTABLE fifo', 'UNDECRYPTABLE sock', 'UNDECRYPTABLE x\\xfe', 'UNDECRYPTABLE x\\xff', `UNDECRYPTABLE ${encoded} (\\xfe)`, `UNDECRYPTABLE ${encoded} (\\xff)`];
      expect((await readdir(v.mnt)).sort()).toEqual([...placeholders, 'real.txt'].sort());
      for (const name of placeholders) {
        const start = Date.now();
        const st = await stat(join(v.mnt, name));
        expect([name, st.isFile(), st.size]).toEqual([name, true, 0]);
        const code = await open(join(v.mnt, name), 'r').then(async (fh) => (await fh.close(), undefined), (e: NodeJS.ErrnoException) => e.code);
        expect([name, code]).toEqual([name, 'EIO']);
        expect(Date.now() - start).toBeLessThan(ANSWER_MS);
      }
      // Nothing was read from or written to the planted entries, nor outside the vault.
      expect(fs.readFileSync(bytes(v.cipher, 'x', [0xff]), 'utf8')).toBe('one');
      expect(fs.lstatSync(join(v.cipher, 'fifo')).isFIFO()).toBe(true);
      expect(sha(join(decoy, 'precious'))).toBe(before);
      const start = Date.now();
      expect(await readFile(join(v.mnt, 'real.txt'), 'utf8')).toBe('hello\n');
      expect(Date.now() - start).toBeLessThan(ANSWER_MS);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});
