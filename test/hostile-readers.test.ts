/**
 * Forged and damaged file ends, played against every reader (issue 10 §5): a file cut to a
 * bare header and one chunk (52 bytes), one file's header followed by 28 random bytes, a real
 * multi-chunk file with its final chunk garbled, and one with its final chunk swapped for
 * another file's. Each must fail naming the path (and chunk), releasing nothing of it,
 * through PlainFs, the real mount (from another process), `sealfs cat` (exit 4), `sealfs
 * export` (exit 4, the other files exported, no partial file), `sealfs decrypt` (exit 4), the
 * stream API and scrub. Also `export`'s handling of provider-set setuid/setgid/sticky bits.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FormatError } from '../src/crypto/errors.js';
import { createDecryptStream } from '../src/crypto/stream.js';
import { openVault } from '../src/vault/vault.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { feedStream } from './helpers.js';
import { FUSE_PROBLEM, useMountHarness, walk, type TestVault } from './mount-helpers.js';

const h = useMountHarness('hostile-readers');
if (FUSE_PROBLEM) console.warn(`hostile-readers: mount tests skipped: ${FUSE_PROBLEM}`);

const CHUNK = 64 * 1024;
const HEADER = 24;
const STORED = CHUNK + 28;
const EXIT = { OK: 0, IO: 3, INTEGRITY: 4, PROBLEMS: 9 };

/** Each forged file and the chunk its failure must name. */
const FORGED: Readonly<Record<string, number>> = {
  '/docs/cut.txt': 0,
  '/docs/spliced.txt': 0,
  '/docs/garbled.bin': 3,
  '/docs/swapped.bin': 2,
};
const FORGED_PATHS = Object.keys(FORGED);
/** A file damaged inside (its end is sound): it opens, and readers stop at the damaged chunk. */
const MIDDLE = { path: '/docs/middle.bin', chunk: 20, data: randomBytes(22 * CHUNK + 5) };

const healthy = randomBytes(2 * CHUNK + 7);
const donor = randomBytes(2 * CHUNK + 500);
/** Intact files that must read (and export) exactly. */
const INTACT: Readonly<Record<string, Buffer>> = {
  '/docs/empty.txt': Buffer.alloc(0),
  '/docs/healthy.bin': healthy,
  '/docs/donor.bin': donor,
  '/modes/suid.sh': Buffer.from('#!/bin/sh\necho hi\n'),
  '/modes/sgid.sh': Buffer.from('#!/bin/sh\necho ho\n'),
};

let v: TestVault;
let key: Uint8Array;
const cipherOf = new Map<string, string>();
/** A folder beside the vault that no attack may change. */
let decoy: string;

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

async function treeSums(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await walk(root)) out.push(`${e.path} ${e.kind} ${e.kind === 'file' ? sha(await readFile(join(root, e.path))) : ''}`);
  return out.sort();
}

async function plainFs(readOnly = true, log: (line: string) => void = () => {}): Promise<PlainFs> {
  return new PlainFs(await openVault(v.cipher, key, { backend: 'node' }), { readOnly, log });
}

async function writeThrough(fs: PlainFs, path: string, data: Uint8Array): Promise<void> {
  const fh = await fs.create(path, 0o644);
  if (data.length) await fs.write(fh, 0, data);
  await fs.release(fh);
}

async function flipBit(file: string, at: number): Promise<void> {
  const fh = await open(file, 'r+');
  const byte = Buffer.alloc(1);
  await fh.read(byte, 0, 1, at);
  await fh.write(Buffer.from([byte[0]! ^ 0x20]), 0, 1, at);
  await fh.close();
}

