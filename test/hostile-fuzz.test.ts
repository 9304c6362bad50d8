/**
 * Fuzzing of everything the provider controls, through every reader, in this process: a
 * real vault whose sealed file, long-name sidecar and vault file are replaced by generated
 * damage (fixed seeds, bounded runs), and by special files. Each reader either gives exactly
 * what the owner stored (only when the damage changed nothing that matters) or fails with
 * its documented error, never releasing a byte that differs from the true plaintext, never
 * with an internal error, never hanging.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError } from '../src/crypto/errors.js';
import { CHUNK_OVERHEAD } from '../src/crypto/ciphers.js';
import { HEADER_BYTES } from '../src/crypto/header.js';
import { sealedChunkOffset } from '../src/crypto/geometry.js';
import { createDecryptStream, decrypt } from '../src/index.js';
import { EXIT } from '../src/cli/exit.js';
import { scrubVault, verifierContext, verifySealedFile } from '../src/tools/scrub.js';
import { MAX_SIDECAR_BYTES, readSidecar, UNDECRYPTABLE_PREFIX } from '../src/vault/ciphernames.js';
import { IntegrityFailure, VaultError } from '../src/vault/errors.js';
import { PlainFs } from '../src/vault/plainfs.js';
import { unlockVaultAt } from '../src/vault/unlock.js';
import { openVault } from '../src/vault/vault.js';
import { MAX_VAULT_FILE_BYTES, readVaultFile, verifyVaultFile, VAULT_FILE, type VaultConfig } from '../src/vault/vaultfile.js';
import { runCli } from '../src/cli/program.js';
import { Readable, Writable } from 'node:stream';
import type { BackendName } from '../src/crypto/backend.js';
import { BACKENDS, feedStream, requireEveryBackend, same } from './helpers.js';

requireEveryBackend();

/** A reader that takes longer than this on one input hangs. */
const LIMIT_MS = 5_000;
const C = 4096;
/** The plaintext under test: 3 full chunks and a partial one; its sealed length. */
const PLAIN_BYTES = 3 * C + 100;
const SEALED_BYTES = sealedChunkOffset(3, C) + 100 + CHUNK_OVERHEAD;
const PASS = 'fuzzing the hostile provider, a passphrase';

let root: string;
let cipherDir: string;
let keystore: string;
let passFile: string;
let key: Uint8Array;
let config: VaultConfig;
/** The sealed file under test: its plaintext, cipher path and stored bytes. */
const FILE = '/f.bin';
let plain: Uint8Array;
let filePath: string;
let sealed: Uint8Array;
/** Another sealed file of the same size under the same key (headers and chunks to splice in). */
let otherSealed: Uint8Array;
/** The long-named file, its sidecar's path and hash, and the sidecar's true content. */
const LONG = '/' + 'a-long-name-that-needs-a-sidecar-'.repeat(4) + '.txt';
let sidecarPath: string;
let sidecarHash: string;
let sidecar: Buffer;
let vaultBytes: Buffer;
let counter = 0;

const env = (): NodeJS.ProcessEnv => ({ ...process.env, HOME: join(root, 'home'), XDG_CONFIG_HOME: join(root, 'config'), XDG_STATE_HOME: join(root, 'state') });
/** The crypto backend of the current input: the runs take turns over every backend built. */
let backend: BackendName = 'node';
const nextBackend = () => (backend = BACKENDS[counter % BACKENDS.length]!);
const keyArgs = () => ['--keystore', keystore, '--passphrase-file', passFile, '--backend', backend];

