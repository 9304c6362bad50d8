/**
 * Special files and names that are not UTF-8 in a cipher directory (FORMAT.md §10.4–§10.5),
 * on real temp directories: a FIFO, a listening socket, `\xff` and `\xfe` names and two
 * conflict copies differing only in invalid bytes, through the mount-side decoder
 * (DirectoryDecoder, PlainFs) and scrub.
 */
import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERRNO, errnoOf } from '../src/fs/errno.js';
import { listDirectory } from '../src/tools/offline.js';
import { scrubVault } from '../src/tools/scrub.js';
import { DirectoryDecoder } from '../src/vault/directory.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { openVault } from '../src/vault/vault.js';
import { newVaultConfig, writeVaultFile } from '../src/vault/vaultfile.js';

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
let work: string;
let server: Server | undefined;
const opened: PlainFs[] = [];

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'sealfs-special-'));
});
afterEach(async () => {
  for (const fs of opened.splice(0)) await fs.releaseAll();
  if (server) await new Promise((done) => server!.close(done));
  server = undefined;
  await rm(work, { recursive: true, force: true });
});

const bytesPath = (dir: string, ...parts: (string | number[])[]) =>
  Buffer.concat([Buffer.from(dir + '/'), ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)))]);

/** A vault holding one file "real.txt", then the hostile entries next to its cipher file. */
async function hostileVault() {
  const dir = await mkdtemp(join(work, 'cipher-'));
  await writeVaultFile(dir, newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255 }), KEY);
  const log: string[] = [];
  const fs = new PlainFs(await openVault(dir, KEY, { backend: 'node' }), { log: (line) => log.push(line) });
  opened.push(fs);
  const fh = await fs.create('/real.txt', 0o644);
  await fs.write(fh, 0, new TextEncoder().encode('hello'));
  await fs.release(fh);
  const encoded = (await readdir(dir)).find((name) => name !== 'sealfs.vault')!;
  expect(spawnSync('mkfifo', [join(dir, 'fifo')]).status).toBe(0);
  server = createServer();
  await new Promise<void>((done) => server!.listen(join(dir, 'sock'), done));
  await writeFile(bytesPath(dir, 'x', [0xff]), 'one');
  await writeFile(bytesPath(dir, 'x', [0xfe]), 'two');
  // Conflict copies of a real file that differ only in an invalid byte.
  await copyFile(join(dir, encoded), bytesPath(dir, encoded, ' (', [0xff], ')'));
  await copyFile(join(dir, encoded), bytesPath(dir, encoded, ' (', [0xfe], ')'));
  fs.vault.tree.forget(dir);
  return { dir, fs, log, encoded };
}

const PLACEHOLDERS = ['UNDECRYPTABLE fifo', 'UNDECRYPTABLE sock', 'UNDECRYPTABLE x\\xfe', 'UNDECRYPTABLE x\\xff'];

