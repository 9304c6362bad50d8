/**
 * `sealfs keygen|encrypt|decrypt`, run in process through stdin and stdout: the bytes, and
 * the exit codes of a malformed key file (5), damaged input (4) and an existing output (3).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { decrypt } from '../src/crypto/buffer.js';
import { readKeyFile } from '../src/crypto/keyfile.js';
import { REPO } from './build.js';
import { runInProcess } from './helpers-cli.js';
import { pattern } from './helpers.js';

let root: string;
let key: string;
const env = { ...process.env };
const plain = pattern(200_000);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-cli-filter-'));
  key = join(root, 'k.key');
  expect(await runInProcess(['keygen', '--out', key], env)).toEqual({ code: EXIT.OK, stdout: '', stderr: '' });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('sealfs encrypt / decrypt (in process)', () => {
  it('encrypts stdin to a file and decrypts it back to stdout', async () => {
    const sealed = join(root, 'a.sealed');
    const enc = await runInProcess(['encrypt', '--key', key, '--chunk-size', '4K', '-o', sealed], env, plain);
    expect(enc).toEqual({ code: EXIT.OK, stdout: '', stderr: '' });
    expect(Buffer.compare(Buffer.from(decrypt(await readFile(sealed), await readKeyFile(key))), Buffer.from(plain))).toBe(0);
    const opened = join(root, 'a.out');
    expect((await runInProcess(['decrypt', '--key', key, sealed, '-o', opened], env)).code).toBe(EXIT.OK);
    expect(Buffer.compare(await readFile(opened), Buffer.from(plain))).toBe(0);
    const again = await runInProcess(['decrypt', '--key', key, sealed, '-o', opened], env);
    expect(again.code).toBe(EXIT.IO);
    expect(again.stderr).toBe(`sealfs: ${opened}: already exists (use --force to overwrite)\n`);

    const text = 'a line of text\n'.repeat(5000);
    const textSealed = join(root, 'text.sealed');
    expect((await runInProcess(['encrypt', '--key', key, '-', '-o', textSealed], env, text)).code).toBe(EXIT.OK);
    expect(await runInProcess(['decrypt', '--key', key, textSealed], env)).toEqual({ code: EXIT.OK, stdout: text, stderr: '' });
  });

  it('a malformed key file exits 5 and names the file; damaged input exits 4', async () => {
    const bad = join(root, 'bad.key');
    await writeFile(bad, 'not a key\n');
    const refused = await runInProcess(['encrypt', '--key', bad], env, plain);
    expect(refused.code).toBe(EXIT.KEY);
    expect(refused.stderr).toBe(`sealfs: ${bad}: not a sealfs key file (expected "sealfs-key-v1:" and 64 hex digits, or 32 raw bytes)\n`);
    const missing = await runInProcess(['encrypt', '--key', join(root, 'absent.key')], env, plain);
    expect(missing.code).toBe(EXIT.IO);

    const sealed = join(root, 'b.sealed');
    expect((await runInProcess(['encrypt', '--key', key, '-o', sealed], env, plain)).code).toBe(EXIT.OK);
    const bytes = await readFile(sealed);
    bytes[bytes.length - 3]! ^= 1;
    const damaged = await runInProcess(['decrypt', '--key', key], env, bytes);
    expect(damaged.code).toBe(EXIT.INTEGRITY);
    expect(damaged.stderr).toMatch(/^sealfs: .+\n$/);
  });

  it('a bad option is a usage error (2); --help and --version exit 0 on stdout', async () => {
    const usage = await runInProcess(['encrypt', '--key', key, '--chunk-size', '3K'], env);
    expect(usage.code).toBe(EXIT.USAGE);
    expect(usage.stderr).toMatch(/^sealfs: /);
    const help = await runInProcess(['--help'], env);
    expect([help.code, help.stderr]).toEqual([EXIT.OK, '']);
    expect(help.stdout).toContain('Usage: sealfs');
    const version = await runInProcess(['--version'], env);
    expect([version.code, version.stderr]).toEqual([EXIT.OK, '']);
    // The package's version, then formats, backend, libfuse (test/install.test.ts checks the installed one).
    const { version: packageVersion } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    const lines = version.stdout.split('\n');
    expect(lines[0]).toBe(`sealfs ${packageVersion}`);
    expect(lines[1]).toBe('formats: vault file 1, sealed files 1, key store 1 (reads and writes these)');
    expect(lines[2]).toMatch(/^crypto: native \(OpenSSL \d/);
    expect(lines[3]).toMatch(/^libfuse: 3\.\d+\.\d+$/);
  });
});