/** `sealfs ARGS…` in this process, its output as bytes (cat's output is checked byte for byte). */
async function runBytes(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (parts: Buffer[]) => new Writable({ write: (chunk: Buffer, _e, done) => void (parts.push(chunk), done()) });
  const code = await runCli(args, { stdout: sink(out), stderr: sink(err), stdin: Readable.from([]), env: env(), openTerminal: () => undefined });
  return { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
}
const sealfs = (args: string[]) => bounded(runBytes(args), `sealfs ${args[0]}`);

/** `work`, or a failure naming `what` when it takes longer than LIMIT_MS (a hang). */
async function bounded<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${LIMIT_MS} ms (hang)`)), LIMIT_MS);
  });
  try {
    return await Promise.race([work, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `got` is a prefix of `truth`. */
const isPrefix = (got: Uint8Array, truth: Uint8Array) => got.length <= truth.length && same(got, truth.subarray(0, got.length));

const freshFs = async () => new PlainFs(await openVault(cipherDir, key, { backend }));

/** The cipher files that appear in `dir` while `work` runs. */
async function newEntries(dir: string, work: () => Promise<void>): Promise<string[]> {
  const before = new Set(await readdir(dir));
  await work();
  return (await readdir(dir)).filter((name) => !before.has(name));
}

async function writePlain(fs: PlainFs, path: string, data: Uint8Array): Promise<void> {
  const fh = await fs.create(path, 0o644);
  await fs.write(fh, 0, data);
  await fs.release(fh);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sealfs-fuzz-'));
  cipherDir = join(root, 'vault');
  keystore = join(root, 'ks');
  passFile = join(root, 'pw');
  await writeFile(passFile, PASS + '\n');
  const init = await runBytes(['init', cipherDir, '--keystore', keystore, '--passphrase-file', passFile, '--kdf-target-ms', '20', '--chunk-size', '4K', '--max-name-length', '64']);
  expect(init.code, init.stderr).toBe(EXIT.OK);
  ({ config, masterKey: key } = await unlockVaultAt(cipherDir, keystore, { ask: async () => PASS, interactive: false }));
  expect(config.chunkSize).toBe(C);
  vaultBytes = await readFile(join(cipherDir, VAULT_FILE));

  const fs = await freshFs();
  // 3 full chunks and a partial one: every region (header, nonces, bodies, tags, the final chunk).
  plain = new Uint8Array(Buffer.from(Array.from({ length: PLAIN_BYTES }, (_, i) => (i * 31 + (i >> 8)) & 0xff)));
  const [f] = await newEntries(cipherDir, () => writePlain(fs, FILE, plain));
  filePath = join(cipherDir, f!);
  const [g] = await newEntries(cipherDir, () => writePlain(fs, '/g.bin', plain.map((b) => b ^ 0x5a)));
  otherSealed = new Uint8Array(await readFile(join(cipherDir, g!)));
  const longEntries = await newEntries(cipherDir, () => writePlain(fs, LONG, new TextEncoder().encode('long\n')));
  const sfn = longEntries.find((name) => name.endsWith('.sfn'));
  expect(sfn, `a sidecar among ${longEntries.join(', ')}`).toBeDefined();
  sidecarPath = join(cipherDir, sfn!);
  sidecarHash = sfn!.slice(0, -'.sfn'.length);
  sidecar = await readFile(sidecarPath);
  await fs.releaseAll();
  sealed = new Uint8Array(await readFile(filePath));
  expect(sealed.length).toBe(SEALED_BYTES);
}, 60_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// Sealed files

/** Stored chunk i (nonce ‖ ciphertext ‖ tag) of a sealed file. */
const chunkOf = (file: Uint8Array, i: number) => file.subarray(sealedChunkOffset(i, C), Math.min(file.length, sealedChunkOffset(i + 1, C)));
const chunks = (file: Uint8Array) => [0, 1, 2, 3].map((i) => chunkOf(file, i));
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

type Damage = { what: string; apply: (file: Uint8Array) => Uint8Array };

/** Offsets in every region: the header, each chunk's nonce, body and tag, the last byte. */
const anyOffset = () =>
  fc.oneof(
    fc.integer({ min: 0, max: HEADER_BYTES - 1 }),
    fc.integer({ min: 0, max: 3 }).chain((k) => fc.integer({ min: 0, max: 40 }).map((d) => Math.min(sealedChunkOffset(k, C) + d, SEALED_BYTES - 1))),
    fc.integer({ min: 0, max: 3 }).chain((k) => fc.integer({ min: 1, max: 40 }).map((d) => Math.min(sealedChunkOffset(k + 1, C), SEALED_BYTES) - d)),
    fc.integer({ min: HEADER_BYTES, max: SEALED_BYTES - 1 }),
  );

/** Cases every run tries first: the forged empty file (issue 10, item 5) and cuts at each chunk's end. */
const SEALED_EXAMPLES: [Damage][] = [
  { what: 'the header and one empty chunk cut from it (a forged empty file)', apply: (f: Uint8Array) => f.slice(0, HEADER_BYTES + CHUNK_OVERHEAD) },
  { what: 'cut to the header', apply: (f: Uint8Array) => f.slice(0, HEADER_BYTES) },
  ...[1, 2, 3].map((k) => ({ what: `cut after chunk ${k - 1}`, apply: (f: Uint8Array) => f.slice(0, sealedChunkOffset(k, C)) })),
].map((d) => [d]);

const damage: fc.Arbitrary<Damage> = fc.oneof(
  fc.tuple(anyOffset(), fc.integer({ min: 0, max: 255 })).map(([at, mask]) => ({
    what: `xor ${mask} at ${at}`,
    apply: (f: Uint8Array) => {
      const d = new Uint8Array(f);
      d[at]! ^= mask;
      return d;
    },
  })),
  anyOffset().map((length) => ({ what: `cut to ${length}`, apply: (f: Uint8Array) => f.slice(0, length) })),
  fc.uint8Array({ minLength: 1, maxLength: C + 60 }).map((tail) => ({ what: `${tail.length} bytes appended`, apply: (f: Uint8Array) => cat(f, tail) })),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })).map(([i, j]) => ({
    what: `chunks ${i} and ${j} swapped`,
    apply: (f: Uint8Array) => {
      const c = chunks(f);
      [c[i], c[j]] = [c[j]!, c[i]!];
      return cat(f.subarray(0, HEADER_BYTES), ...c);
    },
  })),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 4 })).map(([i, j]) => ({
    what: `chunk ${i} duplicated before ${j}`,
    apply: (f: Uint8Array) => {
      const c = chunks(f);
      c.splice(j, 0, c[i]!);
      return cat(f.subarray(0, HEADER_BYTES), ...c);
    },
  })),
  fc.integer({ min: 0, max: 3 }).map((i) => ({
    what: `chunk ${i} removed`,
    apply: (f: Uint8Array) => cat(f.subarray(0, HEADER_BYTES), ...chunks(f).filter((_, k) => k !== i)),
  })),
  fc.integer({ min: 0, max: 3 }).map((i) => ({
    what: `chunk ${i} from the other file`,
    apply: (f: Uint8Array) => cat(f.subarray(0, HEADER_BYTES), ...chunks(f).map((c, k) => (k === i ? chunkOf(otherSealed, k) : c))),
  })),
  fc.constant({ what: "the other file's header", apply: (f: Uint8Array) => cat(otherSealed.subarray(0, HEADER_BYTES), f.subarray(HEADER_BYTES)) }),
  fc.constant({ what: 'the header and one empty chunk cut from it', apply: (f: Uint8Array) => f.slice(0, HEADER_BYTES + CHUNK_OVERHEAD) }),
);

/** Whether `err` is the documented failure of a reader of sealed data. */
const typedFailure = (err: unknown) => err instanceof FormatError || err instanceof IntegrityFailure;

/** Every reader of sealed data against `damaged` in place of the file. */
async function checkSealedReaders(damaged: Uint8Array, what: string): Promise<void> {
  const unchanged = same(damaged, sealed);
  await writeFile(filePath, damaged);
  nextBackend();
  what = `${what} (${backend} backend)`;

  // decrypt(): exactly the plaintext, or a FormatError.
  let whole: Uint8Array | undefined;
  try {
    whole = decrypt(damaged, key, { backend });
  } catch (err) {
    expect(err, `decrypt, ${what}`).toBeInstanceOf(FormatError);
  }
  if (whole) expect(unchanged && same(whole, plain), `decrypt released bytes of ${what}`).toBe(true);
  expect(whole !== undefined, `decrypt accepts only the stored file (${what})`).toBe(unchanged);

  // The stream: whatever it released is a prefix of the plaintext; all of it only when unchanged.
  const stream = await bounded(feedStream(createDecryptStream(key, { backend }), damaged, [1000, 3, 5000, 17]), 'decrypt stream');
  expect(isPrefix(stream.output, plain), `stream released a byte that is not the plaintext (${what})`).toBe(true);
  if (stream.error === undefined) expect(unchanged && stream.output.length === plain.length, `stream finished on ${what}`).toBe(true);
  else expect(stream.error, `stream, ${what}`).toBeInstanceOf(FormatError);
  expect(stream.error === undefined, `stream accepts only the stored file (${what})`).toBe(unchanged);

  // The mount's path (PlainFs), random access in chunk-sized reads in a shuffled order: every
  // read gives the plaintext at its position or fails; nothing of a failing chunk.
  // A short read is no failure: a damaged file must make some call fail, not look shorter.
  const fs = await freshFs();
  let failures = 0;
  let shortReads = 0;
  /** What a reader call gave, or its failure (which must be typed). */
  const attempt = async <T>(call: Promise<T>, name: string): Promise<T | undefined> => {
    try {
      return await bounded(call, name);
    } catch (err) {
      expect(typedFailure(err), `${name}, ${what}: ${String(err)}`).toBe(true);
      failures++;
      return undefined;
    }
  };
  const fh = await attempt(fs.open(FILE, constants.O_RDONLY), 'PlainFs.open');
  if (fh !== undefined) {
    for (const k of [2, 0, 3, 1, 4]) {
      const data = await attempt(fs.read(fh, k * C, C), 'PlainFs.read');
      if (data === undefined) continue;
      const truth = plain.subarray(Math.min(k * C, plain.length), (k + 1) * C);
      expect(isPrefix(data, truth), `PlainFs chunk ${k} of ${what}`).toBe(true);
      if (data.length < truth.length) shortReads++;
    }
    await fs.release(fh);
  }
  await fs.releaseAll();
  expect(failures + shortReads === 0, `PlainFs served the whole file of ${what}`).toBe(unchanged);
  expect(failures > 0 || unchanged, `PlainFs failed on none of the calls for ${what} (short reads: ${shortReads})`).toBe(true);

  // scrub's verifier: clean exactly when unchanged.
  const verdict = await bounded(verifySealedFile(filePath, verifierContext(key, backend)), 'verifySealedFile');
  expect(verdict.failure === undefined, `scrub verdict on ${what}: ${verdict.failure?.detail}`).toBe(unchanged);
  if (verdict.failure) expect(verdict.failure.kind, what).not.toBe('unreadable');

  // sealfs cat: exit 0 with the plaintext, or exit 4 having written a prefix of it.
  const out = await sealfs(['cat', cipherDir, FILE, ...keyArgs()]);
  expect(out.code, `cat, ${what}: ${out.stderr}`).toBe(unchanged ? EXIT.OK : EXIT.INTEGRITY);
  expect(isPrefix(out.stdout, plain) && (out.code !== EXIT.OK || out.stdout.length === plain.length), `cat released a byte that is not the plaintext (${what})`).toBe(true);
  if (!unchanged) expect(out.stderr, what).toContain(FILE);

  // sealfs export: the file appears only when all of it verified.
  const dest = join(root, `export-${counter++}`);
  const exp = await sealfs(['export', cipherDir, FILE, dest, ...keyArgs()]);
  expect(exp.code, `export, ${what}: ${exp.stderr}`).toBe(unchanged ? EXIT.OK : EXIT.INTEGRITY);
  if (unchanged) expect(same(await readFile(dest), plain)).toBe(true);
  else expect(await readdir(root).then((names) => names.filter((n) => n.startsWith(`export-${counter - 1}`))), `export left a file for ${what}`).toEqual([]);
  await rm(dest, { force: true });
}

describe('damaged sealed files through every reader', () => {
  it('bit flips, cuts in every region, appended bytes, swapped, duplicated, removed and foreign chunks, a foreign header', async () => {
    try {
      await checkSealedReaders(sealed, 'the stored file');
      await fc.assert(
        fc.asyncProperty(damage, async (d) => checkSealedReaders(d.apply(sealed), d.what)),
        { seed: 0x5ea1f5, numRuns: 40, endOnFailure: true, examples: SEALED_EXAMPLES },
      );
    } finally {
      await writeFile(filePath, sealed);
    }
  }, 120_000);
});

// ---------------------------------------------------------------------------------------
// Sidecars

const LONG_NAME = LONG.slice(1);
const SHORT_NAMES = ['f.bin', 'g.bin'];
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** What the mount, `sealfs ls` and scrub make of the long-named file with the sidecar as it is now. */
async function checkSidecarReaders(what: string, valid: boolean): Promise<void> {
  const read = await bounded(readSidecar(sidecarPath, sidecarHash), 'readSidecar');
  expect(read.ok, `readSidecar on ${what}: ${read.ok ? '' : read.detail}`).toBe(valid);
  if (read.ok) expect(read.encoded + '\n').toBe(sidecar.toString('latin1'));

  // The mount's decoder: the true name or a placeholder, never another name, never a hang.
  const fs = await freshFs();
  const names = await bounded(fs.readdir('/'), 'PlainFs.readdir');
  await fs.releaseAll();
  const others = names.filter((n) => !SHORT_NAMES.includes(n));
  expect(others, `listing with ${what}`).toHaveLength(1);
  if (valid) expect(others[0]).toBe(LONG_NAME);
  else expect(others[0]!.startsWith(UNDECRYPTABLE_PREFIX), `listing with ${what}: ${others[0]}`).toBe(true);
  for (const n of SHORT_NAMES) expect(names).toContain(n);

  // sealfs ls shows what the mount shows.
  const ls = await sealfs(['ls', cipherDir, '/', '--json', ...keyArgs()]);
  expect(ls.code, `ls with ${what}: ${ls.stderr}`).toBe(EXIT.OK);
  expect((JSON.parse(ls.stdout.toString()) as { name: string }[]).map((e) => e.name).sort()).toEqual([...names].sort());

  // scrub agrees: a problem exactly when the mount shows a placeholder.
  const result = await bounded(scrubVault({ cipherDir, masterKey: key, backend, concurrency: 1, threads: 1 }), 'scrubVault');
  expect(result.problems.length > 0, `scrub with ${what}: ${result.problems.map((p) => p.detail).join('; ')}`).toBe(!valid);
}

const sidecarDamage: fc.Arbitrary<{ what: string; bytes: () => Uint8Array }> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => ({ what: `${b.length} random bytes`, bytes: () => b })),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 31 })).map(([at, c]) => ({
    what: `base32 letter ${c} at ${at}`,
    bytes: () => {
      const b = Buffer.from(sidecar);
      b[at % (b.length - 1)] = BASE32.charCodeAt(c);
      return b;
    },
  })),
  fc.constantFrom(
    { what: 'upper case', bytes: () => Buffer.from(sidecar.toString('latin1').toUpperCase()) },
    { what: 'CRLF', bytes: () => Buffer.from(sidecar.toString('latin1').replace('\n', '\r\n')) },
    { what: 'no line end', bytes: () => sidecar.subarray(0, -1) },
    { what: 'two line ends', bytes: () => Buffer.concat([sidecar, Buffer.from('\n')]) },
    { what: 'a leading space', bytes: () => Buffer.concat([Buffer.from(' '), sidecar]) },
    { what: 'a trailing tab', bytes: () => Buffer.concat([sidecar.subarray(0, -1), Buffer.from('\t\n')]) },
    { what: 'a BOM', bytes: () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), sidecar]) },
    { what: 'padding', bytes: () => Buffer.from(sidecar.toString('latin1').replace('\n', '====\n')) },
    { what: 'a second line repeating it', bytes: () => Buffer.concat([sidecar, sidecar]) },
    { what: 'empty', bytes: () => new Uint8Array(0) },
    { what: 'one byte over the bound', bytes: () => Buffer.alloc(MAX_SIDECAR_BYTES + 1, 0x61) },
    { what: '1 MiB of base32', bytes: () => Buffer.alloc(1 << 20, 0x61) },
  ),
  fc.integer({ min: 0, max: 200 }).map((n) => ({ what: `cut to ${n}`, bytes: () => sidecar.subarray(0, Math.min(n, sidecar.length - 1)) })),
  fc.string({ unit: fc.constantFrom(...BASE32), minLength: 1, maxLength: 400 }).map((e) => ({ what: `another encoded name of ${e.length}`, bytes: () => Buffer.from(e + '\n') })),
);

describe('damaged sidecars: the mount, sealfs ls and scrub agree', () => {
  it('random bytes, near-miss encodings, whitespace, cuts, oversize: a placeholder, never a wrong name', async () => {
    try {
      await checkSidecarReaders('the stored sidecar', true);
      await fc.assert(
        fc.asyncProperty(sidecarDamage, async (d) => {
          const bytes = d.bytes();
          await writeFile(sidecarPath, bytes);
          await checkSidecarReaders(d.what, Buffer.from(bytes).equals(sidecar));
        }),
        { seed: 0x51dec0, numRuns: 40, endOnFailure: true },
      );
    } finally {
      await writeFile(sidecarPath, sidecar);
    }
  }, 120_000);
});

// ---------------------------------------------------------------------------------------
// Vault files

/** readVaultFile + verifyVaultFile and `sealfs ls` on the vault file as it is now. */
async function checkVaultReaders(what: string): Promise<void> {
  let got: VaultConfig | undefined;
  let claimedId: string | undefined;
  try {
    const stored = await bounded(readVaultFile(cipherDir), 'readVaultFile');
    claimedId = stored.config.vaultId;
    got = verifyVaultFile(stored, key, cipherDir);
  } catch (err) {
    expect(err, `vault file reader on ${what}: ${String(err)}`).toBeInstanceOf(VaultError);
  }
  // Only the owner's settings pass.
  if (got) expect(got, what).toEqual(config);
  const ls = await sealfs(['ls', cipherDir, '/', ...keyArgs()]);
  // The key is looked up by the vault ID before the MAC can be checked: a vault file that
  // names another vault finds no key (exit 5) instead.
  const codes = got ? [EXIT.OK] : claimedId !== undefined && claimedId !== config.vaultId ? [EXIT.KEY, EXIT.VAULT] : [EXIT.VAULT];
  expect(codes, `ls with ${what}: ${ls.code} ${ls.stderr}`).toContain(ls.code);
  if (!got) expect(ls.stderr.trim().split('\n'), `one line for ${what}`).toHaveLength(1);
}

const vaultDamage: fc.Arbitrary<{ what: string; bytes: () => Uint8Array }> = (() => {
  const text = () => vaultBytes.toString('utf8');
  const [body, macLine] = [() => text().split('\n')[0]!, () => text().split('\n')[1]!];
  const withMac = (b: string) => Buffer.from(`${b}\n${macLine()}\n`);
  const field = fc.constantFrom('format', 'version', 'vaultId', 'cipher', 'chunkSize', 'nameScheme', 'maxNameLength', 'created');
  return fc.oneof(
    fc.jsonValue().map((v) => ({ what: `JSON ${JSON.stringify(v).slice(0, 60)}`, bytes: () => withMac(JSON.stringify(v) ?? 'null') })),
    fc.jsonValue().map((v) => ({ what: `JSON ${JSON.stringify(v).slice(0, 60)} alone`, bytes: () => Buffer.from(JSON.stringify(v) ?? '') })),
    fc.tuple(field, fc.jsonValue()).map(([k, v]) => ({
      what: `${k} set to ${JSON.stringify(v).slice(0, 60)}`,
      bytes: () => withMac(JSON.stringify({ ...(JSON.parse(body()) as object), [k]: v })),
    })),
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, mask]) => ({
      what: `xor ${mask} at ${at}`,
      bytes: () => {
        const b = Buffer.from(vaultBytes);
        b[at % b.length]! ^= mask;
        return b;
      },
    })),
    fc.tuple(fc.nat(), fc.constantFrom(...'0123456789abcdef')).map(([at, c]) => ({
      what: `MAC digit ${at} set to ${c}`,
      bytes: () => {
        const mac = macLine().split('');
        mac['hmac-sha256:'.length + (at % (mac.length - 'hmac-sha256:'.length))] = c;
        return Buffer.from(`${body()}\n${mac.join('')}\n`);
      },
    })),
    fc.nat().map((n) => ({ what: `cut to ${n % vaultBytes.length}`, bytes: () => vaultBytes.subarray(0, n % vaultBytes.length) })),
    fc.constantFrom(
      { what: 'no MAC line', bytes: () => Buffer.from(body() + '\n') },
      { what: 'an empty MAC', bytes: () => Buffer.from(`${body()}\nhmac-sha256:\n`) },
      { what: 'its own body as the MAC', bytes: () => Buffer.from(`${body()}\nhmac-sha256:${body()}\n`) },
      { what: 'one byte over the bound', bytes: () => Buffer.concat([vaultBytes, Buffer.alloc(MAX_VAULT_FILE_BYTES + 1 - vaultBytes.length, 0x20)]) },
      { what: '4 MiB of spaces after a valid file', bytes: () => Buffer.concat([vaultBytes, Buffer.alloc(4 << 20, 0x20)]) },
      { what: 'null', bytes: () => Buffer.from('null\n') },
    ),
  );
})();

describe('damaged vault files: VaultError and exit 6, never an internal error', () => {
  it('random JSON, fields of the wrong type, flipped bits and MAC digits, cuts, oversize', async () => {
    const path = join(cipherDir, VAULT_FILE);
    try {
      await checkVaultReaders('the stored vault file');
      await fc.assert(
        fc.asyncProperty(vaultDamage, async (d) => {
          await writeFile(path, d.bytes());
          await checkVaultReaders(d.what);
        }),
        { seed: 0x7a017, numRuns: 150, endOnFailure: true },
      );
    } finally {
      await writeFile(path, vaultBytes);
    }
  }, 120_000);

  it('the MAC is read only as written: 64 lower-case hex digits, nothing before or after', async () => {
    const [body, macLine] = vaultBytes.toString('utf8').split('\n') as [string, string];
    const hex = macLine.slice('hmac-sha256:'.length);
    const variants = {
      'upper case': hex.toUpperCase(),
      'text after it': `${hex}zz`,
      'a space after it': `${hex} `,
      'a digit more': `${hex}0`,
      'a leading space': ` ${hex}`,
    };
    const path = join(cipherDir, VAULT_FILE);
    try {
      for (const [what, mac] of Object.entries(variants)) {
        await writeFile(path, `${body}\nhmac-sha256:${mac}\n`);
        const stored = await readVaultFile(cipherDir);
        expect(() => verifyVaultFile(stored, key, cipherDir), what).toThrow(VaultError);
      }
      await writeFile(path, vaultBytes);
      expect(verifyVaultFile(await readVaultFile(cipherDir), key, cipherDir)).toEqual(config);
    } finally {
      await writeFile(path, vaultBytes);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Special files

/** What the provider puts in place of a file: each must make its readers fail fast. */
const SPECIAL: { name: string; plant: (path: string, copyOf: Uint8Array) => Promise<() => Promise<void>> }[] = [
  { name: 'a FIFO', plant: async (path) => (execFileSync('mkfifo', [path]), async () => {}) },
  {
    name: 'a socket',
    plant: async (path) => {
      const server: Server = createServer();
      await new Promise<void>((done) => server.listen(path, done));
      return () => new Promise<void>((done) => server.close(() => done()));
    },
  },
  { name: 'a directory', plant: async (path) => (await mkdir(path), async () => {}) },
  {
    name: 'a symlink to a valid copy outside the vault',
    plant: async (path, copyOf) => {
      const outside = join(root, `outside-${counter++}`);
      await writeFile(outside, copyOf);
      await symlink(outside, path);
      return async () => {};
    },
  },
  { name: 'a symlink to /dev/zero', plant: async (path) => (await symlink('/dev/zero', path), async () => {}) },
];

/** Replaces `path` by a special file for the duration of `check`, then puts `original` back. */
async function withSpecial(path: string, original: Uint8Array, special: (typeof SPECIAL)[number], check: () => Promise<void>): Promise<void> {
  await rm(path, { recursive: true, force: true });
  const close = await special.plant(path, original);
  try {
    await check();
  } finally {
    await close();
    await rm(path, { recursive: true, force: true });
    await writeFile(path, original);
  }
}

describe.each(SPECIAL)('$name in place of', (special) => {
  it('a sealed file: every reader fails fast with its documented error', async () => {
    await withSpecial(filePath, sealed, special, async () => {
      const fs = await freshFs();
      let opened: unknown = 'no error';
      try {
        const fh = await bounded(fs.open(FILE, constants.O_RDONLY), 'PlainFs.open');
        try {
          await bounded(fs.read(fh, 0, C), 'PlainFs.read');
        } finally {
          await fs.release(fh);
        }
      } catch (err) {
        opened = err;
      }
      await fs.releaseAll();
      expect(opened, special.name).not.toBe('no error');
      expect(typedFailure(opened) || typeof (opened as NodeJS.ErrnoException).code === 'string', `PlainFs: ${String(opened)}`).toBe(true);

      const verdict = await bounded(verifySealedFile(filePath, verifierContext(key, backend)), 'verifySealedFile');
      expect(verdict.failure, special.name).toBeDefined();
      const result = await bounded(scrubVault({ cipherDir, masterKey: key, backend, concurrency: 1, threads: 1 }), 'scrubVault');
      expect(result.problems.length, special.name).toBeGreaterThan(0);

      for (const args of [['cat', cipherDir, FILE], ['export', cipherDir, FILE, join(root, `export-${counter++}`)]]) {
        const run = await sealfs([...args, ...keyArgs()]);
        expect(run.code, `${args[0]}: ${run.stderr}`).toBe(EXIT.INTEGRITY);
        expect(run.stdout.length, args[0]).toBe(0);
        expect(run.stderr, args[0]).toContain(FILE);
      }
    });
  }, 30_000);

  it('a sidecar: a placeholder in the mount and ls, a problem for scrub', async () => {
    await withSpecial(sidecarPath, sidecar, special, async () => {
      const read = await bounded(readSidecar(sidecarPath, sidecarHash), 'readSidecar');
      expect(read.ok ? 'ok' : read.fault, special.name).toBe('not-regular');
      await checkSidecarReaders(special.name, false);
    });
  }, 30_000);

  it('the vault file: VaultError and exit 6', async () => {
    await withSpecial(join(cipherDir, VAULT_FILE), vaultBytes, special, () => checkVaultReaders(special.name));
  }, 30_000);
});
