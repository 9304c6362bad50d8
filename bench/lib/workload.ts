import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { note, run } from './proc.js';

/**
 * The workload of the mount benchmark: a deterministic source-like tree packed into a tar,
 * cache dropping, and the timed commands (dd, tar, ls, md5sum, rm) run against a mount point.
 */

export const MB = 1e6;
export const MiB = 1 << 20;

// ---------------------------------------------------------------- deterministic generator

/** mulberry32: small, fast, deterministic; plenty for shaping test data. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

const DIR_WORDS = [
  'src', 'lib', 'core', 'util', 'utils', 'internal', 'cmd', 'api', 'net', 'io', 'fs', 'crypto', 'test', 'tests', 'docs',
  'parser', 'codec', 'model', 'view', 'server', 'client', 'common', 'config', 'vendor', 'tools', 'scripts', 'examples',
  'include', 'platform', 'linux', 'storage', 'cache', 'index', 'query', 'plugins', 'ui', 'widgets', 'assets', 'i18n',
] as const;

const FILE_WORDS = [
  'main', 'index', 'types', 'errors', 'buffer', 'stream', 'reader', 'writer', 'handler', 'router', 'session', 'token',
  'config', 'options', 'state', 'store', 'queue', 'pool', 'worker', 'cache', 'hash', 'cipher', 'header', 'chunk',
  'path', 'name', 'entry', 'node', 'tree', 'walk', 'watch', 'sync', 'mount', 'file', 'dir', 'inode', 'lock', 'log',
  'format', 'parse', 'print', 'encode', 'decode', 'client', 'server', 'request', 'response', 'util', 'helpers', 'test',
] as const;

/** Extensions, weighted by repetition. */
const EXTENSIONS = ['.ts', '.ts', '.ts', '.js', '.js', '.c', '.h', '.h', '.go', '.py', '.rs', '.md', '.json', '.txt', '.yml'] as const;

const TOKENS = [
  'const', 'let', 'return', 'if', 'else', 'for', 'while', 'function', 'async', 'await', 'import', 'export', 'from',
  'class', 'new', 'this', 'null', 'true', 'false', 'throw', 'type', 'interface', 'struct', 'int', 'size_t', 'char',
  '=', '==', '!==', '+', '-', '*', '/', '&&', '||', '=>', '(', ')', '[', ']', '{', '}', ',', '.', ':', '0', '1', '42',
  'buffer', 'length', 'offset', 'value', 'key', 'result', 'error', 'options', 'entry', 'path', 'name', 'count', 'index',
  'data', 'chunk', 'header', 'state', 'next', 'read', 'write', 'open', 'close', 'flush', 'node', 'list', 'map', 'set',
  '// TODO', '/* note */', '"string"', "'x'", 'i++', 'n', 'err', 'ctx', 'cb', 'fd', 'len', 'ptr', 'self', 'args',
] as const;
const LINE_ENDS = [';', ';', ';', ' {', '', ',', ')', ' }'] as const;

export interface TreeSpec {
  /** Number of regular files. */
  readonly files: number;
  readonly seed: number;
}

export interface Tree {
  /** Directory holding `tree/`, the top directory of the generated tree. */
  readonly parent: string;
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  /** md5 of every file, keyed by its path relative to `parent` (tree/...). */
  readonly md5: ReadonlyMap<string, string>;
}

export const TREE_TOP = 'tree';
/** Sizes: log-normal with this median and sigma, clamped to [MIN, MAX]. */
const MEDIAN_BYTES = 3 * 1024;
const SIGMA = 1.1;
const MIN_BYTES = 100;
const MAX_BYTES = 50 * 1024;
const FILES_PER_DIR = 12;
const MAX_DEPTH = 5;

function textOfSize(rng: Rng, size: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  let depth = 0;
  while (length < size) {
    const words: string[] = [];
    const count = rng.int(2, 10);
    for (let i = 0; i < count; i++) words.push(rng.pick(TOKENS));
    const end = rng.pick(LINE_ENDS);
    if (end === ' }') depth = Math.max(0, depth - 1);
    const line = '  '.repeat(depth) + words.join(' ') + end;
    if (end === ' {') depth = Math.min(4, depth + 1);
    lines.push(line);
    length += line.length + 1;
  }
  const text = lines.join('\n');
  return Buffer.from(`${text.slice(0, size - 1)}\n`, 'latin1');
}