beforeAll(async () => {
  v = await h.vault();
  key = await h.masterKey(v);
  const fs = await plainFs(false);
  await fs.mkdir('/docs', 0o755);
  await fs.mkdir('/modes', 0o755);
  for (const [path, data] of Object.entries(INTACT)) await writeThrough(fs, path, data);
  await writeThrough(fs, '/docs/cut.txt', Buffer.from('hello world'));
  await writeThrough(fs, '/docs/spliced.txt', randomBytes(1000));
  await writeThrough(fs, '/docs/garbled.bin', randomBytes(3 * CHUNK + 1000));
  await writeThrough(fs, '/docs/swapped.bin', randomBytes(donor.length));
  await writeThrough(fs, MIDDLE.path, MIDDLE.data);
  await fs.releaseAll();
  for (const path of [...FORGED_PATHS, ...Object.keys(INTACT), MIDDLE.path, '/modes']) cipherOf.set(path, await h.cipherPathOf(v, path));
  const cipher = (path: string) => cipherOf.get(path)!;

  // A real file cut to a header and one (28-byte) chunk: it used to read as an empty file.
  await truncate(cipher('/docs/cut.txt'), HEADER + 28);
  // Another file's header, then 28 random bytes.
  const header = (await readFile(cipher('/docs/healthy.bin'))).subarray(0, HEADER);
  await writeFile(cipher('/docs/spliced.txt'), Buffer.concat([header, randomBytes(28)]));
  // One bit of the final chunk's ciphertext.
  await flipBit(cipher('/docs/garbled.bin'), HEADER + 3 * STORED + 12 + 500);
  await flipBit(cipher(MIDDLE.path), HEADER + MIDDLE.chunk * STORED + 12 + 7);
  // The final chunk of another file of the same length: authentic, but not this file's.
  const donorBytes = await readFile(cipher('/docs/donor.bin'));
  const swapped = await open(cipher('/docs/swapped.bin'), 'r+');
  await swapped.write(donorBytes.subarray(HEADER + 2 * STORED), 0, donorBytes.length - HEADER - 2 * STORED, HEADER + 2 * STORED);
  await swapped.close();

  // Mode bits the provider sets on cipher entries (they are not authenticated).
  await chmod(cipher('/modes/suid.sh'), 0o4755);
  await chmod(cipher('/modes/sgid.sh'), 0o2755);
  await chmod(cipher('/modes'), 0o3775);

  decoy = join(h.root, 'decoy');
  await mkdir(join(decoy, 'sub'), { recursive: true });
  await writeFile(join(decoy, 'a.txt'), 'decoy a');
  await writeFile(join(decoy, 'sub', 'b.bin'), randomBytes(5000));
}, 120_000);

