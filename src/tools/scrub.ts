/**
 * The integrity scrub: reads every file of a cipher directory and verifies everything the
 * format lets a key holder verify — every chunk's tag, every header, the final-chunk flag
 * (truncation), every name, long-name sidecar, symlink target and directory identity, and
 * the vault file's MAC. Strictly read-only, so it is safe while the vault is mounted and a
 * sync client is running.
 *
 * Contents need only the content key (every file's header names its own key, cipher and
 * chunk size), so even files whose names cannot be read are verified.
 */
import { createHash } from 'node:crypto';
import { constants, read as readAt, type BigIntStats, type Dirent } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { ALL_VERIFIED, type ChunkRun } from '../crypto/backend.js';
import { contentContext, fileRunBase, type ContentContext } from '../crypto/context.js';
import { FormatError, type FormatProblem } from '../crypto/errors.js';
import { FileCipher } from '../crypto/filecipher.js';
import { HEADER_BYTES, MIN_CHUNK_LOG2, parseHeader } from '../crypto/header.js';
import { deriveSubkey } from '../crypto/kdf.js';
import { chunkCount, chunksPerBatch, isRunDefect, plainSizeOf, runChunkAt, runChunkOffset, runOfSealed, runSealedLength, sealedChunkOffset } from '../crypto/geometry.js';
import { cipherIoFor, type CipherIo } from '../vault/cipherio.js';
import { classify, compareCipherNames, displayName, entryKind, escapedBytes, ListingNamer, nonCanonicalForm, readSidecar, undecryptableName } from '../vault/ciphernames.js';
import { VaultError } from '../vault/errors.js';
import { LONG_DATA_SUFFIX, LONG_NAME_SUFFIX } from '../vault/longnames.js';
import { KIND_NOUNS, NameCipher, ROOT_DIR_ID, SPECIAL_NOUNS, type EntryKind, type SpecialFile } from '../vault/names.js';
import { joinPlain } from '../vault/tree.js';
import { readVaultFile, VAULT_FILE, verifyVaultFile, type VaultConfig } from '../vault/vaultfile.js';

/** What scrub can find. The first four are the FormatError kinds of a file's contents. */
export type ProblemKind =
  | FormatProblem
  /** A file or directory could not be read at all (I/O error, permission). */
  | 'unreadable'
  /** An entry whose name does not decrypt in its directory (a directory's: its subtree cannot be named). */
  | 'undecryptable-name'
  /** A long-named entry's sidecar `<h>.sfn` is missing: the entry's name is lost. */
  | 'missing-sidecar'
  /** A sidecar whose content is not the name its hash promises. */
  | 'bad-sidecar'
  /** A sidecar with no `<h>.sfl` entry next to it. */
  | 'orphan-sidecar'
  | 'bad-symlink-target'
  /** Two directories in one parent decode to the same name with different directory ids. */
  | 'conflicting-identity'
  /** Two other entries in one parent decode to the same name (say, a file and a directory). */
  | 'duplicate-name'
  /** A FIFO, socket or device in the cipher directory. */
  | 'unexpected-type'
  /** A regular file under a special file's name (FORMAT.md §14) that is not empty: written behind sealfs's back. */
  | 'special-not-empty'
  | 'missing-vault-file'
  | 'bad-vault-file';

/** How a problem could be repaired from a backup copy of the same cipher path. */
export type Remedy =
  | { readonly type: 'file' }
  | { readonly type: 'symlink' }
  | { readonly type: 'vault-file' }
  /** Fetch the sidecar; it must hash to `hash` and, when the parent's id is known, decrypt there as `kind`. */
  | { readonly type: 'sidecar'; readonly hash: string; readonly parentId: Uint8Array | null; readonly kind: EntryKind }
  /** Move the stray sidecar aside (outside the vault). */
  | { readonly type: 'set-aside' }
  /** Needs a person: why. */
  | { readonly type: 'none'; readonly reason: string };