describe('special files and names that are not UTF-8', () => {
  it('the mount lists each as its own undecryptable placeholder, stable across listings, and told once in the log', async () => {
    const { dir, fs, log, encoded } = await hostileVault();
    const copies = [`UNDECRYPTABLE ${encoded} (\\xfe)`, `UNDECRYPTABLE ${encoded} (\\xff)`];
    const expected = [...PLACEHOLDERS, ...copies, 'real.txt'].sort();
    expect((await fs.readdir('/')).sort()).toEqual(expected);
    const fresh = await new DirectoryDecoder(fs.vault.names, 255).list(dir, fs.vault.tree.root.dirId, true);
    expect([...fresh.entries.keys()].sort()).toEqual(expected);
    expect(fresh.undecryptable).toHaveLength(6);
    fs.vault.tree.forget(dir);
    expect((await fs.readdir('/')).sort()).toEqual(expected);
    // Offline `sealfs ls` lists them alike, as empty files.
    const listed = await listDirectory(fs, '/');
    expect(listed.filter((e) => e.name.startsWith('UNDECRYPTABLE ')).map((e) => [e.type, e.size])).toEqual(Array(6).fill(['file', 0]));
    const junkLines = log.filter((line) => line.includes('undecryptable names'));
    expect(junkLines).toHaveLength(1);
    expect(junkLines[0]).toMatch(/^6 undecryptable names in "\/"/);
  });

  it('a placeholder shows as an empty regular file without access, and opening it is EIO without touching the entry', async () => {
    const { fs } = await hostileVault();
    await fs.readdir('/');
    for (const name of [...PLACEHOLDERS]) {
      const st = await fs.getattr(`/${name}`);
      expect(st.mode).toBe(constants.S_IFREG);
      expect(st.size).toBe(0);
      const err = await fs.open(`/${name}`, constants.O_RDONLY).then(() => undefined, (e: unknown) => e);
      expect(errnoOf(err, 'open', () => {})).toBe(ERRNO.EIO);
    }
    // The real file is untouched by its look-alike copies.
    expect((await fs.getattr('/real.txt')).size).toBe(5);
  });

  it('a name that is not UTF-8 is never passed on as another name: removing its placeholder is EILSEQ', async () => {
    const { dir, fs } = await hostileVault();
    await writeFile(bytesPath(dir, 'x', [0xef, 0xbf, 0xbd]), 'the U+FFFD name'); // what "x\xff" decodes to lossily
    fs.vault.tree.forget(dir);
    await fs.readdir('/');
    const err = await fs.unlink('/UNDECRYPTABLE x\\xff').then(() => undefined, (e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EILSEQ');
    const left = (await readdir(dir, { encoding: 'buffer' })).map((b) => b.toString('hex'));
    expect(left).toContain(Buffer.from('x\uFFFD').toString('hex'));
    expect(left).toContain(Buffer.from([0x78, 0xff]).toString('hex'));
  });

  it('scrub reports each one, the names that are not UTF-8 with their bytes escaped', async () => {
    const { dir, encoded } = await hostileVault();
    const result = await scrubVault({ cipherDir: dir, masterKey: KEY });
    const problems = result.problems.map((p) => `${p.kind} ${p.rel}`).sort();
    expect(problems).toEqual(
      [`undecryptable-name ${encoded} (\\xfe)`, `undecryptable-name ${encoded} (\\xff)`, 'undecryptable-name x\\xfe', 'undecryptable-name x\\xff', 'unexpected-type fifo', 'unexpected-type sock'].sort(),
    );
    for (const p of result.problems.filter((p) => p.kind === 'undecryptable-name')) expect(p.detail).toMatch(/not UTF-8 \(its bytes: .*\\x(ff|fe)/);
  });
});

describe('an entry planted under another kind of entry of the same name', () => {
  it('a FIFO where folder "x" was, beside file "x": the file keeps its name, the FIFO is the duplicate, opening it is an integrity failure', async () => {
    const dir = await mkdtemp(join(work, 'cipher-'));
    await writeVaultFile(dir, newVaultConfig({ cipher: 'aes-256-gcm', chunkSize: 4096, maxNameLength: 255 }), KEY);
    const fs = new PlainFs(await openVault(dir, KEY, { backend: 'node' }), { log: () => {} });
    opened.push(fs);
    const cipherNames = async () => (await readdir(dir)).filter((name) => name !== 'sealfs.vault');
    // Folder "x" once existed: its cipher name is what the provider plants a FIFO under.
    await fs.mkdir('/x', 0o755);
    const [folderName] = await cipherNames();
    await fs.rmdir('/x');
    const fh = await fs.create('/x', 0o644);
    await fs.write(fh, 0, new TextEncoder().encode('the real x'));
    await fs.release(fh);
    const [fileName] = await cipherNames();
    expect(spawnSync('mkfifo', [join(dir, folderName!)]).status).toBe(0);
    fs.vault.tree.forget(dir);
    // Whichever way the two cipher names sort, the real file is "x".
    expect((await fs.readdir('/')).sort()).toEqual(['x', 'x (duplicate 2)']);
    const real = await fs.open('/x', constants.O_RDONLY);
    expect(new TextDecoder().decode(await fs.read(real, 0, 100))).toBe('the real x');
    await fs.release(real);
    const planted = await fs.open('/x (duplicate 2)', constants.O_RDONLY).then(() => 'opened', (err: unknown) => errnoOf(err, 'open', () => {}));
    expect(planted).toBe(ERRNO.EIO);
    expect(fileName).not.toBe(folderName);
  });
});