describe('forged and damaged file ends', { timeout: 120_000 }, () => {
  it('PlainFs: open fails with EIO naming the path, one log line with the chunk; intact files read exactly', async () => {
    const lines: string[] = [];
    const fs = await plainFs(true, (line) => lines.push(line));
    for (const [path, chunk] of Object.entries(FORGED)) {
      const before = lines.length;
      const err = (await fs.open(path, constants.O_RDONLY).then(
        async (fh) => {
          // The old behaviour: the open worked. Show what a read would have given.
          const bytes = await fs.read(fh, 0, 4096).catch((e: unknown) => e);
          return new Error(`${path} opened; a read gave ${bytes instanceof Uint8Array ? `${bytes.length} bytes` : String(bytes)}`);
        },
        (e: unknown) => e,
      )) as NodeJS.ErrnoException;
      expect(err.code, `${path}: ${err.message}`).toBe('EIO');
      expect(err.message).toContain(path);
      expect(lines.slice(before), path).toEqual([expect.stringMatching(new RegExp(`^integrity: ${path.replace(/\./g, '\\.')} \\(chunk ${chunk}\\): `))]);
    }
    for (const [path, data] of Object.entries(INTACT)) {
      const fh = await fs.open(path, constants.O_RDONLY);
      const got = await fs.read(fh, 0, data.length + 10);
      expect(sha(got), path).toBe(sha(data));
      expect(await fs.read(fh, data.length, 10)).toHaveLength(0);
      await fs.release(fh);
    }
    await fs.releaseAll();
  });

  it('PlainFs: O_TRUNC and truncate to 0 replace a forged file (nothing of it is read); it then reads as what was written', async () => {
    const w = await h.vault();
    const wKey = await h.masterKey(w);
    const fs = new PlainFs(await openVault(w.cipher, wKey, { backend: 'node' }));
    await writeThrough(fs, '/a.txt', Buffer.from('hello'));
    await writeThrough(fs, '/b.txt', Buffer.from('world'));
    for (const path of ['/a.txt', '/b.txt']) await truncate(await h.cipherPathOf(w, path), HEADER + 28);
    expect(((await fs.open('/a.txt', constants.O_RDONLY).catch((e: unknown) => e)) as NodeJS.ErrnoException).code).toBe('EIO');
    // Write-only: the open waits, the first write fails and changes nothing.
    const forged = await readFile(await h.cipherPathOf(w, '/a.txt'));
    const append = await fs.open('/a.txt', constants.O_WRONLY | constants.O_APPEND);
    expect(((await fs.write(append, 0, Buffer.from('more')).catch((e: unknown) => e)) as NodeJS.ErrnoException).code).toBe('EIO');
    await fs.release(append);
    expect((await readFile(await h.cipherPathOf(w, '/a.txt'))).equals(forged)).toBe(true);
    const fh = await fs.open('/a.txt', constants.O_WRONLY | constants.O_TRUNC);
    await fs.write(fh, 0, Buffer.from('new'));
    await fs.release(fh);
    await fs.truncate('/b.txt', 0);
    for (const [path, text] of [['/a.txt', 'new'], ['/b.txt', '']] as const) {
      const rh = await fs.open(path, constants.O_RDONLY);
      expect(Buffer.from(await fs.read(rh, 0, 100)).toString(), path).toBe(text);
      await fs.release(rh);
    }
    await fs.releaseAll();
  });

  it.skipIf(FUSE_PROBLEM !== undefined)('the mount: reads from another process get EIO and nothing else, logged with the chunk; the server keeps answering; nothing outside changed', async () => {
    const sums = await treeSums(decoy);
    await h.mountOk(v);
    try {
      for (const [path, chunk] of Object.entries(FORGED)) {
        const file = join(v.mnt, path);
        const cat = await h.spawn('cat', [file], { timeoutMs: 20_000 });
        expect(cat.code, `${path}: cat printed ${cat.out.length} bytes`).not.toBe(0);
        expect(cat.stderr).toMatch(/Input\/output error/);
        expect(cat.out.length, path).toBe(0);
        const py = await h.python(
          ['import os,sys,errno', 'try:', '    fd=os.open(sys.argv[1], os.O_RDONLY); print(len(os.read(fd, 1 << 20)))', 'except OSError as e:', '    print(errno.errorcode[e.errno])'].join('\n'),
          [file],
          { timeoutMs: 20_000 },
        );
        expect(py.stdout.trim(), path).toBe('EIO');
        const log = (await h.logLines(v)).filter((line) => line.includes(`integrity: ${path} `));
        expect(log.length, path).toBeGreaterThanOrEqual(1);
        for (const line of log) expect(line).toContain(`(chunk ${chunk})`);
      }
      // Another request is answered promptly, with the right bytes.
      const started = Date.now();
      for (const [path, data] of Object.entries(INTACT)) {
        const cat = await h.spawn('cat', [join(v.mnt, path)], { timeoutMs: 20_000 });
        expect(cat.code, cat.stderr).toBe(0);
        expect(sha(cat.out), path).toBe(sha(data));
      }
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await h.unmountOk(v);
    }
    expect(await treeSums(decoy)).toEqual(sums);
  });

  it.skipIf(FUSE_PROBLEM !== undefined)('the mount: appending to a forged file fails and changes nothing; truncating or overwriting it replaces it', async () => {
    const w = await h.vault();
    await h.mountOk(w);
    const names = ['append.txt', 'trunc.txt', 'copy.txt'];
    try {
      for (const name of names) await writeFile(join(w.mnt, name), 'real contents');
    } finally {
      await h.unmountOk(w);
    }
    const cipher = Object.fromEntries(await Promise.all(names.map(async (name) => [name, await h.cipherPathOf(w, `/${name}`)] as const)));
    for (const name of names) await truncate(cipher[name]!, HEADER + 28);
    const forgedBytes = await readFile(cipher['append.txt']!);
    await h.mountOk(w);
    try {
      const append = await h.spawn('sh', ['-c', 'echo more >> "$1"', 'sh', join(w.mnt, 'append.txt')], { timeoutMs: 20_000 });
      // The write-only open waits for the first write (the kernel opens before it truncates).
      expect(append.code).not.toBe(0);
      expect(append.stderr).toMatch(/I\/O error|Input\/output error/);
      expect((await readFile(cipher['append.txt']!)).equals(forgedBytes)).toBe(true);
      const trunc = await h.spawn('sh', ['-c', ': > "$1" && cat "$1"', 'sh', join(w.mnt, 'trunc.txt')], { timeoutMs: 20_000 });
      expect(trunc.code, trunc.stderr).toBe(0);
      expect(trunc.out.length).toBe(0);
      const copy = await h.spawn('sh', ['-c', 'printf new > "$1" && cat "$1"', 'sh', join(w.mnt, 'copy.txt')], { timeoutMs: 20_000 });
      expect(copy.code, copy.stderr).toBe(0);
      expect(copy.stdout).toBe('new');
    } finally {
      await h.unmountOk(w);
    }
    const scrub = await h.sealfsKeyed(w, 'scrub', ['--json']);
    expect((JSON.parse(scrub.stdout) as { problems: { plainPath: string }[] }).problems.map((p) => p.plainPath)).toEqual(['/append.txt']);
  });

  it('`sealfs cat`: exit 4, one line naming the path and chunk, nothing on stdout; intact files exactly', async () => {
    for (const [path, chunk] of Object.entries(FORGED)) {
      const run = await h.sealfsKeyed(v, 'cat', [path]);
      expect(run.code, `${path}: ${run.stderr}`).toBe(EXIT.INTEGRITY);
      expect(run.out.length, path).toBe(0);
      expect(run.stderr.trim().split('\n'), path).toEqual([expect.stringMatching(new RegExp(`^sealfs: ${path.replace(/\./g, '\\.')}: .*\\bchunk ${chunk}\\b`))]);
    }
    // Damage inside: what was written is the true beginning, and stops before the damaged chunk.
    const middle = await h.sealfsKeyed(v, 'cat', [MIDDLE.path]);
    expect(middle.code, middle.stderr).toBe(EXIT.INTEGRITY);
    expect(middle.stderr).toMatch(new RegExp(`^sealfs: /docs/middle\\.bin: chunk ${MIDDLE.chunk} failed authentication`));
    expect(middle.out.length).toBeLessThanOrEqual(MIDDLE.chunk * CHUNK);
    expect(middle.out.length).toBeGreaterThan(0);
    expect(middle.out.equals(MIDDLE.data.subarray(0, middle.out.length))).toBe(true);
    for (const [path, data] of Object.entries(INTACT)) {
      const run = await h.sealfsKeyed(v, 'cat', [path]);
      expect(run.code, run.stderr).toBe(EXIT.OK);
      expect(sha(run.out), path).toBe(sha(data));
    }
  });

  it('`sealfs export`: exit 4 after exporting everything else; one line per failure; no partial file; no setuid/setgid/sticky bits', async () => {
    const sums = await treeSums(decoy);
    const dest = join(h.root, 'export-all');
    const run = await h.sealfsKeyed(v, 'export', ['/', dest]);
    expect(run.code, run.stderr).toBe(EXIT.INTEGRITY);
    const lines = run.stderr.trim().split('\n');
    for (const [path, chunk] of Object.entries({ ...FORGED, [MIDDLE.path]: MIDDLE.chunk })) {
      expect(lines.filter((line) => line.includes(`${path}:`)), `${path} in ${run.stderr}`).toEqual([expect.stringMatching(new RegExp(`\\bchunk ${chunk}\\b.*not exported`))]);
    }
    expect(lines.at(-2)).toMatch(/^Exported 5 files \(\d+ bytes\), 3 directories, 0 symlinks to /);
    expect(lines.at(-1)).toMatch(/^sealfs: 5 entries failed authentication/);
    expect(lines, run.stderr).toHaveLength(FORGED_PATHS.length + 3);
    const exported = (await walk(dest)).map((e) => e.path).sort();
    expect(exported).toEqual(['docs', 'docs/donor.bin', 'docs/empty.txt', 'docs/healthy.bin', 'modes', 'modes/sgid.sh', 'modes/suid.sh']);
    for (const [path, data] of Object.entries(INTACT)) expect(sha(await readFile(join(dest, path))), path).toBe(sha(data));
    expect((await stat(join(dest, 'modes/suid.sh'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(dest, 'modes/sgid.sh'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(dest, 'modes'))).mode & 0o7777).toBe(0o775);

    // One file: nothing at DEST, nothing partial beside it.
    const one = join(h.root, 'export-one');
    const single = await h.sealfsKeyed(v, 'export', ['/docs/garbled.bin', one]);
    expect(single.code, single.stderr).toBe(EXIT.INTEGRITY);
    expect((await readdir(h.root)).filter((name) => name.includes('export-one'))).toEqual([]);
    // An existing DEST: refused, exit 3.
    const again = await h.sealfsKeyed(v, 'export', ['/docs/healthy.bin', dest]);
    expect(again.code).toBe(EXIT.IO);
    expect(again.stderr.trim()).toBe(`sealfs: ${dest}: already exists (refusing to overwrite)`);
    expect(await treeSums(decoy)).toEqual(sums);
  });

  it('`sealfs decrypt` exits 4 and writes no output file; the stream API fails naming the chunk, releasing nothing', async () => {
    const keyFile = join(h.root, 'raw.key');
    await writeFile(keyFile, key, { mode: 0o600 });
    for (const [path, chunk] of Object.entries({ ...FORGED, [MIDDLE.path]: MIDDLE.chunk })) {
      const out = join(h.root, `decrypted-${chunk}-${path.replace(/\W/g, '_')}`);
      const run = await h.sealfs(['decrypt', cipherOf.get(path)!, '--key', keyFile, '-o', out]);
      expect(run.code, `${path}: ${run.stderr}`).toBe(EXIT.INTEGRITY);
      expect(await stat(out).then(() => 'exists', () => 'absent')).toBe('absent');
      const { output, error } = await feedStream(createDecryptStream(key, { backend: 'node' }), await readFile(cipherOf.get(path)!), [1000, 3, 70_000]);
      expect(error, path).toBeInstanceOf(FormatError);
      expect((error as FormatError).chunk, path).toBe(chunk);
      // The stream releases verified batches of 16 chunks before the damaged one.
      expect(output.equals(path === MIDDLE.path ? MIDDLE.data.subarray(0, 16 * CHUNK) : Buffer.alloc(0)), path).toBe(true);
    }
    const ok = await h.sealfs(['decrypt', cipherOf.get('/docs/healthy.bin')!, '--key', keyFile]);
    expect(ok.code, ok.stderr).toBe(EXIT.OK);
    expect(sha(ok.out)).toBe(sha(healthy));
  });

  it('scrub reports exactly the forged and damaged files, each with its chunk', async () => {
    const run = await h.sealfsKeyed(v, 'scrub', ['--json']);
    expect(run.code, run.stderr).toBe(EXIT.PROBLEMS);
    const problems = (JSON.parse(run.stdout) as { problems: { plainPath: string; chunk: number | null }[] }).problems;
    expect(Object.fromEntries(problems.map((p) => [p.plainPath, p.chunk]))).toEqual({ ...FORGED, [MIDDLE.path]: MIDDLE.chunk });
  });
});