export interface ScrubProblem {
  readonly kind: ProblemKind;
  /** The cipher path as shown to the user (absolute locally, REMOTE/… for a backup copy). */
  readonly cipherPath: string;
  /** The plaintext path, when it can be known. */
  readonly plainPath: string | null;
  /** The first chunk that failed, for content problems that concern one. */
  readonly chunk: number | null;
  /** One readable sentence. */
  detail: string;
  /** Path relative to the cipher directory ('/'-separated). */
  readonly rel: string;
  readonly remedy: Remedy;
}

/** The public JSON form of a problem (`--json`). */
export function problemJson(p: ScrubProblem): { kind: string; cipherPath: string; plainPath: string | null; chunk: number | null; detail: string } {
  return { kind: p.kind, cipherPath: p.cipherPath, plainPath: p.plainPath, chunk: p.chunk, detail: p.detail };
}

export interface ScrubProgress {
  /** Files whose contents were verified (or skipped as unchanged) so far. */
  files: number;
  /** Ciphertext bytes read and verified so far. */
  bytes: number;
}

export interface ScrubOptions {
  readonly cipherDir: string;
  readonly masterKey: Uint8Array;
  /** Crypto backend name; default automatic (native when built). */
  readonly backend?: string;
  /** Threads one batch of chunks is spread over; default: every core. */
  readonly threads?: number;
  /** Files verified at the same time; default: cores + 1, at most 8. */
  readonly concurrency?: number;
  /** Expert (benchmarks): plaintext bytes per batch, at least one chunk; default SCRUB_BATCH_BYTES. */
  readonly batchBytes?: number;
  /** How a cipher path is shown; default: the absolute local path. */
  readonly showCipherPath?: (rel: string) => string;
  /**
   * `--changed`: keys (fileStateKey) of files that verified clean before. A file whose key
   * is in the set is not read again.
   */
  readonly skipUnchanged?: ReadonlySet<string>;
  readonly onProgress?: (progress: ScrubProgress) => void;
}

export interface ScrubResult {
  /** Files whose contents were read and verified. */
  files: number;
  /** Ciphertext bytes read and verified. */
  bytes: number;
  /** Files not read because they did not change since they last verified clean (`--changed`). */
  skipped: number;
  /** Files that kept changing while they were read (a writer was busy): neither clean nor a problem. */
  busy: number;
  problems: ScrubProblem[];
  /** Keys of every file now known clean (verified now, or unchanged since): the next `--changed` state. */
  clean: string[];
}

/** Plaintext bytes opened per backend call: bounded memory whatever the file size. */
export const SCRUB_BATCH_BYTES = 4 * 1024 * 1024;
const MAX_CONCURRENCY = 8;
/** Failing chunks listed per file before scrub stops reading it. */
const MAX_FAILED_CHUNKS = 8;
/** Attempts on a file that keeps changing while it is read. */
const BUSY_RETRIES = 3;

/**
 * The `--changed` key of a file: its cipher path with its size, modification and change
 * times and inode. Any rewrite, replacement or truncation gives another key. Hashed so the
 * state stays small and holds no names.
 */
export function fileStateKey(rel: string, st: BigIntStats): string {
  return createHash('sha256').update(`${rel}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}\0${st.ino}`).digest('base64url').slice(0, 22);
}

type RunBase = Omit<ChunkRun, 'firstIndex' | 'endsFile'>;

/** One verifier's reusable buffers. */
interface Buffers {
  sealed: Uint8Array;
  plain: Uint8Array;
}

function newBuffers(batchBytes = SCRUB_BATCH_BYTES): Buffers {
  return { sealed: new Uint8Array(runSealedLength(batchBytes, 2 ** MIN_CHUNK_LOG2)), plain: new Uint8Array(batchBytes) };
}

export interface FileVerdict {
  /** Ciphertext bytes read. */
  readonly bytes: number;
  readonly failure?: { readonly kind: FormatProblem | 'unreadable'; readonly chunk: number | null; readonly detail: string };
}