function uniqueName(taken: Set<string>, base: string): string {
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}${n}`;
  taken.add(name);
  return name;
}

/**
 * Writes a deterministic source-like tree under `parent/tree`: about one directory per
 * FILES_PER_DIR files, nested up to MAX_DEPTH levels, text files with log-normal sizes.
 */
export async function generateTree(parent: string, spec: TreeSpec): Promise<Tree> {
  const rng = new Rng(spec.seed);
  interface Dir {
    readonly path: string;
    readonly depth: number;
    readonly names: Set<string>;
  }
  const dirs: Dir[] = [{ path: TREE_TOP, depth: 0, names: new Set() }];
  const dirCount = Math.max(1, Math.ceil(spec.files / FILES_PER_DIR));
  while (dirs.length < dirCount) {
    const parentDir = rng.pick(dirs);
    if (parentDir.depth >= MAX_DEPTH) continue;
    const name = uniqueName(parentDir.names, rng.pick(DIR_WORDS));
    dirs.push({ path: `${parentDir.path}/${name}`, depth: parentDir.depth + 1, names: new Set() });
  }
  for (const dir of dirs) await mkdir(join(parent, dir.path), { recursive: true });

  const md5 = new Map<string, string>();
  let bytes = 0;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < spec.files; i++) {
    const dir = rng.pick(dirs);
    const stem = rng.next() < 0.5 ? rng.pick(FILE_WORDS) : `${rng.pick(FILE_WORDS)}_${rng.pick(FILE_WORDS)}`;
    const path = `${dir.path}/${uniqueName(dir.names, stem + rng.pick(EXTENSIONS))}`;
    const size = Math.round(Math.min(MAX_BYTES, Math.max(MIN_BYTES, Math.exp(Math.log(MEDIAN_BYTES) + SIGMA * rng.normal()))));
    const content = textOfSize(rng, size);
    md5.set(path, createHash('md5').update(content).digest('hex'));
    bytes += size;
    pending.push(writeFile(join(parent, path), content));
    if (pending.length >= 32) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  return { parent, files: spec.files, dirs: dirs.length, bytes, md5 };
}

/** Packs the tree reproducibly (sorted, fixed owner, mode and mtime). */
export async function buildTar(tree: Tree, tarPath: string): Promise<void> {
  await run(
    'tar',
    ['--sort=name', '--format=gnu', '--mtime=@1700000000', '--owner=0', '--group=0', '--numeric-owner', '--mode=u=rwX,go=rX', '-cf', tarPath, '-C', tree.parent, TREE_TOP],
    { timeoutS: 120 },
  );
}

// ---------------------------------------------------------------- caches

let dropWarned = false;

/**
 * `sync; echo 3 > /proc/sys/vm/drop_caches`. Returns false (and warns once) when not permitted,
 * in which case the "cold" reads are warm and the results say so.
 */
export async function dropCaches(): Promise<boolean> {
  await run('sync', [], { timeoutS: 300 });
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch (err) {
    if (!dropWarned) note(`bench: cannot drop the page cache (${(err as Error).message}); cold reads will be warm`);
    dropWarned = true;
    return false;
  }
}

// ---------------------------------------------------------------- timed commands

// Each returns the wall-clock seconds of the command (spawn to exit).

function ddBytes(stderr: string): number {
  const match = /^(\d+) bytes/m.exec(stderr);
  if (!match) throw new Error(`dd reported no byte count: ${stderr.trim()}`);
  return Number(match[1]);
}

export async function writeBig(mnt: string, mib: number, timeoutS: number): Promise<number> {
  const { stderr, seconds } = await run('dd', ['if=/dev/zero', `of=${mnt}/big`, 'bs=1M', `count=${mib}`, 'conv=fsync'], { timeoutS });
  const bytes = ddBytes(stderr);
  if (bytes !== mib * MiB) throw new Error(`dd wrote ${bytes} bytes, expected ${mib * MiB}`);
  return seconds;
}

export async function readBig(mnt: string, mib: number, timeoutS: number): Promise<number> {
  const { stderr, seconds } = await run('dd', [`if=${mnt}/big`, 'of=/dev/null', 'bs=1M'], { timeoutS });
  const bytes = ddBytes(stderr);
  if (bytes !== mib * MiB) throw new Error(`dd read ${bytes} bytes back, expected ${mib * MiB}`);
  return seconds;
}

export async function removeBig(mnt: string, timeoutS: number): Promise<void> {
  await run('rm', ['-f', `${mnt}/big`], { timeoutS });
}

export async function extractTree(tarPath: string, mnt: string, timeoutS: number): Promise<number> {
  return (await run('tar', ['-xf', tarPath, '--no-same-owner', '-C', mnt], { timeoutS })).seconds;
}

export async function listTree(mnt: string, timeoutS: number): Promise<number> {
  return (await run('ls', ['-lR', `${mnt}/${TREE_TOP}`], { timeoutS })).seconds;
}

/**
 * `find MNT/tree -type f -print0 | xargs -0 md5sum`, its output kept in `listing` (outside the
 * mount) rather than /dev/null so that every file's content can be checked afterwards.
 */
export async function md5Tree(mnt: string, listing: string, timeoutS: number): Promise<number> {
  const script = 'set -o pipefail; find "$1/tree" -type f -print0 | xargs -0 md5sum > "$2"';
  return (await run('bash', ['-c', script, 'bash', mnt, listing], { timeoutS })).seconds;
}

/** Checks the md5sum listing against the generated tree: same files, same contents. */
export async function verifyListing(listing: string, mnt: string, tree: Tree): Promise<void> {
  const seen = new Set<string>();
  const prefix = `${mnt}/`;
  for (const line of (await readFile(listing, 'utf8')).split('\n')) {
    if (line === '') continue;
    const hash = line.slice(0, 32);
    const path = line.slice(34);
    const rel = path.startsWith(prefix) ? path.slice(prefix.length) : path;
    const expected = tree.md5.get(rel);
    if (expected === undefined) throw new Error(`md5sum listed an unexpected file ${rel}`);
    if (expected !== hash) throw new Error(`content of ${rel} differs from the tar`);
    seen.add(rel);
  }
  if (seen.size !== tree.md5.size) throw new Error(`md5sum read ${seen.size} files, expected ${tree.md5.size}`);
}

export async function removeTree(mnt: string, timeoutS: number): Promise<number> {
  return (await run('rm', ['-rf', `${mnt}/${TREE_TOP}`], { timeoutS })).seconds;
}

/** Wall-clock seconds of an async step (monotonic clock). */
export async function timed(step: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await step();
  return Number(process.hrtime.bigint() - start) / 1e9;
}