/** An open sealed file, as verifying reads it. */
interface SealedSource {
  size(): Promise<number>;
  read(into: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Opens a sealed file to verify it: never through a link, never waiting on a FIFO, only a
 * regular file. A file of the vault goes through its confined calls (`io`): a folder on
 * the way swapped for a link is not followed either.
 */
async function openSealed(path: string, io?: CipherIo): Promise<SealedSource> {
  if (io) {
    const fd = await io.open(path, constants.O_RDONLY);
    return {
      size: async () => (await io.fstat(fd)).size,
      read: (into, offset, length, position) => new Promise((done, fail) => readAt(fd, into, offset, length, position, (err, n) => (err ? fail(err) : done(n)))),
      close: () => io.close(fd),
    };
  }
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    throw new Error('not a regular file');
  }
  return {
    size: async () => (await handle.stat()).size,
    read: async (into, offset, length, position) => (await handle.read(into, offset, length, position)).bytesRead,
    close: () => handle.close(),
  };
}

async function readFully(handle: SealedSource, into: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const bytesRead = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

function formatFailure(err: FormatError): { kind: FormatProblem; chunk: number | null; detail: string } {
  return { kind: err.kind, chunk: err.chunk ?? null, detail: err.message };
}

/**
 * Verifies one sealed file completely: header, size, every chunk's tag and the final flag,
 * streaming through it in bounded batches. Never throws for bad data; I/O errors other
 * than "unreadable" propagate.
 */
export async function verifySealedFile(
  path: string,
  ctx: ContentContext,
  buffers: Buffers = newBuffers(),
  onRead?: (bytes: number) => void,
  io?: CipherIo,
): Promise<FileVerdict> {
  let handle: SealedSource;
  try {
    handle = await openSealed(path, io);
  } catch (err) {
    return { bytes: 0, failure: { kind: 'unreadable', chunk: null, detail: `cannot open: ${(err as Error).message}` } };
  }
  try {
    return await verifyOpenFile(handle, ctx, buffers, onRead);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return { bytes: 0, failure: { kind: 'unreadable', chunk: null, detail: `read failed: ${(err as Error).message}` } };
    throw err;
  } finally {
    await handle.close();
  }
}

async function verifyOpenFile(handle: SealedSource, ctx: ContentContext, buffers: Buffers, onRead?: (bytes: number) => void): Promise<FileVerdict> {
  const size = await handle.size();
  const headerBytes = new Uint8Array(HEADER_BYTES);
  const got = await readFully(handle, headerBytes, 0);
  let cipher: FileCipher;
  let base: RunBase;
  let plainSize: number;
  try {
    const header = parseHeader(headerBytes.subarray(0, got));
    plainSize = plainSizeOf(size, header.chunkSize);
    cipher = new FileCipher(ctx, header);
    base = fileRunBase(ctx, header);
  } catch (err) {
    if (err instanceof FormatError) return { bytes: got, failure: formatFailure(err) };
    throw err;
  }
  const C = cipher.chunkSize;
  const total = chunkCount(plainSize, C);
  const perBatch = chunksPerBatch(buffers.plain.length, C);
  const batchSealed = runSealedLength(perBatch * C, C);
  if (buffers.sealed.length < batchSealed) buffers.sealed = new Uint8Array(batchSealed);
  if (buffers.plain.length < perBatch * C) buffers.plain = new Uint8Array(perBatch * C);
  const failed: number[] = [];
  let first: FormatError | undefined;
  let bytes = HEADER_BYTES;
  for (let a = 0; a < total && failed.length < MAX_FAILED_CHUNKS; a += perBatch) {
    const b = Math.min(total - 1, a + perBatch - 1);
    const length = (b === total - 1 ? size : sealedChunkOffset(b + 1, C)) - sealedChunkOffset(a, C);
    const sealed = buffers.sealed.subarray(0, length);
    const read = await readFully(handle, sealed, sealedChunkOffset(a, C));
    bytes += read;
    onRead?.(read);
    if (read < length) {
      // The file shrank while it was read: the caller sees the changed size and retries.
      const err = new FormatError('truncated', `file ends inside chunk ${a + runChunkAt(read, C)}: it was cut short while being read`, a);
      return { bytes, failure: formatFailure(err) };
    }
    // Open the batch; after a failed chunk, go on with the chunks after it.
    let at = a;
    while (at <= b && failed.length < MAX_FAILED_CHUNKS) {
      const view = sealed.subarray(runChunkOffset(at - a, C));
      const err = await openRun(cipher, base, ctx, at, b === total - 1, view, buffers);
      if (!err) break;
      first ??= err;
      const chunk = err.chunk ?? at;
      failed.push(chunk);
      at = chunk + 1;
    }
  }
  if (!first) return { bytes };
  const more = failed.length > 1 ? ` (chunks ${failed.join(', ')}${failed.length >= MAX_FAILED_CHUNKS ? ', and maybe more: reading stopped' : ''} failed)` : '';
  return { bytes, failure: { ...formatFailure(first), chunk: first.chunk ?? failed[0] ?? null, detail: first.message + more } };
}

/**
 * Opens a run of stored chunks into the reusable plaintext buffer, spread over every thread.
 * Returns the FormatError FileCipher gives for the first failing chunk, or undefined.
 */
async function openRun(cipher: FileCipher, base: RunBase, ctx: ContentContext, firstIndex: number, endsFile: boolean, sealed: Uint8Array, buffers: Buffers): Promise<FormatError | undefined> {
  try {
    const run = runOfSealed(sealed.length, cipher.chunkSize);
    if (isRunDefect(run) || run.plainLength > buffers.plain.length) {
      // Not a valid run length (or bigger than our buffer): FileCipher says why.
      await cipher.open(firstIndex, endsFile, sealed);
      return undefined;
    }
    const failed = await ctx.backend.openAsync({ ...base, firstIndex, endsFile }, sealed, buffers.plain.subarray(0, run.plainLength), ctx.threads);
    if (failed === ALL_VERIFIED) return undefined;
    // FileCipher names the chunk and tells truncation from damage.
    await cipher.open(firstIndex, endsFile, sealed);
    return new FormatError('corrupt-chunk', `chunk ${firstIndex + failed} failed authentication`, firstIndex + failed);
  } catch (err) {
    if (err instanceof FormatError) return err;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// The walk

/** Bounded concurrency: at most `limit` tasks at once; `run` waits for a free slot. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly running = new Set<Promise<void>>();
  private failure: unknown;

  constructor(private readonly limit: number) {}

  async run(task: () => Promise<void>): Promise<void> {
    while (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.failure) throw this.failure;
    this.active++;
    const p = task()
      .catch((err) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.active--;
        this.running.delete(p);
        this.waiting.shift()?.();
      });
    this.running.add(p);
  }

  async drain(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running]);
    if (this.failure) throw this.failure;
  }
}

interface DirContext {
  readonly rel: string;
  /** The directory's id, or null when its own name could not be decrypted. */
  readonly dirId: Uint8Array | null;
  /** Its plaintext path, or null when unknown. */
  readonly plain: string | null;
  readonly atRoot: boolean;
}

const relJoin = (rel: string, name: string) => (rel ? `${rel}/${name}` : name);

/** Scrubs the cipher directory `cipherDir` with the vault's master key. */
export async function scrubVault(options: ScrubOptions): Promise<ScrubResult> {
  return new Scrubber(options).run();
}

class Scrubber {
  private readonly ctx: ContentContext;
  private readonly names: NameCipher;
  private readonly limiter: Limiter;
  private readonly pool: Buffers[] = [];
  private readonly seenInodes = new Set<string>();
  private readonly show: (rel: string) => string;
  private readonly result: ScrubResult = { files: 0, bytes: 0, skipped: 0, busy: 0, problems: [], clean: [] };
  /** Listings go through the confined calls: a folder swapped for a link is unreadable, never followed. */
  private readonly io: CipherIo;
  private readonly root: string;

  constructor(private readonly options: ScrubOptions) {
    this.root = resolve(options.cipherDir);
    this.io = cipherIoFor({ directIo: false }, this.root);
    const cores = availableParallelism();
    this.ctx = contentContext(options.masterKey, { backend: options.backend, threads: options.threads ?? cores });
    this.names = new NameCipher(deriveSubkey(options.masterKey, 'names'), deriveSubkey(options.masterKey, 'dirid'));
    this.limiter = new Limiter(Math.max(1, options.concurrency ?? Math.min(MAX_CONCURRENCY, cores + 1)));
    this.show = options.showCipherPath ?? ((rel) => (rel ? join(options.cipherDir, rel) : options.cipherDir));
  }

  async run(): Promise<ScrubResult> {
    await this.checkVaultFile();
    await this.scanDir({ rel: '', dirId: ROOT_DIR_ID, plain: '/', atRoot: true });
    await this.limiter.drain();
    this.result.problems.sort((x, y) => (x.rel < y.rel ? -1 : x.rel > y.rel ? 1 : x.kind < y.kind ? -1 : x.kind > y.kind ? 1 : 0));
    return this.result;
  }

  private problem(kind: ProblemKind, rel: string, plainPath: string | null, chunk: number | null, detail: string, remedy: Remedy): ScrubProblem {
    const p: ScrubProblem = { kind, cipherPath: this.show(rel), plainPath, chunk, detail, rel, remedy };
    this.result.problems.push(p);
    return p;
  }

  /** The vault's name-length limit, once its vault file verified; without it no name's stored form is checked. */
  private maxNameLength: number | undefined;

  /** Bytes of files still being read, for the progress figures only. */
  private reading = 0;

  private progress(): void {
    this.options.onProgress?.({ files: this.result.files + this.result.skipped, bytes: this.result.bytes + this.reading });
  }

  private async checkVaultFile(): Promise<void> {
    const path = join(this.options.cipherDir, VAULT_FILE);
    const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st) {
      this.problem('missing-vault-file', VAULT_FILE, null, null, `the vault file ${VAULT_FILE} is missing`, { type: 'vault-file' });
      return;
    }
    const checked = await checkedVaultConfig(this.options.cipherDir, this.options.masterKey);
    if ('fault' in checked) this.problem('bad-vault-file', VAULT_FILE, null, null, checked.fault, { type: 'vault-file' });
    else this.maxNameLength = checked.config.maxNameLength;
  }

  /** Lists and checks one cipher directory, schedules its files, recurses; returns the files below it. */
  private async scanDir(dir: DirContext): Promise<{ files: number; dirs: number }> {
    const abs = dir.rel ? join(this.root, dir.rel) : this.root;
    let raw: Dirent[];
    try {
      raw = await this.io.readdirTypes(abs);
    } catch (err) {
      this.problem('unreadable', dir.rel, dir.plain, null, `cannot list directory: ${(err as Error).message}`, { type: 'none', reason: 'the directory cannot be read on this machine' });
      return { files: 0, dirs: 0 };
    }
    raw.sort((a, b) => compareCipherNames(a.name, b.name));
    const types = raw.map((item) => classify(item.name, dir.atRoot));
    const longEntries = new Set(types.flatMap((type) => (type.type === 'long' ? [type.hash] : [])));
    // The names the mount shows, in its order; null for an undecryptable entry's placeholder.
    const shown = new Map<string, { kind: EntryKind; dirId?: Uint8Array } | null>();
    const namer = new ListingNamer(shown);
    const subdirs: DirContext[] = [];
    const undecodableDirs: { ctx: DirContext; problem: ScrubProblem }[] = [];
    let files = 0;
    let dirs = 0;

    for (const [i, item] of raw.entries()) {
      const name = item.name;
      const rel = relJoin(dir.rel, name);
      const type = types[i]!;
      if (type.type === 'vault-file' || type.type === 'sync-client') continue;
      const kind = entryKind(item);
      if (kind === 'other') {
        this.problem('unexpected-type', rel, null, null, 'not a file, directory or symbolic link (a FIFO, socket or device has no place in a vault)', {
          type: 'none',
          reason: 'remove it: sealfs never creates such entries',
        });
        if (dir.plain !== null) shown.set(namer.name(undecryptableName(name)), null);
        continue;
      }
      // Its bytes have no string that reaches it: it is reported, never read (FORMAT.md §10.4).
      if (type.type === 'not-utf8') {
        this.problem('undecryptable-name', escapedBytes(rel), null, null, `the ${KIND_NOUNS[kind]} name is not UTF-8 (its bytes: ${escapedBytes(name)}), so it cannot be an encoded name; its contents are not checked`, {
          type: 'none',
          reason: 'sealfs never writes such a name; if the entry is not yours, move it out of the vault',
        });
        if (dir.plain !== null) shown.set(namer.name(undecryptableName(name)), null);
        continue;
      }
      // A sidecar: checked against its entry, never decrypted on its own.
      if (type.type === 'sidecar') {
        if (!longEntries.has(type.hash)) {
          this.problem('orphan-sidecar', rel, null, null, `long-name sidecar with no ${type.hash}${LONG_DATA_SUFFIX} entry next to it`, { type: 'set-aside' });
        }
        continue;
      }

      let encoded: string | undefined;
      let nameProblem: ScrubProblem | undefined;
      if (type.type === 'long') encoded = await this.readSidecar(dir, type.hash, kind, (p) => (nameProblem = p));
      else encoded = type.encoded;
      let plainName: { name: string; dirId?: Uint8Array; special?: SpecialFile } | undefined;
      const wrongForm = encoded !== undefined && this.maxNameLength !== undefined ? nonCanonicalForm(type.type, encoded, this.maxNameLength) : undefined;
      if (wrongForm) {
        nameProblem = this.problem('undecryptable-name', rel, null, null, `the ${KIND_NOUNS[kind]} name is not stored in the one form sealfs writes for it: ${wrongForm}; it is not read, so that it cannot take the name of the entry stored correctly`, {
          type: 'none',
          reason: 'sealfs never writes this form; if the entry is not yours, move it out of the vault',
        });
      } else if (encoded !== undefined && dir.dirId) {
        plainName = encoded ? this.names.decrypt(dir.dirId, encoded, kind) : undefined;
        if (!plainName) {
          nameProblem = this.problem('undecryptable-name', rel, null, null, `the ${KIND_NOUNS[kind]} name does not decrypt in this directory (damaged, moved here from another directory, or not created by sealfs)`, {
            type: 'none',
            reason: 'a damaged name cannot be matched to its backup copy; if the entry is not yours, move it out of the vault',
          });
        }
      }

      let plainPath: string | null = null;
      if (!plainName && dir.plain !== null) shown.set(namer.name(undecryptableName(name)), null);
      if (plainName && dir.plain !== null) {
        const clash = displayName(plainName.name, type.conflict);
        const earlier = shown.get(clash);
        const display = namer.name(clash);
        if (earlier !== undefined) {
          const path = joinPlain(dir.plain, display);
          if (kind === 'dir' && earlier?.kind === 'dir' && earlier.dirId && plainName.dirId && Buffer.compare(earlier.dirId, plainName.dirId) !== 0) {
            this.problem('conflicting-identity', rel, path, null, `two directories named ${JSON.stringify(clash)} with different directory ids; this one is shown as ${JSON.stringify(display)}`, {
              type: 'none',
              reason: 'decide which of the two directories to keep, and rename or merge the other through the mount',
            });
          } else {
            this.problem('duplicate-name', rel, path, null, `another entry in this directory is also named ${JSON.stringify(clash)}; this one is shown as ${JSON.stringify(display)}`, {
              type: 'none',
              reason: 'rename one of the two entries through the mount',
            });
          }
        }
        shown.set(display, { kind, ...(plainName.dirId ? { dirId: plainName.dirId } : {}) });
        plainPath = joinPlain(dir.plain, display);
      }

      if (kind === 'file' && plainName?.special) {
        await this.checkSpecial(rel, plainPath, plainName.special);
      } else if (kind === 'file') {
        files++;
        await this.limiter.run(() => this.checkFile(rel, plainPath));
      } else if (kind === 'symlink') {
        await this.checkSymlink(rel, plainPath);
      } else {
        dirs++;
        const child: DirContext = { rel, dirId: plainName?.dirId ?? null, plain: plainName ? plainPath : null, atRoot: false };
        subdirs.push(child);
        if (!plainName && dir.dirId && nameProblem) undecodableDirs.push({ ctx: child, problem: nameProblem });
      }
    }

    const below = new Map<DirContext, { files: number; dirs: number }>();
    for (const child of subdirs) {
      const counts = await this.scanDir(child);
      below.set(child, counts);
      files += counts.files;
      dirs += counts.dirs;
    }
    for (const { ctx, problem } of undecodableDirs) {
      const counts = below.get(ctx) ?? { files: 0, dirs: 0 };
      problem.detail += `; the names of everything below it (${plural(counts.files, 'file')}, ${plural(counts.dirs, 'directory', 'directories')}) cannot be read until this is fixed (their contents were verified)`;
    }
    return { files, dirs };
  }

  /**
   * The encoded name held by the sidecar of long entry `hash`, or undefined after reporting
   * why it cannot be had.
   */
  private async readSidecar(dir: DirContext, hash: string, kind: EntryKind, report: (p: ScrubProblem) => void): Promise<string | undefined> {
    const rel = relJoin(dir.rel, hash + LONG_NAME_SUFFIX);
    const remedy: Remedy = { type: 'sidecar', hash, parentId: dir.dirId, kind };
    const read = await readSidecar(join(this.root, rel), hash, this.io);
    if (read.ok) return read.encoded;
    if (read.fault === 'missing') {
      report(this.problem('missing-sidecar', rel, null, null, `the long-name sidecar of ${KIND_NOUNS[kind]} ${hash}${LONG_DATA_SUFFIX} is missing: that entry's name is lost${dir.plain !== null ? ` (it is in ${dir.plain})` : ''}`, remedy));
    } else {
      report(this.problem('bad-sidecar', rel, null, null, `the long-name sidecar of ${KIND_NOUNS[kind]} ${hash}${LONG_DATA_SUFFIX} is unusable (${read.detail}): that entry's name is lost`, remedy));
    }
    return undefined;
  }

  private async checkSymlink(rel: string, plainPath: string | null): Promise<void> {
    let target: string;
    try {
      target = await this.io.readlink(join(this.root, rel));
    } catch (err) {
      this.problem('unreadable', rel, plainPath, null, `cannot read the link: ${(err as Error).message}`, { type: 'symlink' });
      return;
    }
    if (this.names.decryptSymlinkTarget(target) === undefined) {
      this.problem('bad-symlink-target', rel, plainPath, null, 'the symbolic link target does not decrypt (damaged or not created by sealfs)', { type: 'symlink' });
    }
  }

  /** A special file (FORMAT.md §14) is an empty regular file: no contents to verify, and anything in it is tampering. */
  private async checkSpecial(rel: string, plainPath: string | null, special: SpecialFile): Promise<void> {
    const st = await this.io.lstat(join(this.root, rel)).catch(() => undefined); // gone since listed: nothing to check
    if (st && st.size !== 0) {
      this.problem('special-not-empty', rel, plainPath, null, `this ${SPECIAL_NOUNS[special.type]} is stored as an empty file, but holds ${st.size} bytes: written in the cipher folder, not by sealfs`, {
        type: 'none',
        reason: 'sealfs never writes into it; remove it, or make it empty again if it is yours',
      });
    }
  }

  private async checkFile(rel: string, plainPath: string | null): Promise<void> {
    const path = join(this.options.cipherDir, rel);
    const buffers = this.pool.pop() ?? newBuffers(this.options.batchBytes);
    try {
      for (let attempt = 0; ; attempt++) {
        let before: BigIntStats;
        try {
          before = await lstat(path, { bigint: true });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // deleted since listed
          throw err;
        }
        const key = fileStateKey(rel, before);
        if (this.options.skipUnchanged?.has(key)) {
          this.result.skipped++;
          this.result.clean.push(key);
          this.progress();
          return;
        }
        if (before.nlink > 1n) {
          const inode = `${before.dev}:${before.ino}`;
          if (this.seenInodes.has(inode)) {
            this.result.clean.push(key);
            return; // another name of a file already verified
          }
          this.seenInodes.add(inode);
        }
        let read = 0;
        const verdict = await verifySealedFile(
          join(this.root, rel),
          this.ctx,
          buffers,
          (n) => {
            read += n;
            this.reading += n;
            this.progress();
          },
          this.io,
        );
        this.reading -= read;
        const after = await lstat(path, { bigint: true }).catch(() => undefined);
        const changed = !after || fileStateKey(rel, after) !== key;
        if (!verdict.failure && !changed) {
          this.result.bytes += verdict.bytes;
          this.result.files++;
          this.result.clean.push(key);
          this.progress();
          return;
        }
        if (!after) return; // deleted while read
        // A failure seen while a writer was busy, or a first failure: look again, so a
        // chunk caught half-written is not reported as damage.
        if (changed && attempt < BUSY_RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
          continue;
        }
        if (verdict.failure && !changed && attempt === 0) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        if (changed) {
          this.result.busy++;
          return;
        }
        const f = verdict.failure!;
        this.result.bytes += verdict.bytes;
        this.result.files++;
        this.problem(f.kind, rel, plainPath, f.chunk, f.detail, { type: 'file' });
        this.progress();
        return;
      }
    } finally {
      this.pool.push(buffers);
    }
  }
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Why the vault file in `cipherDir` is not the one this key wrote, or undefined when it
 * verifies (structure and MAC).
 */
export async function vaultFileFault(cipherDir: string, masterKey: Uint8Array): Promise<string | undefined> {
  const checked = await checkedVaultConfig(cipherDir, masterKey);
  return 'fault' in checked ? checked.fault : undefined;
}

/** The vault file's settings once it verifies, or why it does not. */
async function checkedVaultConfig(cipherDir: string, masterKey: Uint8Array): Promise<{ config: VaultConfig } | { fault: string }> {
  try {
    // readVaultFile refuses what is not a regular file or is larger than any vault file.
    return { config: verifyVaultFile(await readVaultFile(cipherDir), masterKey, cipherDir) };
  } catch (err) {
    if (err instanceof VaultError || err instanceof RangeError) return { fault: err.message };
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return { fault: `${VAULT_FILE} cannot be read: ${(err as Error).message}` };
    throw err;
  }
}

/** Verifies a long-name sidecar file copy: it must hold the name its hash promises, and decrypt where it belongs. */
export async function sidecarFault(path: string, remedy: Extract<Remedy, { type: 'sidecar' }>, masterKey: Uint8Array, io: CipherIo): Promise<string | undefined> {
  const read = await readSidecar(path, remedy.hash, io);
  if (!read.ok) return read.detail;
  if (remedy.parentId) {
    const names = new NameCipher(deriveSubkey(masterKey, 'names'), deriveSubkey(masterKey, 'dirid'));
    if (!names.decrypt(remedy.parentId, read.encoded, remedy.kind)) return 'the name it holds does not decrypt in this directory';
  }
  return undefined;
}

/** Verifies a symbolic link copy: its target must decrypt. */
export async function symlinkFault(path: string, masterKey: Uint8Array, io: CipherIo): Promise<string | undefined> {
  try {
    const st = await io.lstat(path);
    if (!st.isSymbolicLink()) return 'the copy is not a symbolic link';
    const names = new NameCipher(deriveSubkey(masterKey, 'names'), deriveSubkey(masterKey, 'dirid'));
    return names.decryptSymlinkTarget(await io.readlink(path)) === undefined ? 'its target does not decrypt' : undefined;
  } catch (err) {
    return `cannot read it: ${(err as Error).message}`;
  }
}

/** A content context for verifying single files (repair), every thread. */
export function verifierContext(masterKey: Uint8Array, backend?: string): ContentContext {
  return contentContext(masterKey, { backend, threads: availableParallelism() });
}

/** Counts the files and ciphertext bytes a scrub will read (for a progress bar's total), without reading them. */
export async function countCipherTree(cipherDir: string, skipUnchanged?: ReadonlySet<string>): Promise<{ files: number; bytes: number }> {
  const total = { files: 0, bytes: 0 };
  const root = resolve(cipherDir);
  const io = cipherIoFor({ directIo: false }, root);
  async function walk(rel: string): Promise<void> {
    let items: Dirent[];
    try {
      items = await io.readdirTypes(rel ? join(root, rel) : root);
    } catch {
      return;
    }
    for (const item of items) {
      const type = classify(item.name, !rel).type;
      if (type === 'vault-file' || type === 'sync-client' || type === 'sidecar' || type === 'not-utf8') continue;
      const childRel = relJoin(rel, item.name);
      if (item.isDirectory()) await walk(childRel);
      else if (item.isFile()) {
        const st = await lstat(join(cipherDir, childRel), { bigint: true }).catch(() => undefined);
        if (!st) continue;
        total.files++;
        if (!skipUnchanged?.has(fileStateKey(childRel, st))) total.bytes += Number(st.size);
      }
    }
  }
  await walk('');
  return total;
}
